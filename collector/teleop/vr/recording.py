"""Recorded operator sessions: the page's own messages, as received, in a JSON-lines file.

`collector vr serve --record FILE` writes one; `collector vr replay FILE` (or the tests and the
benchmark) sends it back through a server with the original timing, so a real headset
session can be re-run against any teleop build without the headset.

Format: first line {"format": "collector-vr-session", "version": 1, "protocol": 1}; then one
line per message {"t": seconds since the first message, "msg": <the page's JSON text>}.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO, List, Optional, Tuple, Union

from collector.errors import ConfigError, DataError
from collector.teleop.vr.protocol import PROTOCOL_VERSION, parse_client_message

FORMAT = "collector-vr-session"
VERSION = 1


class SessionRecorder:
    """Appends received page messages to a session file; flushed per line so a crash loses nothing."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Never truncate an earlier recording.
            self._file: Optional[IO[str]] = self.path.open("x", encoding="utf-8")
        except FileExistsError:
            raise ConfigError(f"session file {self.path} already exists; choose another name") from None
        self._file.write(json.dumps({"format": FORMAT, "version": VERSION, "protocol": PROTOCOL_VERSION}) + "\n")
        self._t0: Optional[float] = None
        self.count = 0

    def write(self, received_t: float, text: str) -> None:
        if self._file is None:
            return
        if self._t0 is None:
            self._t0 = received_t
        self._file.write(json.dumps({"t": round(received_t - self._t0, 6), "msg": text}) + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_session(path: Union[str, Path], messages: List[Tuple[float, dict]]) -> Path:
    """Write (t, page message dict) pairs as a session file (e.g. a synthesised trajectory)."""
    recorder = SessionRecorder(path)
    try:
        for t, msg in messages:
            recorder.write(t, json.dumps(msg, allow_nan=False))
    finally:
        recorder.close()
    return recorder.path


def load_session(path: Union[str, Path], check: bool = True) -> List[Tuple[float, str]]:
    """(t, message text) pairs of a session file; DataError names the line of anything wrong."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"session file {path} does not exist") from None
    except OSError as exc:  # a directory, no permission
        raise DataError(f"session file {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"session file {path} is not UTF-8 text ({exc})") from None
    if not lines:
        raise DataError(f"session file {path} is empty")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise DataError(f"{path}:1: not a {FORMAT} v{VERSION} file")
    out: List[Tuple[float, str]] = []
    last_t = 0.0
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            t, text = float(entry["t"]), entry["msg"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{number}: malformed entry ({exc})") from None
        if not isinstance(text, str) or not last_t <= t < float("inf"):
            raise DataError(f"{path}:{number}: entry out of order or without a message")
        if check:
            try:
                parse_client_message(text)
            except DataError as exc:
                raise DataError(f"{path}:{number}: {exc}") from None
        out.append((t, text))
        last_t = t
    return out
