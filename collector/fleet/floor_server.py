"""The floor manager's page (`collector fleet`): the floor snapshot (collector/fleet/floor.py), live.

One thread reads the catalogue every `interval_s` and keeps the newest snapshot; every browser shares it,
so ten open pages cost the catalogue what one does. A catalogue that is slow to answer (a big one, a
busy server) is read less often: the pause is at least twice the time the last read took.

Endpoints (the gate of the other pages, collector/web_pages.py: loopback Host, the token, Origin):
  GET /?token=T       sets the token cookie and redirects to /
  GET /               the page (static/fleet.html)
  GET /static/<file>  its script and style
  GET /api/floor      one snapshot as JSON
  GET /api/events     Server-Sent Events: the snapshot when it changes, and at least every REPEAT_S
Snapshots carry `version` (changes when the floor does), `at` (server time) and `error` (why the last
read failed, e.g. the catalogue's server is down; the figures are then the last ones read).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from collector.errors import CollectorError
from collector.fleet.floor import TakeReader, floor_snapshot, has_table
from collector.fleet.stations import StationRegistry
from collector.json_values import json_text_default, tolerant_json_bytes
from collector.web_pages import STATIC_TYPES, GatedHandler, GatedServer

log = logging.getLogger(__name__)

APP = "fleet"
STATIC_DIR = Path(__file__).with_name("static")
COOKIE = "collector_fleet"
INTERVAL_S = 1.0
REPEAT_S = 2.0  # an unchanged floor is sent again this often, so the page can tell it is still connected


class FloorBoard:
    """The newest snapshot and its version; readers wait for the next one."""

    def __init__(self):
        self._changed = threading.Condition()
        self._snapshot: Dict[str, Any] = {"version": 0, "at": None, "error": "reading the catalogue…",
                                          "stations": [], "plans": [], "rates": {}, "takes_per_hour": []}
        self._figures: Optional[str] = None

    def snapshot(self) -> Dict[str, Any]:
        with self._changed:
            return self._snapshot

    def publish(self, figures: Dict[str, Any], error: Optional[str]) -> None:
        """A new read (or a failed one): the version moves only when what the page shows changed."""
        key = json.dumps([figures, error], sort_keys=True, default=json_text_default)
        with self._changed:
            version = self._snapshot["version"] + (key != self._figures)
            self._figures = key
            self._snapshot = {**figures, "version": version, "error": error,
                              "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            self._changed.notify_all()

    def last_figures(self) -> Dict[str, Any]:
        with self._changed:
            return {k: v for k, v in self._snapshot.items() if k not in ("version", "error", "at")}

    def wait_for_change(self, version: int, timeout_s: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._snapshot["version"] != version, timeout=timeout_s)


class FleetServer(GatedServer):
    """Serves the floor of one catalogue (a Catalog: SQLite folder or PostgreSQL server); on loopback, or
    beyond it with `floor` (a collector.accounts.floor.FloorAccess: TLS and an admin's login)."""

    app = APP

    def __init__(self, catalog, *, plans: Sequence = (), host: str = "127.0.0.1", port: int = 0,
                 token: Optional[str] = None, allowed_origins: Sequence[str] = (), offline_after_s: float = 30.0,
                 interval_s: float = INTERVAL_S, floor=None):
        self.catalog = catalog
        self.plans = list(plans)
        self.offline_after_s = float(offline_after_s)
        self.interval_s = float(interval_s)
        self.board = FloorBoard()
        self._registry: Optional[StationRegistry] = None
        self.reader = TakeReader(catalog)
        super().__init__(_Handler, host=host, port=port, token=token, allowed_origins=allowed_origins, floor=floor)
        self._read_thread = threading.Thread(target=self._read_loop, name="fleet-reader", daemon=True)

    def start(self):
        self.refresh()  # the first page load already shows the floor
        self._read_thread.start()
        return super().start()

    def registry(self) -> Optional[StationRegistry]:
        """The stations, once one has registered (opening the registry before would create its table)."""
        if self._registry is None and has_table(self.catalog, "stations"):
            self._registry = StationRegistry(self.catalog)
        return self._registry

    def refresh(self) -> float:
        """Read the floor once; how long it took."""
        started = time.monotonic()
        try:
            figures = floor_snapshot(self.catalog, self.registry(), plans=self.plans,
                                     offline_after_s=self.offline_after_s, reader=self.reader)
            self.board.publish({**figures, "catalog": str(self.catalog.path)}, None)
        except CollectorError as exc:  # the server went away, a locked file...: say so, keep the last figures
            self.board.publish(self.board.last_figures(), str(exc))
        except Exception as exc:  # a bug must not freeze the page: it shows the error and keeps trying
            log.exception("fleet: reading the floor failed")
            self.board.publish(self.board.last_figures(), f"unexpected {type(exc).__name__}: {exc}"[:300])
        return time.monotonic() - started

    def _read_loop(self) -> None:
        took = 0.0
        while not self.closing.wait(max(self.interval_s, 2 * took)):
            took = self.refresh()


class _Handler(GatedHandler):
    server_app: FleetServer
    app = APP
    cookie = COOKIE
    server_version = "collector-fleet"
    hint = "open the URL printed by `collector fleet` (it contains the access token)"

    def json_bytes(self, payload) -> bytes:
        return tolerant_json_bytes(payload)

    def route_get(self, path: str, query: Dict[str, list]) -> None:
        fleet = self.server_app
        if path == "/" and "token" in query:
            self.trade_token_for_cookie(fleet.token)
        elif path in ("/", "/index.html"):
            page = self.page_html((STATIC_DIR / "fleet.html").read_text(encoding="utf-8"))  # + who is logged in
            self.send_body(HTTPStatus.OK, page.encode(), STATIC_TYPES[".html"])
        elif path.startswith("/static/"):
            self.send_static(STATIC_DIR, path.removeprefix("/static/"), APP)
        elif path == "/api/floor":
            self.send_json(HTTPStatus.OK, fleet.board.snapshot())
        elif path == "/api/events":
            self._events()
        else:
            super().route_get(path, query)

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        board, closing = self.server_app.board, self.server_app.closing
        # retry: how soon the browser reconnects when this stream ends (a restart of the server)
        self.wfile.write(b"retry: 1000\n\n")
        while not closing.is_set():
            snapshot = board.snapshot()
            self.wfile.write(b"data: " + self.json_bytes(snapshot) + b"\n\n")
            self.wfile.flush()
            board.wait_for_change(snapshot["version"], REPEAT_S)

