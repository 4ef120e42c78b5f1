"""Other projects' loaders read our episode files unchanged.

The ALOHA/ACT family (act-plus-plus `utils.py`) finds episodes with `os.walk` + `fnmatch(files,
"*.hdf5")`, skipping names that contain "features" (and "mirror" when asked), then per sample opens
the file with h5py and reads `/action`, `/observations/qpos`, `/observations/qvel` and
`/observations/images/<cam>` at one row, decoding each image row with `cv2.imdecode(row, 1)` when the
root attribute `compress` is true. `AlohaStyleLoader` below does exactly that, written from those facts,
so the test breaks if our file names or the aligned view drift from what such a loader expects.
"""
import fnmatch
import os

import cv2
import h5py
import numpy as np
import pytest

from collector.dataset import EpisodeDataset
from collector.dataset.synthetic import write_sim_episode, write_synthetic_dataset
from collector.errors import DataError
from collector.recorder import EpisodeWriter
from collector.recorder.streams import FieldSpec, StreamSpec


def find_episode_files_like_aloha(dataset_dir, skip_mirrored_data=False):
    found = []
    for root, _dirs, files in os.walk(dataset_dir):
        for name in fnmatch.filter(files, "*.hdf5"):
            if "features" in name or (skip_mirrored_data and "mirror" in name):
                continue
            found.append(os.path.join(root, name))
    return found


class AlohaStyleLoader:
    """Per-sample reads as an ACT EpisodicDataset does them (no augmentation or normalization)."""

    def __init__(self, paths, camera_names):
        self.paths, self.camera_names = list(paths), list(camera_names)

    def episode_len(self, path):
        with h5py.File(path, "r") as root:
            return int(root["/observations/qpos"].shape[0])

    def sample(self, episode, t):
        with h5py.File(self.paths[episode], "r") as root:
            is_sim = bool(root.attrs["sim"]) if "sim" in root.attrs else False
            compressed = root.attrs.get("compress", False)
            action = root["/action"][()]
            qpos = root["/observations/qpos"][t]
            qvel = root["/observations/qvel"][t]
            images = {cam: root[f"/observations/images/{cam}"][t] for cam in self.camera_names}
            if compressed:
                images = {cam: np.array(cv2.imdecode(row, 1)) for cam, row in images.items()}
        return {"is_sim": is_sim, "qpos": qpos, "qvel": qvel, "action": action[t:] if is_sim else action,
                "images": np.stack([images[cam] for cam in self.camera_names])}


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_sim_episode(folder, "episode_000001", duration_s=1.0, cameras=("head",), camera_fps=10.0)
    return folder


def test_an_aloha_loader_finds_our_episodes_and_decodes_the_same_frames(sim_folder):
    paths = find_episode_files_like_aloha(sim_folder)
    assert [os.path.basename(p) for p in paths] == ["episode_000001.hdf5"]
    loader = AlohaStyleLoader(paths, ["head"])
    length = loader.episode_len(paths[0])
    rows = (0, length // 2, length - 1)
    with h5py.File(paths[0], "r") as root:
        assert bool(root.attrs["compress"])  # the sim records JPEG: the loader's decode path is exercised
    # Read theirs first: HDF5 refuses a second open of a file in one process with other locking flags
    # (our reader skips locking), and a peer's loader runs in its own process anyway.
    their_samples = [loader.sample(0, t) for t in rows]
    ours = EpisodeDataset(sim_folder, cameras=["head"], normalize=False, image_format="hwc_uint8")
    assert length == len(ours) >= 10
    for t, theirs in zip(rows, their_samples):
        sample = ours[t]
        assert theirs["is_sim"] is True
        np.testing.assert_array_equal(theirs["images"][0], sample["observation.images.head"])
        np.testing.assert_array_equal(theirs["qpos"].astype(np.float32), sample["observation.state"])
        np.testing.assert_array_equal(theirs["action"][0].astype(np.float32), sample["action"][0])
        assert theirs["qvel"].shape == theirs["qpos"].shape
        assert theirs["images"][0].std() > 1.0  # a rendered scene, not an empty frame


def test_an_aloha_loader_never_picks_up_a_partial_take(tmp_path):
    root = write_synthetic_dataset(tmp_path / "data", 2, duration_s=0.6, camera_size=(24, 32))
    episodes = root / "episodes"
    spec = StreamSpec("joints", {"position": FieldSpec((3,)), "velocity": FieldSpec((3,)),
                                 "effort": FieldSpec((3,))}, 100.0, kind="joints")
    writer = EpisodeWriter(episodes, "episode_000003", [spec], metadata={"sim": True}, min_free_bytes=0)
    writer.start()  # a take in progress (or left by a crash) sits beside the finished ones
    try:
        writer.push("joints", 0.0, position=np.zeros(3), velocity=np.zeros(3), effort=np.zeros(3))
        assert writer.partial_path.exists()
        found = sorted(os.path.basename(p) for p in find_episode_files_like_aloha(root))
        assert found == ["episode_000001.hdf5", "episode_000002.hdf5"]
    finally:
        writer.discard()


def test_a_new_episode_never_shadows_a_legacy_h5_one(tmp_path):
    legacy = tmp_path / "episode_000001.h5"  # written before finished episodes became .hdf5
    legacy.write_bytes(b"an earlier episode")
    spec = StreamSpec("joints", {"position": FieldSpec((3,))}, 100.0, kind="joints")
    writer = EpisodeWriter(tmp_path, "episode_000001", [spec], metadata={"sim": True}, min_free_bytes=0)
    with pytest.raises(DataError, match="already exists"):
        writer.start()
    assert sorted(os.listdir(tmp_path)) == ["episode_000001.h5"]
