"""A `collector ...` command run in its own process (ROS 2 node tests)."""
import signal
import subprocess
import sys
from pathlib import Path


class NodeProcess:
    """One `collector ...` command in its own process, its output in a log file."""

    def __init__(self, args, env, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "collector", *map(str, args)], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.proc.args} did not finish in {timeout:g} s; log:\n{self.log()[-3000:]}")

    def stop(self, sig=signal.SIGINT, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
