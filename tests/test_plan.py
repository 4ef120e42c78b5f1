"""Plan loading and validation: every malformed plan fails before anything starts, naming file, line, key, problem."""
import textwrap

import pytest

from collector.errors import ConfigError
from collector.session.cells import Cell, next_cell, plan_cells
from collector.session.coverage import Coverage
from collector.session.plan import KnownNames, load_plan, parse_plan

KNOWN = KnownNames(
    tasks={"pour": "Pour the cup into the bowl", "pick_place": "Put the cube in the bin"},
    lighting={"bright": "", "dim": "", "warm": ""},
    weights={"light": "", "heavy": ""},
    robots={"humanoid": ""},
    scenes={"lab": ""},
)

GOOD = textwrap.dedent("""\
    name: tiny
    robot: humanoid
    backend: sim
    tasks:
      - name: pour
        instruction: Pour slowly
      - pick_place
    lighting: [bright, dim]
    weights: [light, heavy]
    takes_per_cell: 2
    episode_time_limit_s: 12
    order: sequential
    reset: {mode: auto, settle_s: 0.1}
    """)


def parse(text, source="plans/p.yaml"):
    return parse_plan(text, source, KNOWN)


def test_good_plan_loads_with_defaults_and_instructions():
    plan = parse(GOOD)
    assert plan.name == "tiny"
    assert [t.name for t in plan.tasks] == ["pour", "pick_place"]
    assert plan.task("pour").instruction == "Pour slowly"
    # a task without an instruction gets the registry's description
    assert plan.task("pick_place").instruction == "Put the cube in the bin"
    assert plan.total_needed == 2 * 2 * 2 * 2
    assert plan.outcome == "auto" and plan.reset.mode == "auto" and plan.reset.settle_s == 0.1
    assert plan.attempts_cap == 6
    assert plan.time_limit_for("pour") == 12


def test_plan_file_on_disk(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD.replace("name: tiny\n", ""))
    plan = load_plan(path, KNOWN)
    assert plan.name == "mine" and plan.source == path


@pytest.mark.parametrize("edit, line, key, words", [
    (("- pick_place", "- pick_plaice"), 7, "tasks[1].name", "unknown task 'pick_plaice'"),
    (("[bright, dim]", "[bright, dimm]"), 8, "lighting[1]", "unknown lighting preset 'dimm'"),
    (("[light, heavy]", "[light, light]"), 9, "weights[1]", "listed twice"),
    (("robot: humanoid", "robot: r2d2"), 2, "robot", "unknown robot 'r2d2'"),
    (("takes_per_cell: 2", "takes_per_cell: two"), 10, "takes_per_cell", "must be an integer"),
    (("takes_per_cell: 2", "takes_per_cell: 0"), 10, "takes_per_cell", "at least 1"),
    (("episode_time_limit_s: 12", "episode_time_limit_s: .nan"), 11, "episode_time_limit_s", "finite number"),
    (("episode_time_limit_s: 12", "episode_time_limit_s: -3"), 11, "episode_time_limit_s", "greater than 0"),
    (("order: sequential", "order: random"), 12, "order", "not one of: sequential, shuffled, balanced"),
    (("backend: sim", "backend: gazebo"), 3, "backend", "not one of"),
    (("settle_s: 0.1", "settle: 0.1"), 13, "reset.settle", "unknown key"),
    (("order: sequential", "lightning: [dim]"), 12, "lightning", "unknown key"),
])
def test_bad_plans_name_file_line_key_and_problem(edit, line, key, words):
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"plans/p.yaml:{line}: {key}: "), message
    assert words in message


def test_missing_required_key_and_bad_yaml():
    with pytest.raises(ConfigError, match=r"^plans/p.yaml: weights: is required but missing"):
        parse(GOOD.replace("weights: [light, heavy]\n", ""))
    with pytest.raises(ConfigError, match=r"^plans/p.yaml:\d+: not valid YAML"):
        parse("robot: [humanoid\ntasks: x\n")
    with pytest.raises(ConfigError, match=r"<top level>: must be a mapping"):
        parse("- just\n- a list\n")


def test_hardware_plan_rules():
    ros = GOOD.replace("backend: sim", "backend: ros2").replace("reset: {mode: auto, settle_s: 0.1}", "reset: manual")
    with pytest.raises(ConfigError, match="operator: the scripted operator needs the sim backend"):
        parse(ros)
    plan = parse(ros + "operator: vr\n")
    assert plan.outcome == "operator" and plan.reset.mode == "manual"
    with pytest.raises(ConfigError, match="outcome: 'auto' outcome needs"):
        parse(ros + "operator: vr\noutcome: auto\n")
    with pytest.raises(ConfigError, match=r"reset.mode: 'auto' reset needs the sim backend"):
        parse(GOOD.replace("backend: sim", "backend: ros2") + "operator: keyboard\n")


def test_missing_plan_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read plan"):
        load_plan(tmp_path / "nope.yaml", KNOWN)


def _rows(plan, results):
    """Catalogue-like rows: results is a list of (cell, outcome)."""
    return [{"task": c.task, "lighting": c.lighting, "weight": c.weight, "status": "kept",
             "outcome": outcome, "qa": "pass"} for c, outcome in results]


def test_sequential_order_finishes_a_cell_before_moving_and_varies_lighting_slowest():
    plan = parse(GOOD)
    cells = plan_cells(plan)
    assert cells[0] == Cell("pour", "bright", "light") and cells[1] == Cell("pick_place", "bright", "light")
    assert [c.lighting for c in cells] == ["bright"] * 4 + ["dim"] * 4
    done, walked = [], []
    while (cell := next_cell(plan, Coverage.from_rows(plan, _rows(plan, done)))) is not None:
        walked.append(cell)
        done.append((cell, "success"))
    assert walked == [c for c in cells for _ in range(2)]


def test_balanced_order_fills_every_cell_once_before_any_twice():
    plan = parse(GOOD.replace("order: sequential", "order: balanced"))
    done = []
    for _ in range(len(plan_cells(plan))):
        done.append((next_cell(plan, Coverage.from_rows(plan, _rows(plan, done))), "success"))
    assert sorted(c for c, _ in done) == sorted(plan_cells(plan))


def test_shuffled_order_is_reproducible_and_covers_all():
    plan = parse(GOOD.replace("order: sequential", "order: shuffled"))

    def walk():
        done = []
        while (cell := next_cell(plan, Coverage.from_rows(plan, _rows(plan, done)))) is not None:
            done.append((cell, "success"))
        return [c for c, _ in done]

    first, second = walk(), walk()
    assert first == second
    assert first != [c for c in plan_cells(plan) for _ in range(2)]  # actually shuffled
    assert sorted(first) == sorted(c for c in plan_cells(plan) for _ in range(2))


def test_failures_count_as_attempts_and_a_hopeless_cell_is_given_up():
    plan = parse(GOOD)
    cell = plan_cells(plan)[0]
    coverage = Coverage.from_rows(plan, _rows(plan, [(cell, "failure")] * plan.attempts_cap))
    assert coverage.gave_up(cell) and not coverage.is_open(cell)
    assert next_cell(plan, coverage) == plan_cells(plan)[1]
    assert "0/2 !6" in coverage.table()


def test_coverage_table_and_dict_agree():
    plan = parse(GOOD)
    cells = plan_cells(plan)
    rows = _rows(plan, [(cells[0], "success"), (cells[0], "success"), (cells[1], "success"), (cells[2], "failure")])
    rows.append({**rows[0], "status": "discarded"})  # discarded takes do not count
    rows.append({**rows[0], "qa": "fail"})  # QA failures are attempts, not good takes
    coverage = Coverage.from_rows(plan, rows)
    assert coverage.done == 3 and coverage.needed == 16 and not coverage.complete
    assert coverage.attempts(cells[0]) == 3
    table = coverage.table()
    assert "pour / light" in table and "coverage: 3/16 good takes" in table
    states = {(c["task"], c["lighting"], c["weight"]): c for c in coverage.as_dict()["cells"]}
    assert states[tuple(cells[0])]["state"] == "done" and states[tuple(cells[1])]["good"] == 1


def test_balanced_order_spreads_the_first_takes_over_every_value():
    plan = parse(GOOD.replace("order: sequential", "order: balanced"))
    done = []
    for _ in range(4):
        done.append((next_cell(plan, Coverage.from_rows(plan, _rows(plan, done))), "success"))
    first = [c for c, _ in done]
    assert {c.task for c in first} == {"pour", "pick_place"}
    assert {c.lighting for c in first} == {"bright", "dim"}
    assert {c.weight for c in first} == {"light", "heavy"}
