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


LEASE_S = 3.0  # long enough that a loaded machine's pauses do not decide these tests; each waits it out once
DYING = textwrap.dedent(f"""
    import sys, time
    from collector.fleet.claims import CellClaims
    from collector.session.catalog import Catalog
    claim = CellClaims(Catalog(sys.argv[1]), "hall", lease_s={LEASE_S}).claim("doomed")
    print(claim.slot, flush=True)
    time.sleep(600)
""")


def test_a_dead_stations_claim_passes_on_after_its_lease(catalog_location):
    claims = CellClaims(Catalog(catalog_location), "hall", lease_s=LEASE_S)
    claims.need([(("pour", "dim", "heavy"), 1)])
    started = time.monotonic()  # the dying station's lease runs until some time after this + LEASE_S
    doomed = subprocess.Popen([sys.executable, "-c", DYING, str(catalog_location)], stdout=subprocess.PIPE,
                              text=True)
    assert doomed.stdout.readline().strip() == "0"
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    early = claims.claim("st2")
    if time.monotonic() < started + LEASE_S:  # asked (and answered) while the lease certainly ran
        assert early is None
    taken = early
    while taken is None:  # the cell passes on once the lease runs out, not before
        assert time.monotonic() < started + LEASE_S + 60, "the dead station's claim never passed on"
        time.sleep(0.1)
        taken = claims.claim("st2")
    assert time.monotonic() >= started + LEASE_S
    assert (taken.cell, taken.slot) == (("pour", "dim", "heavy"), 0)
    late = type(taken)(taken.plan, *taken.cell, taken.slot, "doomed", 0.0)  # the dead station's claim
    assert claims.finish(late, good=True) is False  # it came back too late: not its slot any more
    assert claims.finish(taken, good=True, episode_id="episode_000001") is True
    (slot,) = claims.slots()
    assert (slot["holder"], slot["done"], slot["claims"], slot["episode_id"]) == ("st2", 1, 2, "episode_000001")


def test_heartbeats_keep_a_live_stations_claim(catalog_location):
    claims = CellClaims(Catalog(catalog_location), "hall", lease_s=LEASE_S)
    claims.need([(("pour", "dim", "heavy"), 1)])
    claimed = time.monotonic()
    mine = claims.claim("st1")
    while time.monotonic() < claimed + LEASE_S + 0.5:  # renewed every 0.5 s, well inside the lease
        time.sleep(0.5)
        assert claims.renew("st1") == 1
    assert claims.claim("st2") is None  # longer than its lease after the claim, the renewals kept it
    assert claims.finish(mine, good=True)


def test_stations_register_and_send_heartbeats(catalog_location):
    registry = StationRegistry(Catalog(catalog_location))
    registry.register("st1", robot="humanoid", cameras=["head", "wrist_left"], version="0.1.0", host="h1")
    registry.register("st2", robot="humanoid_dex", cameras=["head"], version="0.1.0")
    assert registry.heartbeat("st1", state="recording pour/dim/heavy")
    assert not registry.heartbeat("ghost")
    time.sleep(1.0)
    registry.heartbeat("st1", state="idle")
    one, two = registry.stations(alive_within_s=0.9)  # st1 spoke just now, st2 over 1 s ago
    assert (one["station"], one["cameras"], one["state"], one["alive"]) == ("st1", ["head", "wrist_left"], "idle", True)
    assert (two["station"], two["robot"], two["alive"]) == ("st2", "humanoid_dex", False)
    assert two["silent_s"] >= 1.0
    registry.register("st2", robot="humanoid_dex", cameras=["head"], version="0.2.0")  # a restart, upgraded
    assert [s["version"] for s in registry.stations()] == ["0.1.0", "0.2.0"]


def test_a_claim_takes_the_first_preferred_cell_with_a_free_slot(catalog_location):
    claims = CellClaims(Catalog(catalog_location), "hall", lease_s=30)
    claims.need([(cell, 1) for cell in CELLS])
    order = [CELLS[5], CELLS[2], CELLS[7]]
    first = claims.claim("st1", order)
    second = claims.claim("st2", order)  # st1 holds the first choice: the next one
    assert (first.cell, second.cell) == (CELLS[5], CELLS[2])
    assert claims.finish(first, good=False)  # a failed take frees its cell for the next station that prefers it
    assert claims.claim("st3", order).cell == CELLS[5]
    assert claims.claim("st4", [CELLS[5], CELLS[2]]) is None  # held: nothing of these cells is free
    assert claims.claim("st4", []) is None
    assert claims.release("st2") == 1  # a station stopping frees what it holds, without an attempt
    again = claims.claim("st4", [CELLS[2]])
    assert again.cell == CELLS[2]
    (slot,) = [s for s in claims.slots() if (s["task"], s["lighting"], s["weight"]) == CELLS[2]]
    assert (slot["holder"], slot["claims"], slot["attempts"]) == ("st4", 2, 0)


def _take(catalog, cell, station, outcome="success", qa="pass"):
    row = catalog.allocate_episode(session_id=f"s-{station}", plan="hall", task=cell[0], lighting=cell[1],
                                   weight=cell[2], station=station)
    return catalog.update_episode(row.episode_index, status="kept", outcome=outcome, qa=qa)


def _good(row):
    return row["status"] in ("kept", "recovered") and row["outcome"] == "success" and row["qa"] == "pass"


def test_takes_judged_after_their_claim_are_accounted_once(catalog_location):
    """A station's good take without a slot (recovered after a kill -9, marked good later) completes a free
    slot of its cell, or is an extra take when another station completed it; a take no longer good frees
    its slot; the first layout counts the good takes already in the catalogue."""
    catalog = Catalog(catalog_location)
    pour, pick = ("pour", "dim", "heavy"), ("pick_place", "dim", "heavy")
    legacy = _take(catalog, pour, "old")  # recorded before claims existed
    claims = CellClaims(catalog, "hall", lease_s=30)
    claims.need([(pour, 2), (pick, 1)], done={pour: [legacy.episode_id]})
    claims.need([(pour, 2), (pick, 1)], done={pour: ["ignored"]})  # laid out already: only the first one adopts
    assert [(s["done"], s["episode_id"]) for s in claims.slots()] == [(0, ""), (1, legacy.episode_id), (0, "")]

    taken = claims.claim("st2", [pick])
    theirs = _take(catalog, pick, "st2")
    assert claims.finish(taken, good=True, episode_id=theirs.episode_id)
    recovered = _take(catalog, pick, "st1")  # st1's take of the same cell, settled after st1 lost its claim
    mine = _take(catalog, pour, "st1")
    rows, done = claims.reconcile(lambda: catalog.episodes(plan="hall"), "st1", _good)
    assert len(rows) == 4
    assert (done.completed, done.extra, done.reopened) == ([mine.episode_id], [recovered.episode_id], [])
    assert claims.reconcile(lambda: catalog.episodes(plan="hall"), "st1", _good)[1].completed == []  # once
    assert claims.claim("st3", [pour, pick]) is None  # pour's two slots are done, pick's one too

    catalog.update_episode(theirs.episode_index, status="discarded")  # st2's operator threw it away
    _, done = claims.reconcile(lambda: catalog.episodes(plan="hall"), "st1", _good)
    assert done.reopened == [theirs.episode_id] and done.completed == [recovered.episode_id]  # the extra fills it
    assert {s["episode_id"] for s in claims.slots()} == {legacy.episode_id, mine.episode_id, recovered.episode_id}

    claims.need([(pour, 1), (pick, 1)])  # the plan asks fewer now: only free slots beyond the need go
    assert len(claims.slots()) == 3
    catalog.update_episode(mine.episode_index, outcome="failure")
    claims.reconcile(lambda: catalog.episodes(plan="hall"), "st1", _good)
    claims.need([(pour, 1), (pick, 1)])
    assert [(s["slot"], s["episode_id"]) for s in claims.slots()] == [(0, recovered.episode_id), (0, legacy.episode_id)]
