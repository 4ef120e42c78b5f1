"""Run one function over many episodes on a pool of workers, results back in input order.

Engines:
- "dask" (default): a local Dask cluster of `workers` processes bound to 127.0.0.1 only, or, with
  `address="tcp://scheduler:8786"`, an existing Dask cluster (every worker must have collector
  installed and see the episode paths, e.g. on a shared filesystem, or reach the store a published
  episode lives on: a worker reads those from their URL).
- "inline": this process, one item after the other (debugging, tiny datasets, no extra processes).

Why Dask and not Ray (docs/dataset.md has the long form): Ray 2.60 registers its node on the
machine's external address even when told 127.0.0.1, so a "local" Ray on a station opens ports on
the lab network; Dask's LocalCluster binds where it is told, starts in about 2 s instead of ~10 s,
and is a small pure-Python dependency. The jobs here are a map over episodes plus a reduction in
the caller, which both engines do equally well.

Determinism: results are returned in the order of `items` whatever order workers finish in, and
each task is a pure function of its item, so a caller that reduces them in that order gets the
same answer on one worker and on fifty.
"""
from __future__ import annotations

import dataclasses
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from collector.errors import CollectorError, ConfigError

log = logging.getLogger(__name__)

ENGINES = ("dask", "inline")


@dataclass
class TaskOutcome:
    """What one item's task produced: a value, or the error that stopped it (never both)."""

    item: Any
    value: Any = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _run_captured(fn: Callable, item, kwargs) -> TaskOutcome:
    """Runs on a worker: one bad episode must not abort the whole job, so errors come back as data."""
    try:
        return TaskOutcome(item, fn(_on_this_worker(item), **kwargs))
    except CollectorError as exc:
        return TaskOutcome(item, error=str(_about_item(item, exc)))
    except Exception as exc:  # a bug or an unexpected file problem: keep the traceback for the report
        named = _about_item(item, exc)
        if named is not exc:  # HDF5 could not read a damaged file: a problem of that file, said so
            return TaskOutcome(item, error=str(named))
        detail = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return TaskOutcome(item, error=f"{type(exc).__name__}: {exc} ({detail})")


def _on_this_worker(item):
    """The item with its episode readable here: a worker on another machine than the one that selected the
    episodes cannot see that machine's path (or its download cache), so it reads the published copy's URL
    into its own cache. Items are EpisodeRefs, or tuples holding one (the exports' (index, ref))."""
    if isinstance(item, tuple):
        return tuple(_on_this_worker(part) for part in item)
    url = getattr(item, "url", "")
    if not url or Path(item.path).is_file():
        return item
    from collector.fleet.storage import open_episode_url

    return dataclasses.replace(item, path=open_episode_url(url))


def _about_item(item, exc: BaseException) -> BaseException:
    """The error naming the item's episode file, when the item is one (see EpisodeReader)."""
    path = getattr(item, "path", None)
    if path is None:
        return exc
    from collector.recorder.reader import about_file

    return about_file(path, exc)


class JobEngine:
    """A pool of workers, started on first use. Use as a context manager (closing it stops the
    workers); `map` may be called many times on one pool."""

    def __init__(self, engine: str = "dask", workers: int = 2, address: Optional[str] = None,
                 progress: Optional[bool] = None, threads_per_worker: int = 1, connect_timeout_s: float = 20.0):
        if engine not in ENGINES:
            raise ConfigError(f"job engine {engine!r} not in {ENGINES}")
        if address and engine != "dask":
            raise ConfigError("--address names a Dask scheduler; it needs the dask engine")
        if engine == "dask" and not address and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.engine = engine
        self.workers = int(workers)
        self.address = address
        self.threads_per_worker = int(threads_per_worker)
        self.connect_timeout_s = float(connect_timeout_s)
        # None: show bars only on a terminal, so logs and CI output stay readable.
        self.progress = progress
        self._cluster = None
        self._client = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "JobEngine":
        # Started by the first map(): a command that turns out to need no workers (one episode to
        # one MCAP file) does not pay for a cluster.
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if self.engine != "dask" or self._client is not None:
            return
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError("dataset jobs need Dask: pip install 'dask[distributed]' "
                              "(or run with --engine inline)") from exc
        # Dask logs every worker start and stop at INFO; keep the command's output about the job.
        if not log.isEnabledFor(logging.DEBUG):
            for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                         "distributed.worker", "distributed.http.proxy"):
                logging.getLogger(name).setLevel(logging.WARNING)
        try:
            if self.address:
                self._client = Client(self.address, set_as_default=False, timeout=f"{self.connect_timeout_s}s")
            else:
                import dask

                # host= binds scheduler, nannies and workers to loopback; no dashboard (it would need
                # bokeh and opens another port). Dask starts workers with MALLOC_TRIM_THRESHOLD_ set,
                # which also turns off glibc's adaptive mmap threshold: every frame-sized buffer is then
                # mmap'd and page-faulted anew, and our tasks ran ~50% slower (measured). Workers keep
                # nothing between tasks, so they get glibc's defaults; the thread limits stay.
                environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                           if k != "MALLOC_TRIM_THRESHOLD_"}
                with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                    self._cluster = LocalCluster(
                        n_workers=self.workers, threads_per_worker=self.threads_per_worker, processes=True,
                        host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                        # the scheduler's health/metrics HTTP server: any free loopback port, not 8787
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0", "dashboard": False},
                    )
                self._client = Client(self._cluster, set_as_default=False)
        except (OSError, TimeoutError, RuntimeError) as exc:  # RuntimeError: "Nanny failed to start"
            self.close()
            where = self.address or "a local cluster on 127.0.0.1"
            raise ConfigError(f"cannot start the Dask job engine ({where}): {exc}") from exc
        log.debug("dask engine up: %s", self.describe())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def describe(self) -> str:
        if self.engine == "inline":
            return "inline (this process)"
        if self._client is None:
            return f"dask ({self.address or f'{self.workers} local workers'}, not started)"
        workers = self._client.scheduler_info().get("workers", {})
        return f"dask at {self._client.scheduler.address} with {len(workers)} worker(s)"

    @property
    def scheduler_address(self) -> Optional[str]:
        return self._client.scheduler.address if self._client is not None else None

    def worker_addresses(self) -> List[str]:
        if self._client is None:
            return []
        return sorted(self._client.scheduler_info().get("workers", {}))

    # -- work -----------------------------------------------------------------------------------
    def map(self, fn: Callable, items: Sequence, desc: str = "", **kwargs) -> List[TaskOutcome]:
        """fn(item, **kwargs) for every item; outcomes in the order of `items`."""
        items = list(items)
        bar = _progress_bar(len(items), desc, self.progress)
        try:
            if self.engine == "inline":
                outcomes = []
                for item in items:
                    outcomes.append(_run_captured(fn, item, kwargs))
                    bar.update(1)
                return outcomes
            self.start()
            from dask.distributed import as_completed

            # pure=False: an item may be submitted again in a later job (e.g. after a file changed).
            futures = [self._client.submit(_run_captured, fn, item, kwargs, pure=False) for item in items]
            position = {future.key: index for index, future in enumerate(futures)}
            outcomes: List[Optional[TaskOutcome]] = [None] * len(items)
            try:
                for future in as_completed(futures, loop=self._client.loop):
                    outcomes[position[future.key]] = future.result()
                    bar.update(1)
                    future.release()
            except BaseException:
                # Ctrl-C or a lost cluster: stop the remaining tasks so none writes after we return.
                self._client.cancel(futures)
                raise
            return outcomes  # type: ignore[return-value]
        finally:
            bar.close()


def _progress_bar(total: int, desc: str, enabled: Optional[bool]):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc or "episodes", unit="ep", disable=None if enabled is None else not enabled,
                dynamic_ncols=True, leave=False)


def failures(outcomes: Sequence[TaskOutcome]) -> List[TaskOutcome]:
    return [o for o in outcomes if not o.ok]
