"""Run the processes of a launch plan: start each, prefix its output, report deaths, stop all cleanly.

Behaviour, modelled on `ros2 launch`:
- Each process runs in its own session (process group), so a terminal's Ctrl-C reaches only this
  supervisor, which then stops the children in order: SIGINT to each, SIGTERM after
  `sigterm_timeout`, SIGKILL after a further `sigkill_timeout`. A second Ctrl-C skips ahead one step.
- Output lines of every process are printed as `[name] line` as they arrive.
- A process that exits with status 0 is reported and the rest keep running; one that fails
  (non-zero status or killed by a signal) is reported with its status and, unless
  `stop_on_failure` is off, the whole session is stopped: a dead recorder or robot bridge
  means the session is no longer collecting what the operator thinks it is.
- `respawn: true` restarts a process after `respawn_delay` instead.
- A command whose first word is `collector` runs as `<this python> -m collector`, so a session
  uses the interpreter (and virtualenv) it was started from even when `collector` is not on PATH.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, TextIO

from collector.errors import ConfigError
from collector.ros.launch_file import ProcessSpec

POLL_S = 0.05
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): SIGTERM it if the launcher itself is killed, so a
    `kill -9` of `collector launch` cannot leave a simulator or recorder running unsupervised."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class _Running:
    spec: ProcessSpec
    popen: Optional[subprocess.Popen] = None
    reader: Optional[threading.Thread] = None
    restart_at: Optional[float] = None
    returncode: Optional[int] = None
    starts: int = 0


class ProcessGroup:
    def __init__(self, specs: List[ProcessSpec], base_env: Optional[Mapping[str, str]] = None,
                 sigterm_timeout: float = 5.0, sigkill_timeout: float = 5.0, stop_on_failure: bool = True,
                 out: Optional[TextIO] = None):
        if not specs:
            raise ConfigError("launch: the launch file starts no processes")
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.sigterm_timeout = sigterm_timeout
        self.sigkill_timeout = sigkill_timeout
        self.stop_on_failure = stop_on_failure
        self.out = out or sys.stdout
        self._print_lock = threading.Lock()
        self._procs = [_Running(spec) for spec in specs]
        self._stop_level = 0  # 0 running, 1 SIGINT sent, 2 SIGTERM sent, 3 SIGKILL sent
        self._stop_requested = threading.Event()
        self._stop_started_at = 0.0
        self.failures: List[str] = []

    # -- output ------------------------------------------------------------------------------
    def say(self, line: str) -> None:
        with self._print_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(f"[{name}] {raw.decode(errors='replace').rstrip()}")
        stream.close()

    # -- lifecycle ---------------------------------------------------------------------------
    @staticmethod
    def _argv(spec: ProcessSpec) -> List[str]:
        if spec.argv and spec.argv[0] == "collector":
            return [sys.executable, "-m", "collector", *spec.argv[1:]]
        return list(spec.argv)

    def _start(self, proc: _Running) -> None:
        spec = proc.spec
        env = {**self.base_env, **spec.env}
        argv = self._argv(spec)
        try:
            proc.popen = subprocess.Popen(
                " ".join(argv) if spec.shell else argv, shell=spec.shell, cwd=spec.cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            raise ConfigError(f"launch: cannot start {spec.name!r} ({argv[0]}): {exc.strerror}") from None
        proc.starts += 1
        proc.returncode = None
        proc.restart_at = None
        proc.reader = threading.Thread(target=self._pump, args=(spec.name, proc.popen.stdout), daemon=True)
        proc.reader.start()
        self.say(f"[launch] started {spec.name} (pid {proc.popen.pid}): {shlex.join(argv)}")

    def start(self) -> None:
        for proc in self._procs:
            self._start(proc)

    def request_stop(self) -> None:
        """Begin (or, called again, hurry) the shutdown; safe from a signal handler or another thread."""
        self._stop_requested.set()

    def _signal_all(self, sig: int) -> None:
        for proc in self._procs:
            if proc.popen is not None and proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, sig)
                except ProcessLookupError:
                    pass

    def _escalate(self, now: float) -> None:
        """Advance the shutdown by one step: SIGINT, then SIGTERM, then SIGKILL."""
        self._stop_level += 1
        self._stop_started_at = now
        sig = {1: signal.SIGINT, 2: signal.SIGTERM}.get(self._stop_level, signal.SIGKILL)
        alive = [p.spec.name for p in self._procs if p.popen is not None and p.popen.poll() is None]
        if alive:
            self.say(f"[launch] sending {sig.name} to {', '.join(alive)}")
        self._signal_all(sig)

    def _reap(self, proc: _Running, now: float) -> None:
        code = proc.popen.poll()
        if code is None or proc.returncode is not None:
            return
        proc.returncode = code
        proc.reader.join(timeout=1.0)
        name, pid = proc.spec.name, proc.popen.pid
        stopping = self._stop_level > 0
        clean = code == 0 or (stopping and code in (-signal.SIGINT, -signal.SIGTERM, 130, 143))
        if clean:
            self.say(f"[launch] {name} (pid {pid}) exited cleanly ({describe_status(code)})")
        else:
            message = f"{name} (pid {pid}) died: {describe_status(code)}"
            self.failures.append(message)
            self.say(f"[launch] ERROR: {message}")
        if proc.spec.respawn and not stopping:
            proc.restart_at = now + proc.spec.respawn_delay
            self.say(f"[launch] respawning {name} in {proc.spec.respawn_delay:g} s")
        elif not clean and self.stop_on_failure and not stopping:
            self.say("[launch] stopping the session because a process died")
            self.request_stop()

    def run(self) -> int:
        """Start everything and supervise until all processes ended; returns 0 if none failed."""
        previous = {}
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: self.request_stop())
        try:
            try:
                self.start()
            except ConfigError:
                # Stop whatever did start before reporting the one that could not.
                self.request_stop()
                self._supervise()
                raise
            self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self.failures else 0

    def _supervise(self) -> None:
        while True:
            now = time.monotonic()
            if self._stop_requested.is_set():
                self._stop_requested.clear()
                self._escalate(now)
            for proc in self._procs:
                if proc.popen is not None:
                    self._reap(proc, now)
                if proc.restart_at is not None and now >= proc.restart_at and self._stop_level == 0:
                    self._start(proc)
            alive = [p for p in self._procs
                     if (p.popen is not None and p.returncode is None) or p.restart_at is not None]
            if not alive:
                return
            if self._stop_level:
                timeout = self.sigterm_timeout if self._stop_level == 1 else self.sigkill_timeout
                if self._stop_level < 3 and now - self._stop_started_at > timeout:
                    names = ", ".join(p.spec.name for p in alive)
                    self.say(f"[launch] {names} did not stop within {timeout:g} s, escalating")
                    self._escalate(now)
                # While stopping no respawn is pending any more.
                for proc in alive:
                    proc.restart_at = None
            time.sleep(POLL_S)

    @property
    def returncodes(self) -> Dict[str, Optional[int]]:
        return {p.spec.name: p.returncode for p in self._procs}
