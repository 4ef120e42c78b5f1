"""Fourteenth run, second half: the near-miss demonstrations with the deliberate misses left out of the loss, as
DART labels a perturbed state with the supervisor's own action and never with the perturbation. A derived copy
of each of the 100 takes (data/pick_miss_masked; the recorded files are left as they are) relabels the `control`
samples from the start of a take's near-miss descent to the end of its `notice miss` pause as commanded by a
source `perturbation`; training with `control: ["operator"]` then samples no row inside a miss and cuts every
chunk where a miss begins (EpisodeDataset's HG-DAgger path, the one corrections use). The recovery (lift clear,
re-aim, grasp) stays the operator's and is learned.
Usage: python derive_masked.py WORK"""
import json, shutil, sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_learning as B  # noqa: E402

WORK = Path(sys.argv[1])
SOURCE, OUT = WORK / "data" / "pick_miss", WORK / "data" / "pick_miss_masked" / "episodes"


def miss_span(phases):
    names = [p["name"] for p in phases]
    if "notice miss" not in names:
        return None
    notice = names.index("notice miss")
    return phases[notice - 1]["start_t"], phases[notice]["end_t"]  # the near-miss descent, then the pause


def derive(path: Path) -> dict:
    out = OUT / path.name
    shutil.copyfile(path, out)
    with h5py.File(out, "r+") as f:
        span = miss_span(json.loads(f.attrs["operator_phases"]))
        if span is None:
            return {"file": path.name, "miss": False, "rows": 0}
        control = f["raw/control"]
        spec = json.loads(control.attrs["spec"])
        spec["attrs"]["sources"] = {"operator": 0, "perturbation": 1}
        control.attrs["spec"] = json.dumps(spec, sort_keys=True)
        t = control["t"][:]
        inside = (t >= span[0]) & (t < span[1])
        codes = control["source"][:]
        codes[inside] = 1
        control["source"][...] = codes
        return {"file": path.name, "miss": True, "rows": int(inside.sum()), "span": [round(s, 3) for s in span]}


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    done = [derive(Path(p)) for p in B.demo_files(SOURCE)]
    print(json.dumps({"takes": len(done), "with_miss": sum(d["miss"] for d in done),
                      "perturbation_ticks": sum(d["rows"] for d in done)}))
