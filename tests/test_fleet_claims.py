"""Stations and plan-cell claims on both catalogue engines: concurrent station processes never collect a
cell beyond its need; a dead station's lease runs out and its cell passes on; heartbeats keep it."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from collector.fleet.claims import CellClaims
from collector.fleet.stations import StationRegistry
from collector.session.catalog import Catalog

CELLS = [(task, lighting, weight) for task in ("pour", "pick_place") for lighting in ("dim", "bright")
         for weight in ("light", "heavy")]

STATION = textwrap.dedent("""
    import json, sys, time
    from collector.fleet.claims import CellClaims
    from collector.session.catalog import Catalog
    location, station = sys.argv[1], sys.argv[2]
    claims = CellClaims(Catalog(location), "hall", lease_s=30)
    good, failed = [], 0
    while True:
        claim = claims.claim(station)
        if claim is None:
            break
        time.sleep(0.002)  # the take
        ok = (len(good) + failed) % 3 != 2  # every third take fails: its slot is freed for another try
        assert claims.finish(claim, good=ok, episode_id=f"{station}-{len(good)}")
        if ok:
            good.append([*claim.cell, claim.slot])
        else:
            failed += 1
    print(json.dumps({"good": good, "failed": failed}))
""")


def test_concurrent_stations_never_collect_a_cell_beyond_its_need(catalog_location):
    need = {cell: 1 + i % 3 for i, cell in enumerate(CELLS)}  # 1, 2 or 3 takes a cell: 15 in all
    CellClaims(Catalog(catalog_location), "hall").need(need.items())
    stations = 5
    procs = [subprocess.Popen([sys.executable, "-c", STATION, str(catalog_location), f"st{k}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(stations)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    taken = [tuple(g) for r in results for g in r["good"]]
    assert len(taken) == len(set(taken)) == sum(need.values())  # every slot once, none twice
    for cell, count in need.items():
        assert sum(1 for t in taken if t[:3] == cell) == count
    slots = CellClaims(Catalog(catalog_location), "hall").slots()
    assert all(s["done"] == 1 for s in slots) and len(slots) == sum(need.values())
    failed = sum(r["failed"] for r in results)
    assert sum(s["attempts"] for s in slots) == len(taken) + failed  # failed takes were tried again
    # Laying the need out again (a station restarting) adds nothing.
    CellClaims(Catalog(catalog_location), "hall").need(need.items())
    assert CellClaims(Catalog(catalog_location), "hall").claim("late") is None


DYING = textwrap.dedent("""
    import sys, time
    from collector.fleet.claims import CellClaims
    from collector.session.catalog import Catalog
    claim = CellClaims(Catalog(sys.argv[1]), "hall", lease_s=1.0).claim("doomed")
    print(claim.slot, flush=True)
    time.sleep(600)
""")


def test_a_dead_stations_claim_passes_on_after_its_lease(catalog_location):
    claims = CellClaims(Catalog(catalog_location), "hall", lease_s=1.0)
    claims.need([(("pour", "dim", "heavy"), 1)])
    doomed = subprocess.Popen([sys.executable, "-c", DYING, str(catalog_location)], stdout=subprocess.PIPE,
                              text=True)
    assert doomed.stdout.readline().strip() == "0"
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert claims.claim("st2") is None  # the lease still runs
    time.sleep(1.3)
    taken = claims.claim("st2")
    assert taken is not None and (taken.cell, taken.slot) == (("pour", "dim", "heavy"), 0)
    late = type(taken)(taken.plan, *taken.cell, taken.slot, "doomed", 0.0)  # the dead station's claim
    assert claims.finish(late, good=True) is False  # it came back too late: not its slot any more
    assert claims.finish(taken, good=True, episode_id="episode_000001") is True
    (slot,) = claims.slots()
    assert (slot["holder"], slot["done"], slot["claims"], slot["episode_id"]) == ("st2", 1, 2, "episode_000001")


def test_heartbeats_keep_a_live_stations_claim(catalog_location):
    claims = CellClaims(Catalog(catalog_location), "hall", lease_s=0.6)
    claims.need([(("pour", "dim", "heavy"), 1)])
    mine = claims.claim("st1")
    for _ in range(3):
        time.sleep(0.3)
        assert claims.renew("st1") == 1
    assert claims.claim("st2") is None  # 0.9 s after the claim, its 0.6 s lease was renewed
    assert claims.finish(mine, good=True)


def test_stations_register_and_send_heartbeats(catalog_location):
    registry = StationRegistry(Catalog(catalog_location))
    registry.register("st1", robot="humanoid", cameras=["head", "wrist_left"], version="0.1.0", host="h1")
    registry.register("st2", robot="humanoid_dex", cameras=["head"], version="0.1.0")
    assert registry.heartbeat("st1", state="recording pour/dim/heavy")
    assert not registry.heartbeat("ghost")
    time.sleep(0.3)
    registry.heartbeat("st1", state="idle")
    one, two = registry.stations(alive_within_s=0.2)
    assert (one["station"], one["cameras"], one["state"], one["alive"]) == ("st1", ["head", "wrist_left"], "idle", True)
    assert (two["station"], two["robot"], two["alive"]) == ("st2", "humanoid_dex", False)
    assert two["silent_s"] >= 0.3
    registry.register("st2", robot="humanoid_dex", cameras=["head"], version="0.2.0")  # a restart, upgraded
    assert [s["version"] for s in registry.stations()] == ["0.1.0", "0.2.0"]
