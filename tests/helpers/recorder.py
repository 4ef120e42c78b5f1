"""Shared helpers for the recorder tests (no tests here): synthetic episodes with known content.

Stamps are synthetic (a session clock starting at T0), so files are deterministic; the writer runs
with its real threads and writes real HDF5 files.
"""
import numpy as np

from collector.recorder import EpisodeWriter, FieldSpec, StreamSpec, camera_stream

T0 = 100.0
N_JOINTS = 6
CAM_W, CAM_H = 32, 24
CONDITIONS = {"lighting": {"name": "dim", "intensity": 0.3, "ambient": [0.1, 0.1, 0.1]},
              "weights": {"cup": 0.25, "box": 1.5}, "scene": "kitchen", "seed": 7}
METADATA = {"session_id": "s1", "robot": "h1", "task": "pour", "instruction": "pour the cup", "operator": "ana",
            "station": "st1", "sim": True, "robot_model_hash": "abc123", "conditions": CONDITIONS,
            "camera_calibration": {"head": {"fx": 30.0, "fy": 30.0, "cx": 16.0, "cy": 12.0}}}


def joint_position(t):
    return 0.1 * np.sin(np.asarray(t, dtype=np.float64)[..., None] + np.arange(N_JOINTS))


def frame(k, seed=0):
    """Smooth gradient moving with the frame number plus mild noise: realistic-ish, never repeats."""
    rng = np.random.default_rng(seed * 100003 + k)
    x = np.linspace(0, 200, CAM_W)[None, :, None] + np.linspace(0, 50, CAM_H)[:, None, None]
    img = (x + 3 * k + rng.normal(0, 2, (CAM_H, CAM_W, 3))) % 256
    return img.astype(np.uint8)


def specs(codecs=("jpeg",), tolerance=None):
    out = [
        StreamSpec("joints", {"position": FieldSpec((N_JOINTS,)), "velocity": FieldSpec((N_JOINTS,)),
                              "effort": FieldSpec((N_JOINTS,))}, rate_hz=100, kind="joints", tolerance_s=tolerance),
        StreamSpec("command", {"position": FieldSpec((N_JOINTS,))}, rate_hz=50, kind="command", tolerance_s=tolerance),
        StreamSpec("input", {"pose": FieldSpec((7,)), "buttons": FieldSpec((2,), "int32")}, rate_hz=90,
                   kind="input", default_align="linear", align={"buttons": "backward"}, tolerance_s=tolerance),
    ]
    for i, codec in enumerate(codecs):
        out.append(camera_stream(f"camera_{['head', 'wrist', 'left', 'right'][i]}", CAM_W, CAM_H, 30, codec=codec,
                                 tolerance_s=tolerance))
    return out


def events(seconds, jitter=0.0, seed=0, gap=None, frozen=None, n_cams=1, frozen_cams=None):
    """(t, stream, fields) in time order, as a producer would push them."""
    rng = np.random.default_rng(seed)
    out = []

    def stamps(rate):
        n = int(round(seconds * rate))
        t = T0 + np.arange(n) / rate
        if jitter:
            t = t + rng.uniform(0, jitter / rate, n)
        return t

    for t in stamps(100):
        if gap and gap[0] <= t < gap[1]:
            continue
        q = joint_position(t)
        out.append((t, "joints", {"position": q, "velocity": 2 * q, "effort": 3 * q}))
    for t in stamps(50):
        out.append((t, "command", {"position": joint_position(t) + 0.01}))
    for t in stamps(90):
        pose = np.r_[t - T0, 2 * (t - T0), 0.5, 1.0, 0.0, 0.0, 0.0]
        out.append((t, "input", {"pose": pose, "buttons": np.array([int(t * 10) % 2, 1], np.int32)}))
    for c in range(n_cams):
        name = f"camera_{['head', 'wrist', 'left', 'right'][c]}"
        frozen_k = None
        for k, t in enumerate(stamps(30)):
            shown = k
            if frozen and frozen[0] <= t < frozen[1] and (frozen_cams is None or c in frozen_cams):
                frozen_k = k if frozen_k is None else frozen_k
                shown = frozen_k  # the camera keeps delivering the same frame
            out.append((t, name, {"image": frame(shown, seed=c)}))
    out.sort(key=lambda e: e[0])
    return out


def record(directory, episode_id="episode_000001", seconds=3.0, codecs=("jpeg",), metadata=None, outcome="success",
           jitter=0.0, gap=None, frozen=None, frozen_cams=None, tolerance=None, **writer_kw):
    """Record a synthetic episode through the real writer and return (final path, writer)."""
    writer_kw.setdefault("queue_seconds", 1000.0)  # bulk pushing far faster than real time must not drop
    writer = EpisodeWriter(directory, episode_id, specs(codecs, tolerance),
                           metadata=dict(METADATA if metadata is None else metadata), **writer_kw)
    writer.start()
    for t, stream, fields in events(seconds, jitter, gap=gap, frozen=frozen, n_cams=len(codecs),
                                    frozen_cams=frozen_cams):
        assert writer.push(stream, t, **fields), (stream, t)
    return writer.stop(outcome=outcome), writer
