"""Dataset-wide jobs (validate, statistics, export) on a pool of workers; see engine.py."""
from collector.dataset.jobs.engine import ENGINES, JobEngine, TaskOutcome, failures

__all__ = ["ENGINES", "JobEngine", "TaskOutcome", "failures"]
