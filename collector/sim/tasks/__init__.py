"""Task scenes on the table in front of the robot. Each reports success from the sim state."""
from collector.errors import ConfigError
from collector.sim.tasks.base import Task, TaskSite
from collector.sim.tasks.pick_place import PickPlace
from collector.sim.tasks.pour import Pour

TASKS = {PickPlace.name: PickPlace, Pour.name: Pour}


def list_tasks() -> list:
    return list(TASKS)


def make_task(name: str, params: dict | None = None) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r} (known: {list_tasks()})")
    return TASKS[name](params)


__all__ = ["Task", "TaskSite", "TASKS", "list_tasks", "make_task"]
