"""`collector catalog migrate` brings a folder's fleet along (issue 18): its stations, its plans' cell slots
(a claimed slot keeps its holder and lease, a completed one its take) and its accounts, from SQLite into a
real PostgreSQL server, where stations go on claiming as if nothing had moved."""
from collector.accounts.store import AccountStore
from collector.cli import main
from collector.fleet.claims import CellClaims
from collector.fleet.stations import StationRegistry
from collector.session.catalog import Catalog
from collector.session.layout import DatasetLayout

CELL = ("pour", "dim", "heavy")


def _fleet_folder(tmp_path):
    layout = DatasetLayout(tmp_path / "hall").ensure()
    catalog = Catalog(layout.catalog_path)
    registry = StationRegistry(catalog)
    for name in ("st1", "st2"):
        registry.register(name, robot="humanoid", cameras=["head", "wrist"], version="0.9", host=f"{name}.floor")
    registry.heartbeat("st2", '{"activity": "recording"}')
    claims = CellClaims(catalog, "demo", lease_s=600.0)
    claims.need([(CELL, 3), (("pick_place", "dim", "heavy"), 1)])
    take = catalog.allocate_episode(session_id="s1", plan="demo", task="pour", lighting="dim", weight="heavy",
                                    station="st1")
    catalog.update_episode(take.episode_index, status="kept", outcome="success", qa="pass")
    completed = claims.claim("st1", [CELL])
    assert claims.finish(completed, good=True, episode_id=take.episode_id)
    held = claims.claim("st2", [CELL])  # st2 is recording it when the folder moves
    AccountStore(catalog).add("ana", "admin", "correct horse battery")
    return layout, catalog, held


def test_migrate_copies_stations_claimed_and_completed_slots_and_accounts(tmp_path, postgres_url, capsys):
    layout, catalog, held = _fleet_folder(tmp_path)
    slots_before = CellClaims(catalog, "demo").slots()
    stations_before = StationRegistry(catalog).stations()

    assert main(["catalog", "migrate", str(layout.root), postgres_url]) == 0
    out = capsys.readouterr().out
    assert "2 stations" in out and "4 cell_slots" in out and "1 accounts" in out

    server = Catalog(layout.catalog_path)
    assert server.is_postgres
    claims = CellClaims(server, "demo", lease_s=600.0)
    assert claims.slots() == slots_before
    done, claimed = claims.slots()[1], claims.slots()[2]  # pick_place/0, then pour/0, 1, 2
    assert (done["done"], done["episode_id"]) == (1, "episode_000001")
    assert (claimed["holder"], claimed["lease_until"]) == ("st2", held.lease_until)
    after = StationRegistry(server).stations()
    assert [{k: v for k, v in s.items() if k not in ("silent_s", "alive")} for s in after] == \
        [{k: v for k, v in s.items() if k not in ("silent_s", "alive")} for s in stations_before]
    assert AccountStore(server).check("ana", "correct horse battery").role == "admin"

    # The floor carries on: st2 still holds its slot, the done one stays done, a third station gets the last.
    third = claims.claim("st3", [CELL])
    assert (third.cell, third.slot) == (CELL, 2)
    assert claims.claim("st4", [CELL]) is None
    assert claims.finish(held, good=False)  # st2's claim is still its own on the server
