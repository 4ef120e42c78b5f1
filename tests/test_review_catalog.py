"""Review labels in the catalogue: the schema upgrade, mirroring saves, verdicts, `catalog list --verdict`,
`catalog reviews`, rebuild from the files, `catalog clean` of review journals, and plans counting accepted takes."""
import json
import shutil
import sqlite3
import textwrap

import pytest

from collector.cli import main
from collector.errors import ConfigError
from collector.review.annotations import JOURNAL_SUFFIX, Labels, Subtask, read_review, save_labels
from collector.session.catalog import SCHEMA_VERSION, Catalog
from collector.session.coverage import Coverage
from collector.session.cells import Cell
from collector.session.layout import DatasetLayout
from collector.session.plan import KnownNames, parse_plan


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Three real episodes (pick_place, pour, pick_place) in a dataset folder with its catalogue."""
    from collector.dataset.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("rc") / "data", 3, camera_size=(24, 32), duration_s=1.0,
                                   outcomes=("success",), lightings=("bright",), weights=("light",))


@pytest.fixture()
def root(recorded, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(recorded, copy)
    return copy


def _episode(root, index):
    layout = DatasetLayout(root)
    catalog = Catalog(layout.catalog_path)
    return catalog, layout.absolute(catalog.episode(index).path)


def _save(path, reviewer, verdict, **fields):
    return save_labels(path, Labels(reviewer, verdict=verdict, **fields))


def test_a_schema_3_catalogue_is_upgraded_on_open_and_keeps_its_rows(tmp_path):
    path = tmp_path / "catalog.sqlite"
    old = Catalog(path)
    old.allocate_episode(session_id="s", plan="p", task="pour", lighting="dim", weight="light")
    old.update_episode(1, status="kept", outcome="success", qa="pass")
    with sqlite3.connect(path) as conn:  # what a collector of schema 3 wrote: no reviews, no review columns
        conn.executescript("DROP TABLE reviews; DROP INDEX episodes_condition; DROP INDEX episodes_plan_cell;"
                           " ALTER TABLE episodes DROP COLUMN review_verdict;"
                           " ALTER TABLE episodes DROP COLUMN reviewers;"
                           " ALTER TABLE episodes DROP COLUMN recorded_outcome; PRAGMA user_version=3;")
    upgraded = Catalog(path)
    row = upgraded.episode(1)
    assert (row.task, row.outcome, row.verdict, row.reviewers, row.recorded_outcome) == \
        ("pour", "success", "unreviewed", 0, "")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        columns = {r[1] for r in conn.execute("PRAGMA table_info(reviews)")}
    assert {"episode_index", "reviewer", "record_id", "verdict", "reasons", "outcome", "subtasks", "instructions",
            "notes", "saved_at"} <= columns
    labels = Labels("ana", verdict="reject", reasons=["collision"], record_id="r1", saved_at="2026-12-02T00:00:00Z",
                    revision=1)
    assert upgraded.record_review("episode_000001", labels).verdict == "rejected"
    assert upgraded.episodes(verdict="rejected")[0].episode_index == 1


def test_record_review_is_idempotent_and_mirrors_what_the_file_says(root):
    catalog, path = _episode(root, 1)
    saved = _save(path, "ana", "accept", subtasks=[Subtask("grasp", 100.2, 100.5)],
                  instructions=["Put the cube in the tray."], notes="clean take")
    for _ in range(3):
        row = catalog.record_review(1, saved)
    catalog.record_review("episode_000001", read_review(path))  # the whole review again: nothing new
    records = catalog.review_records()
    assert len(records) == 1 and records[0]["record_id"] == saved.record_id
    assert records[0]["subtasks"] == [{"name": "grasp", "start_t": 100.2, "end_t": 100.5}]
    assert records[0]["instructions"] == ["Put the cube in the tray."] and records[0]["notes"] == "clean take"
    assert (row.verdict, row.reviewers) == ("accepted", 1)
    assert catalog.review(1).instructions == read_review(path).instructions


def test_two_reviewers_disputed_then_accepted_and_the_outcome_override(root):
    catalog, path = _episode(root, 2)
    catalog.record_review(2, _save(path, "ana", "accept"))
    row = catalog.record_review(2, _save(path, "ben", "reject", reasons=["dropped object"], outcome="failure"))
    assert (row.verdict, row.reviewers) == ("disputed", 2)
    assert (row.outcome, row.recorded_outcome) == ("failure", "success")  # the reviewer's word, the recorded kept
    row = catalog.record_review(2, _save(path, "ben", "accept"))  # ben changes his mind, withdraws the override
    assert (row.verdict, row.reviewers) == ("accepted", 2)
    assert (row.outcome, row.recorded_outcome) == ("success", "")
    assert len(catalog.review_records()) == 3  # every save is kept, both reviewers' labels side by side


def test_catalog_list_by_verdict_and_reviews_with_agreement(root, capsys):
    catalog, first = _episode(root, 1)
    _, second = _episode(root, 2)
    catalog.record_review(1, _save(first, "ana", "accept", subtasks=[Subtask("reach", 100.0, 100.4)]))
    catalog.record_review(1, _save(first, "ben", "accept", subtasks=[Subtask("reach", 100.0, 100.6)]))
    catalog.record_review(2, _save(second, "ana", "accept"))
    catalog.record_review(2, _save(second, "ben", "reject", reasons=["idle too long"]))
    capsys.readouterr()

    assert main(["catalog", "list", str(root), "--verdict", "accepted", "--paths"]) == 0
    assert capsys.readouterr().out.split() == [str(first)]
    assert main(["catalog", "list", str(root), "--unreviewed", "--json"]) == 0
    assert [r["episode_id"] for r in json.loads(capsys.readouterr().out)] == ["episode_000003"]
    assert main(["catalog", "list", str(root), "--reviewed", "--json"]) == 0
    assert [r["review_verdict"] for r in json.loads(capsys.readouterr().out)] == ["accepted", "disputed"]
    with pytest.raises(SystemExit) as exit_code:
        main(["catalog", "list", str(root), "--verdict", "great"])
    assert exit_code.value.code == 2 and "invalid choice: 'great'" in capsys.readouterr().err

    assert main(["catalog", "summary", str(root)]) == 0
    assert "reviews: 1 accepted, 1 disputed, 1 unreviewed" in capsys.readouterr().out
    assert main(["catalog", "reviews", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agreement"]["compared"] == 2 and report["agreement"]["verdict_agreement_rate"] == 0.5
    assert report["agreement"]["boundary_mean_diff_s"] == pytest.approx(0.1)  # ends differ by 0.2 s, starts by 0
    assert main(["catalog", "reviews", str(root)]) == 0
    text = capsys.readouterr().out
    assert "verdicts agree on 50%" in text and "disputed" in text and "0.10 s" in text


def test_rebuild_restores_reviews_from_the_files_and_journals(root, capsys):
    catalog, first = _episode(root, 1)
    _, third = _episode(root, 3)
    catalog.record_review(1, _save(first, "ana", "reject", reasons=["camera frozen"], outcome="failure"))
    # saved to the journal only (the fold never ran): a rebuild must still find it
    catalog.record_review(3, save_labels(third, Labels("ben", verdict="accept"), fold=False))
    assert third.with_name(third.name + JOURNAL_SUFFIX).exists()
    before = {r["record_id"] for r in catalog.review_records()}

    assert main(["catalog", "rebuild", str(root), "--force"]) == 0
    assert "2 reviewed" in capsys.readouterr().out
    rebuilt = Catalog(root / "catalog.sqlite")
    assert {r["record_id"] for r in rebuilt.review_records()} == before
    one, three = rebuilt.episode(1), rebuilt.episode(3)
    assert (one.verdict, one.outcome, one.recorded_outcome) == ("rejected", "failure", "success")
    assert (three.verdict, rebuilt.episode(2).verdict) == ("accepted", "unreviewed")


def test_catalog_clean_deletes_a_discarded_takes_review_journal(root, capsys):
    catalog, path = _episode(root, 2)
    assert main(["catalog", "discard", str(root), "2"]) == 0
    discarded = DatasetLayout(root).absolute(catalog.episode(2).path)
    save_labels(discarded, Labels("ana", verdict="reject"), fold=False)  # a journal beside the discarded file
    journal = discarded.with_name(discarded.name + JOURNAL_SUFFIX)
    assert journal.exists()
    assert main(["catalog", "clean", str(root), "--yes"]) == 0
    assert not discarded.exists() and not journal.exists()
    assert catalog.episode(2).status == "purged"


KNOWN = KnownNames(tasks={"pour": "", "pick_place": ""}, lighting={"bright": ""}, weights={"light": ""},
                   robots={"humanoid": ""})
PLAN = textwrap.dedent("""\
    robot: humanoid
    tasks: [pick_place]
    lighting: [bright]
    weights: [light]
    takes_per_cell: 2
    """)


def test_a_plan_can_count_only_accepted_takes(root):
    default = parse_plan(PLAN, "plans/p.yaml", KNOWN)
    accepted = parse_plan(PLAN + "count: accepted\n", "plans/p.yaml", KNOWN)
    assert (default.count, accepted.count) == ("good", "accepted")
    with pytest.raises(ConfigError, match=r"plans/p.yaml:6: count: 'reviewed' is not one of: good, accepted"):
        parse_plan(PLAN + "count: reviewed\n", "plans/p.yaml", KNOWN)

    catalog, first = _episode(root, 1)  # episodes 1 and 3 are kept, successful pick_place takes in this cell
    cell = Cell("pick_place", "bright", "light")
    assert Coverage.from_rows(default, catalog.episodes()).good(cell) == 2
    assert Coverage.from_rows(accepted, catalog.episodes()).good(cell) == 0  # nobody reviewed them yet
    catalog.record_review(1, _save(first, "ana", "accept"))
    _, third = _episode(root, 3)
    catalog.record_review(3, _save(third, "ana", "reject"))
    coverage = Coverage.from_rows(accepted, catalog.episodes())
    assert coverage.good(cell) == 1 and coverage.attempts(cell) == 2 and not coverage.is_done(cell)
    assert "coverage: 1/2 accepted takes" in coverage.table()
    assert Coverage.from_rows(default, catalog.episodes()).good(cell) == 2  # default unchanged
