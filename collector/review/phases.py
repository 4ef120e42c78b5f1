"""The scripted operator's own phases as subtasks: the ground truth subtask suggestions are measured against.

A scripted take records the segments the operator performed (root attribute `operator_phases`, a JSON
list of {name, start_t, end_t[, cut]} on the episode's clock; collector/teleop/devices/scripted.py).
Their names are the operator's ("descend", "pour 75%", "let go"); SKILL_OF_PHASE maps them to the
task's skills (configs/review.yaml). A phase mapped to None (waiting before the deadman, the hand
going home after the task) belongs to no skill.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

from collector.review.annotations import Subtask

OPERATOR_PHASES = "operator_phases"

# Operator segment -> task skill, one table for every task the scripted operator performs.
SKILL_OF_PHASE: Dict[str, Dict[str, Optional[str]]] = {
    "pick_place": {
        "wait": None,
        "approach": "reach", "align": "reach", "descend": "reach",
        "grasp": "grasp", "settle": "grasp",
        "lift": "lift",
        "carry": "move",
        "lower": "place",
        "release": "release", "let go": "release",
        "retreat": None, "return": None, "rest": None,
    },
    "pour": {
        "wait": None,
        # pour has no "reach" skill: getting the hand round the handle is part of grasping it
        "approach": "grasp", "align": "grasp", "reach in": "grasp", "grasp": "grasp", "settle": "grasp",
        # lifting the pitcher and bringing it over the cup
        "lift": "lift", "carry": "lift", "lower to cup": "lift", "aim": "lift",
        # tipping quickly until the water reaches the lip, then slowly while it pours
        "pour 45%": "tilt",
        "pour 75%": "pour", "pour 100%": "pour", "shake": "pour", "drain": "pour",
        # tipping back, carrying the pitcher home and letting it go
        "tip back": "return", "return pitcher": "return", "set down": "return", "release": "return",
        "let go": "return",
        "retreat": None, "return": None, "rest": None,
    },
}
_NUMBERED = re.compile(r"^(.*\S)\s+\d+$")  # "shake 2" is a "shake"


def skill_of(task: str, phase: str) -> Optional[str]:
    """The task skill an operator phase belongs to (None: no skill, or a phase the table does not know)."""
    table = SKILL_OF_PHASE.get(task, {})
    if phase in table:
        return table[phase]
    numbered = _NUMBERED.match(phase)
    return table.get(numbered.group(1)) if numbered else None


def phases_to_subtasks(task: str, phases: Sequence[dict]) -> List[Subtask]:
    """Consecutive phases of one skill merged into one subtask, in time order."""
    subtasks: List[Subtask] = []
    last_skill = None
    for phase in sorted(phases, key=lambda p: float(p["start_t"])):
        skill = skill_of(task, str(phase["name"]))
        start, end = float(phase["start_t"]), float(phase["end_t"])
        if skill is not None and skill == last_skill and abs(subtasks[-1].end_t - start) < 1e-6:
            subtasks[-1].end_t = end
        elif skill is not None:
            subtasks.append(Subtask(skill, start, end))
        last_skill = skill
    return subtasks
