"""What a policy is told about the take: the task and, for pick-and-place, which object to move.

Pick-and-place names one of three objects per episode ("Put the yellow ball in the blue tray.") and
shuffles their slots, so the images alone do not say which one to take. The simulator records the
choice in the episode's conditions (`object_layout.target`, also in the instruction text); the
recorder keeps the conditions JSON as a root attribute. A policy gets two tokens per sample, the task
and the target object ("<none>" for tasks without one), from a small vocabulary built from the
training episodes and saved in the checkpoint. Tokens rather than a sentence encoder: the
instructions are generated from these two facts, and a language model would be a download.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from collector.errors import ConfigError

NO_TARGET = "<none>"
TASK_PREFIX = "task:"
OBJECT_PREFIX = "object:"


def episode_conditioning(metadata: Mapping) -> Tuple[str, str]:
    """(task, target object) of an episode from its root metadata (task, conditions JSON)."""
    conditions = metadata.get("conditions") if isinstance(metadata.get("conditions"), dict) else {}
    task = str(metadata.get("task") or conditions.get("task") or "")
    layout = conditions.get("object_layout")
    target = layout.get("target") if isinstance(layout, dict) else None
    if not target and isinstance(conditions.get("task_params"), dict):
        target = conditions["task_params"].get("target")
    return task, str(target) if target else NO_TARGET


@dataclass
class ConditioningVocabulary:
    """Token ids for tasks and target objects, plus the instructions seen in training."""

    tokens: List[str] = field(default_factory=list)
    # instruction text -> (task, target) as recorded, so a runner can be reset with the sentence alone
    instructions: Dict[str, Tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, examples: Sequence[Tuple[str, str, str]]) -> "ConditioningVocabulary":
        """From (task, target, instruction) of every training episode; sorted, so the same episodes
        always give the same ids."""
        tasks = sorted({task for task, _, _ in examples})
        targets = sorted({target for _, target, _ in examples})
        instructions = {text: (task, target) for task, target, text in sorted(examples) if text}
        return cls([TASK_PREFIX + t for t in tasks] + [OBJECT_PREFIX + t for t in targets], instructions)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def tasks(self) -> List[str]:
        return [t[len(TASK_PREFIX):] for t in self.tokens if t.startswith(TASK_PREFIX)]

    @property
    def targets(self) -> List[str]:
        return [t[len(OBJECT_PREFIX):] for t in self.tokens if t.startswith(OBJECT_PREFIX)]

    def encode(self, task: str, target: str = NO_TARGET) -> List[int]:
        """[task id, target id]; a ConfigError names a task or object the policy never saw."""
        ids = {token: i for i, token in enumerate(self.tokens)}
        if TASK_PREFIX + task not in ids:
            raise ConfigError(f"the policy was not trained on task {task!r} (it knows: {', '.join(self.tasks)})")
        if OBJECT_PREFIX + target not in ids:
            raise ConfigError(f"the policy was not trained with target object {target!r} "
                              f"(it knows: {', '.join(self.targets)})")
        return [ids[TASK_PREFIX + task], ids[OBJECT_PREFIX + target]]

    def resolve(self, instruction: str = "", task: Optional[str] = None,
                target: Optional[str] = None) -> Tuple[str, str]:
        """(task, target) for an instruction: a sentence seen in training, or the task plus the one
        known object named in the sentence."""
        if instruction in self.instructions and task in (None, self.instructions[instruction][0]) \
                and target in (None, self.instructions[instruction][1]):
            return self.instructions[instruction]
        if task is None:
            if len(self.tasks) != 1:
                raise ConfigError(f"instruction {instruction!r} was not seen in training; name the task "
                                  f"(one of: {', '.join(self.tasks)})")
            task = self.tasks[0]
        if task not in self.tasks:
            self.encode(task)  # raises, naming the tasks it knows
        if target is None:
            words = set(re.findall(r"[a-z_]+", instruction.lower()))
            named = [t for t in self.targets if t != NO_TARGET and t in words]
            if len(named) > 1:
                raise ConfigError(f"instruction {instruction!r} names several objects ({', '.join(named)})")
            target = named[0] if named else NO_TARGET
            if target not in self.targets:
                raise ConfigError(f"instruction {instruction!r} names none of the objects the policy was trained "
                                  f"with ({', '.join(self.targets)})")
        return task, target

    def to_state(self) -> dict:
        return {"tokens": list(self.tokens), "instructions": {k: list(v) for k, v in self.instructions.items()}}

    @classmethod
    def from_state(cls, state: Mapping) -> "ConditioningVocabulary":
        return cls(list(state["tokens"]), {k: (v[0], v[1]) for k, v in state.get("instructions", {}).items()})
