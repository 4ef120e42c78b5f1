"""Eighteenth run: holds of the estimate replayed on estimate_time.py's per-frame arrays (open loop: the hands
as they moved in the steered rollouts). A hold keeps the mean of the newest W estimates (W=0: all) taken while
both hands were farther than R metres from that mean, fixed while one is nearer; printed: the median and 75th
and 90th percentile distance across the table (mm) between the held estimate at the close and the target, over
every rollout, successes and failures apart ("raw": the newest estimate, what the seventeenth run acted on).
The rule run closed loop (R 0.12, W 30) was chosen from this table, before any rollout of it.
Usage: python holds.py ROWS.pkl...  (holds.log: the 8 files of estimate_time.py)"""
import itertools
import pickle
import sys

import numpy as np


def xy(e):
    return np.linalg.norm(np.asarray(e)[..., :2], axis=-1)


def hold(r, R, W):
    est, hands = r["est"], r["hands"]
    L = est[0].copy()
    buf = [est[0]]
    for t in range(1, len(est)):
        d = min(np.linalg.norm(hands[t, :3] - L), np.linalg.norm(hands[t, 3:6] - L))
        if d > R:
            buf.append(est[t])
            buf = buf[-W:] if W else buf
            L = np.mean(buf, 0)
    return L


rows = sum((pickle.load(open(f, "rb")) for f in sys.argv[1:]), [])
for ok in (True, False):
    rs = [r for r in rows if r["ok"] == ok]
    print("successes" if ok else "failures", len(rs), "raw",
          np.round(np.percentile([xy(r["est"][-1] - r["where"][-1]) * 1e3 for r in rs], [50, 75, 90]), 1))
    for R, W in itertools.product((0.10, 0.12, 0.15), (10, 30, 0)):
        e = [xy(hold(r, R, W) - r["where"][-1]) * 1e3 for r in rs]
        print(f"  R {R} W {W}", np.round(np.percentile(e, [50, 75, 90]), 1))
