"""Review annotations: saved durably beside and inside the episode, recorded data never rewritten.

Crash and full-disk paths run for real: a saver process killed with SIGKILL at random moments, and a
fold onto a real (user-namespace) tmpfs that is full.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.recorder import EpisodeReader
from collector.review.annotations import (JOURNAL_SUFFIX, REVIEW_GROUP, Labels, Subtask, fold_journal,
                                          read_review, save_labels)
from collector.review.config import review_config
from helpers.small_disk import tmpfs_available

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def episode(good, tmp_path):
    path = tmp_path / "episodes" / good.name
    path.parent.mkdir()
    shutil.copy(good, path)
    return path


def _recorded_digest(path) -> str:
    """A hash of every dataset and root attribute outside the annotations group."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as h5:
        for key in sorted(h5.attrs):
            digest.update(f"{key}={h5.attrs[key]!r}".encode())

        def visit(name, obj):
            if name.split("/")[0] == REVIEW_GROUP:
                return
            digest.update(name.encode())
            if isinstance(obj, h5py.Dataset):
                digest.update(np.ascontiguousarray(obj[()]).tobytes())
        h5.visititems(visit)
    return digest.hexdigest()


def test_saved_labels_read_back_from_the_file_and_recorded_data_is_untouched(episode):
    before = _recorded_digest(episode)
    saved = save_labels(episode, Labels("ana", verdict="accept", subtasks=[Subtask("lift", 1.0, 1.5),
                                                                         Subtask("grasp", 0.2, 0.9)],
                                        instructions=["Put the red cube in the blue tray."], notes="clean"))
    assert saved.record_id and saved.saved_at and saved.revision == 1
    assert not episode.with_name(episode.name + JOURNAL_SUFFIX).exists()  # folded into the file
    with h5py.File(episode, "r") as h5:
        records = [json.loads(h5[REVIEW_GROUP][name][()]) for name in h5[REVIEW_GROUP]]
        assert h5[REVIEW_GROUP].attrs["format_version"] == 1
    assert [r["record_id"] for r in records] == [saved.record_id]
    assert _recorded_digest(episode) == before
    with EpisodeReader(episode) as reader:  # the reader's structure check accepts the new group
        assert reader.has_aligned_view
    review = read_review(episode)
    assert review.verdict == "accepted"
    assert [s.name for s in review.subtasks] == ["grasp", "lift"]  # kept in time order
    assert review.instructions == ["Put the red cube in the blue tray."]
    assert list(review.subtask_at([0.1, 0.5, 1.2, 2.0])) == ["", "grasp", "lift", ""]


def test_validate_accepts_an_annotated_episode(episode):
    save_labels(episode, Labels("ana", verdict="reject", reasons=["collision"]))
    done = subprocess.run([sys.executable, "-m", "collector", "validate", str(episode)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_history_and_two_reviewers_are_kept_with_their_agreement(episode):
    save_labels(episode, Labels("ana", verdict="reject", reasons=["collision"]))
    save_labels(episode, Labels("ana", verdict="accept", subtasks=[Subtask("grasp", 0.2, 1.0)]))
    review = read_review(episode)
    assert [r.verdict for r in review.records] == ["reject", "accept"] and review.verdict == "accepted"
    save_labels(episode, Labels("ben", verdict="reject", reasons=["dropped object"],
                                subtasks=[Subtask("grasp", 0.4, 1.0)], outcome="failure"))
    review = read_review(episode)
    assert len(review.records) == 3 and set(review.latest()) == {"ana", "ben"}
    assert review.verdict == "disputed" and review.outcome == "failure"
    agreement = review.agreement()
    assert agreement["verdict_agreement"] is False
    assert agreement["boundary_mean_diff_s"] == pytest.approx(0.1)
    assert agreement["segment_iou"] == pytest.approx(0.6 / 0.8)


@pytest.mark.parametrize("labels, field", [
    (Labels(""), "reviewer"), (Labels("a", verdict="maybe"), "verdict"), (Labels("a", outcome="ok"), "outcome"),
    (Labels("a", subtasks=[Subtask("grasp", 2.0, 1.0)]), "start <= end"),
    (Labels("a", subtasks=[Subtask("grasp", float("nan"), 1.0)]), "finite"),
])
def test_bad_labels_are_refused_naming_the_field_and_nothing_is_written(episode, labels, field):
    before = episode.read_bytes()
    with pytest.raises(ConfigError, match=field):
        save_labels(episode, labels)
    assert episode.read_bytes() == before and not read_review(episode)


def test_a_missing_episode_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="no such episode file"):
        save_labels(tmp_path / "nope.hdf5", Labels("ana", verdict="accept"))


def test_unfolded_journal_records_count_and_a_torn_last_line_is_ignored(episode):
    saved = save_labels(episode, Labels("ana", verdict="accept"), fold=False)
    journal = episode.with_name(episode.name + JOURNAL_SUFFIX)
    with open(journal, "a") as f:
        f.write('{"reviewer": "ben", "verdict": "rej')  # a save killed mid-write (it never returned)
    assert [r.record_id for r in read_review(episode).records] == [saved.record_id]
    assert fold_journal(episode) == 1
    assert not journal.exists() and [r.record_id for r in read_review(episode).records] == [saved.record_id]


def test_review_config_lists_reasons_and_each_tasks_skills(tmp_path):
    assert review_config("pour").skills == ["grasp", "lift", "tilt", "pour", "return"]
    assert "collision" in review_config("pick_place").reasons
    assert review_config("unknown_task").skills == review_config("").skills
    bad = tmp_path / "review.yaml"
    bad.write_text("reasons: [collision, 3]\n")
    with pytest.raises(ConfigError, match="reasons must be a list of names"):
        review_config("pour", bad)


_SAVER = """
import sys
from collector.review.annotations import Labels, Subtask, save_labels
path = sys.argv[1]
for i in range(10_000):
    saved = save_labels(path, Labels("ana", verdict="accept", notes=str(i), subtasks=[Subtask("grasp", 0, i)]))
    print(saved.record_id, flush=True)
"""


def test_kill_9_while_saving_loses_no_returned_save_and_leaves_a_readable_episode(episode, tmp_path):
    # Pad the file so a fold (copy + rename) takes long enough for kills to land inside it.
    with h5py.File(episode, "r+") as h5:
        h5.create_dataset("padding", data=np.random.default_rng(0).integers(0, 255, 40_000_000, dtype=np.uint8))
    before = _recorded_digest(episode)
    returned = []
    rng = np.random.default_rng(1)
    for _ in range(6):
        saver = subprocess.Popen([sys.executable, "-c", _SAVER, str(episode)], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        time.sleep(float(rng.uniform(0.8, 2.0)))
        saver.send_signal(signal.SIGKILL)
        out, _ = saver.communicate()
        returned += out.split()
        with EpisodeReader(episode):  # opens: never a half-written episode
            pass
        assert _recorded_digest(episode) == before
    kept = {r.record_id for r in read_review(episode).records}
    assert returned and set(returned) <= kept
    fold_journal(episode)  # the next save or fold clears a copy a kill left half-written
    assert not list(episode.parent.glob("*.review-fold.tmp"))
    assert {r.record_id for r in read_review(episode).records} == kept


_FULL_DISK = """
import os, shutil, sys, json
from pathlib import Path
from collector.review.annotations import JOURNAL_SUFFIX, Labels, fold_journal, read_review, save_labels
mount, source = Path(sys.argv[1]), Path(sys.argv[2])
episode = mount / source.name
shutil.copy(source, episode)
with open(mount / "filler", "wb", buffering=0) as f:   # fill the disk, then leave a few pages for the journal
    try:
        while True:
            f.write(b"x" * 65536)
    except OSError:
        pass
os.truncate(mount / "filler", os.path.getsize(mount / "filler") - 64 * 1024)
before = episode.read_bytes()
saved = save_labels(episode, Labels("ana", verdict="accept"))
result = {"unchanged": episode.read_bytes() == before,
          "journal": (mount / (episode.name + JOURNAL_SUFFIX)).exists(),
          "read": [r.record_id for r in read_review(episode).records] == [saved.record_id],
          "leftovers": sorted(p.name for p in mount.iterdir() if p.name.endswith(".tmp"))}
os.remove(mount / "filler")
result["folded"] = fold_journal(episode)
result["after"] = [r.record_id for r in read_review(episode).records] == [saved.record_id]
result["journal_after"] = (mount / (episode.name + JOURNAL_SUFFIX)).exists()
print("RESULT", json.dumps(result))
"""


@pytest.mark.skipif(not tmpfs_available(), reason="needs user namespaces to mount a small tmpfs")
def test_a_full_disk_keeps_the_save_in_the_journal_until_it_can_be_folded(good, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    size_mib = int(good.stat().st_size * 2 / 2**20) + 2  # room for the episode and one copy
    done = subprocess.run(["unshare", "-rm", "sh", "-c",
                           f'mount -t tmpfs -o size={size_mib}m tmpfs "$0" && exec "$1" -c "$2" "$0" "$3"',
                           str(mount), sys.executable, _FULL_DISK, str(good)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert line, done.stdout + done.stderr
    result = json.loads(line[0][len("RESULT "):])
    assert result == {"unchanged": True, "journal": True, "read": True, "leftovers": [], "folded": 1,
                      "after": True, "journal_after": False}


def test_labels_move_with_an_episode_discarded_before_its_journal_was_folded(good, tmp_path):
    from collector.session.layout import DatasetLayout

    layout = DatasetLayout(tmp_path / "dataset")
    layout.ensure()
    path = layout.episodes_dir / good.name
    shutil.copy(good, path)
    saved = save_labels(path, Labels("ana", verdict="reject", reasons=["collision"]), fold=False)
    moved = layout.move_to_discard(path)
    assert not list(layout.episodes_dir.iterdir())  # nothing left behind
    assert [r.record_id for r in read_review(moved).records] == [saved.record_id]
