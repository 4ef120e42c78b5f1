"""The reviewer's page, `collector review DATASET`: a small HTTP server on localhost with a session token.

Same access rules as the session dashboard (collector/web_pages.py over collector.web_auth.AccessGate):
loopback Host only, foreign Origin refused, token in the URL once then an HttpOnly SameSite=Strict
cookie, POSTs only with the X-Collector-Token header.

  GET  /?token=T                                  sets the cookie, redirects to /
  GET  /                                          the page (static/review.html)
  GET  /static/<file>                             its script and style
  GET  /api/info                                  dataset, reviewer, filter values, page defaults
  GET  /api/episodes?task=&lighting=&weight=&outcome=&qa=&operator=&station=&reviewed=yes|no
                     &verdict=unreviewed|accepted|rejected|disputed&reviewer=NAME
                                                  kept episodes with their review state (the catalogue's mirror)
  GET  /api/next?after=ID&queue=unreviewed|mine&reviewer=NAME (+ the filters)
                                                  the next episode to review ({"episode_id": null} when none)
  GET  /api/episode/ID                            the episode: metadata, cameras with their frame times, the
                                                  task's skills and reasons, every reviewer's current labels
  GET  /api/episode/ID/timeline                   joints commanded vs measured (min/max per bucket), control
                                                  source, QA warnings and gaps with their times
  GET  /api/episode/ID/suggestions                suggested subtasks and idle stretches
                                                  (the page asks for these two beside the first frames)
  GET  /api/episode/ID/frame/CAMERA/N.jpg         frame N of a camera exactly as recorded (JPEG bytes)
  POST /api/episode/ID/labels                     {verdict, reasons, outcome, subtasks, instructions, notes,
                                                  reviewer?} -> saved (durable) and mirrored in the catalogue

Beyond loopback (`--listen` with TLS and accounts, collector/web_pages.py) every request needs a login with
the reviewer or admin role, and labels are saved under the logged-in name (a different `reviewer` in a
POST is refused; the page's name field is read-only).

Saving: `save_labels(..., fold=False)` makes the labels durable in the episode's review journal with one
fsync; folding the journal into the episode file (a copy of the whole file) runs on a background
thread when the reviewer moves to another episode, and for every episode left when the server closes.
Errors are JSON {"ok": false, "error": one line}; unknown episodes, cameras and frames are 404.
"""
from __future__ import annotations

import html
import logging
import os
import queue
import threading
from collections import OrderedDict
from http import HTTPStatus
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from collector.errors import CollectorError, ConfigError, DataError
from collector.recorder import EpisodeReader
from collector.review.annotations import (EPISODE_VERDICTS, OUTCOME_OVERRIDES, VERDICTS, Labels, Subtask,
                                          fold_journal, read_review, save_labels)
from collector.review.episode_view import EpisodeView, choices_for, suggestions_for
from collector.session.catalog import QA_STATES, OUTCOMES, Catalog, EpisodeRow
from collector.session.layout import DatasetLayout
from collector.web_pages import BadRequest, GatedHandler, GatedServer, query_value, STATIC_TYPES

log = logging.getLogger(__name__)

APP = "review"
STATIC_DIR = Path(__file__).with_name("static")
COOKIE = "collector_review"
REVIEWABLE_STATUSES = ("kept", "recovered")
TEXT_FILTERS = ("task", "lighting", "weight", "operator", "station")
CLOSED_FILTERS = {"outcome": OUTCOMES, "qa": QA_STATES}
QUEUES = ("unreviewed", "mine")
FRAME_CACHE = "private, max-age=86400, immutable"  # recorded frames never change
MAX_OPEN_EPISODES = 4
MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 4000
MAX_ITEMS = 200


def default_reviewer() -> str:
    return os.environ.get("USER") or "reviewer"


def check_reviewer(name) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_CHARS \
            or not name.strip().isprintable():
        raise ConfigError(f"reviewer name must be 1-{MAX_NAME_CHARS} printable characters, got {str(name)[:80]!r}")
    return name.strip()


class _OpenEpisodes:
    """A few episode readers kept open (frames are read many times a second while playing). A reader is
    keyed by the file's inode and mtime: folding a review replaces the file, and the next read opens it anew."""

    def __init__(self, size: int = MAX_OPEN_EPISODES):
        self.size = size
        self._lock = threading.Lock()
        self._open: "OrderedDict[Path, Tuple[tuple, EpisodeReader, dict]]" = OrderedDict()

    def get(self, path: Path) -> Tuple[EpisodeReader, dict]:
        """(reader, per-reader cache dict)."""
        try:
            st = path.stat()
        except OSError:
            raise DataError(f"{path}: episode file is missing") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            entry = self._open.get(path)
            if entry is not None and entry[0] == key:
                self._open.move_to_end(path)
                return entry[1], entry[2]
        reader = EpisodeReader(path)  # outside the lock: opening checks the file's structure
        with self._lock:
            self._open[path] = (key, reader, {})
            self._open.move_to_end(path)
            while len(self._open) > self.size:
                self._open.popitem(last=False)  # not closed here: another thread may still be reading it
            return reader, self._open[path][2]


class _Folder:
    """Folds saved reviews into their episode files on its own thread (a fold copies the whole file)."""

    def __init__(self):
        self._pending: Dict[Path, None] = {}
        self._lock = threading.Lock()
        self._queue: "queue.Queue[Optional[Path]]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="review-fold", daemon=True)
        self._thread.start()

    def saved(self, path: Path) -> None:
        with self._lock:
            self._pending[path] = None

    def leaving_all_but(self, path: Optional[Path]) -> None:
        """The reviewer opened `path`: fold every other episode they saved labels for."""
        with self._lock:
            left = [p for p in self._pending if p != path]
            for p in left:
                del self._pending[p]
        for p in left:
            self._queue.put(p)

    def _run(self) -> None:
        while True:
            path = self._queue.get()
            if path is None:
                return
            _fold(path)

    def close(self) -> None:
        self.leaving_all_but(None)
        self._queue.put(None)
        self._thread.join(timeout=120)


def _fold(path: Path) -> None:
    try:
        fold_journal(path)
    except CollectorError as exc:  # the journal keeps the labels; the next save or close tries again
        log.warning("review: %s", exc)


class ReviewServer(GatedServer):
    """The review page for one dataset. `reviewer` names whoever saves labels from this server (a page
    may send another name, e.g. two reviewers sharing one station)."""

    app = APP

    def __init__(self, dataset, *, host: str = "127.0.0.1", port: int = 8790, token: Optional[str] = None,
                 reviewer: Optional[str] = None, allowed_origins: Sequence[str] = (), floor=None):
        self.layout = DatasetLayout(dataset)
        if not self.layout.exists():
            raise ConfigError(f"{self.layout.root}: not a dataset (no {self.layout.catalog_path.name}); "
                              "record one with `collector demo` or `collector collect`")
        self.catalog = Catalog(self.layout.catalog_path)
        self.reviewer = check_reviewer(reviewer if reviewer is not None else default_reviewer())
        super().__init__(_Handler, host=host, port=port, token=token, allowed_origins=allowed_origins,
                         floor=floor)
        self.episodes = _OpenEpisodes()
        self.folder = _Folder()  # after the socket: a failed bind leaves no thread behind
        self._frame_paths: Dict[str, Path] = {}

    # -- lifetime ----------------------------------------------------------------------------------
    def start(self) -> "ReviewServer":
        super().start()
        threading.Thread(target=self._warm_up, name="review-warm-up", daemon=True).start()
        return self

    def _warm_up(self) -> None:
        """Load once, before the first episode is opened, what every episode view needs (the robots'
        joint groups, the gap report, the suggestions): the reviewer's first take opens as fast as the rest."""
        import collector.sync  # noqa: F401
        from collector.robot.joint_groups import robot_joint_groups

        try:
            import collector.review.suggestions  # noqa: F401
        except ImportError:
            pass

        try:
            robots = {row.robot for row in self.catalog.episodes(status=list(REVIEWABLE_STATUSES))} - {""}
        except CollectorError as exc:
            log.warning("review: %s", exc)
            return
        for robot in sorted(robots):
            try:
                robot_joint_groups(robot)
            except Exception as exc:  # the episode view says it again, with one lane for all joints
                log.info("review: robot %r not loadable here (%s)", robot, exc)

    def after_close(self) -> None:
        """Fold every saved review into its episode file (the server has stopped serving)."""
        self.folder.close()

    # -- data ------------------------------------------------------------------------------------
    def row(self, episode_id: str) -> EpisodeRow:
        try:
            row = self.catalog.episode(episode_id) if not episode_id.isdigit() else None
        except DataError:
            row = None
        if row is None or not row.path:
            raise BadRequest(f"{APP}: no episode {episode_id[:80]!r} in this dataset", HTTPStatus.NOT_FOUND)
        return row

    def path_of(self, row: EpisodeRow) -> Path:
        path = self.layout.absolute(row.path)
        if not path.is_file():
            raise BadRequest(f"{APP}: {row.episode_id}: its file {row.path} is missing", HTTPStatus.NOT_FOUND)
        return path

    def info(self) -> dict:
        rows = self.catalog.episodes(status=list(REVIEWABLE_STATUSES))
        values = {name: sorted({str(getattr(r, name)) for r in rows if getattr(r, name)})
                  for name in TEXT_FILTERS + tuple(CLOSED_FILTERS)}
        return {"dataset": str(self.layout.root), "reviewer": self.reviewer, "episodes": len(rows),
                "filters": values, "verdicts": list(EPISODE_VERDICTS), "queues": list(QUEUES)}

    def listing(self, query: Dict[str, list], default: Optional[str] = None) -> List[dict]:
        filters = {}
        for name in TEXT_FILTERS + tuple(CLOSED_FILTERS):
            value = query_value(query, name, APP)
            if value:
                if name in CLOSED_FILTERS and value not in CLOSED_FILTERS[name]:
                    raise BadRequest(f"{APP}: {name} must be one of {', '.join(CLOSED_FILTERS[name])}, "
                                     f"got {value[:40]!r}")
                filters[name] = value
        reviewed = _choice(query, "reviewed", ("yes", "no"))
        verdict = _choice(query, "verdict", EPISODE_VERDICTS)
        reviewer = self._reviewer_param(query, default)
        # The catalogue's mirror of the reviews (one query for the whole dataset, however many files):
        # each reviewer's newest verdict per episode.
        verdicts: Dict[int, Dict[str, Optional[str]]] = {}
        for record in self.catalog.review_records():  # oldest first
            verdicts.setdefault(record["episode_index"], {})[record["reviewer"]] = record["verdict"]
        out = []
        for row in self.catalog.episodes(status=list(REVIEWABLE_STATUSES), **filters):
            if not row.path or (verdict and row.review_verdict != verdict) or \
                    (reviewed and (row.review_verdict != "unreviewed") != (reviewed == "yes")):
                continue
            reviewers = verdicts.get(row.episode_index, {})
            out.append({"episode_id": row.episode_id, "episode_index": row.episode_index, "task": row.task,
                        "instruction": row.instruction, "lighting": row.lighting, "weight": row.weight,
                        "outcome": row.recorded_outcome or row.outcome, "qa": row.qa, "operator": row.operator,
                        "station": row.station, "duration_s": row.duration_s, "verdict": row.review_verdict,
                        "reviewers": reviewers, "mine": reviewers.get(reviewer),
                        "outcome_override": row.outcome if row.recorded_outcome else None})
        return out

    def next_episode(self, query: Dict[str, list], default: Optional[str] = None) -> Optional[str]:
        queue_name = _choice(query, "queue", QUEUES) or "unreviewed"
        after = query_value(query, "after", APP) or ""
        reviewer = self._reviewer_param(query, default)
        query = {k: v for k, v in query.items() if k not in ("queue", "after", "verdict", "reviewed")}
        rows = self.listing(query, default)
        if queue_name == "unreviewed":
            rows = [r for r in rows if r["verdict"] == "unreviewed"]
        else:
            rows = [r for r in rows if reviewer not in r["reviewers"] or not r["reviewers"][reviewer]]
        ids = [r["episode_id"] for r in rows]
        later = [i for i in ids if i > after] if after else ids
        candidates = later or [i for i in ids if i != after]
        return candidates[0] if candidates else None

    def _reviewer_param(self, query: Dict[str, list], default: Optional[str] = None) -> str:
        name = query_value(query, "reviewer", APP)
        if not name:
            return default or self.reviewer
        try:
            return check_reviewer(name)
        except ConfigError as exc:
            raise BadRequest(f"{APP}: {exc}") from None

    def episode_view(self, episode_id: str, reviewer: str) -> dict:
        """What the page needs to show the first frames: metadata, cameras with their frame times, labels."""
        row = self.row(episode_id)
        path = self.path_of(row)
        self.folder.leaving_all_but(path)
        reader, cache = self.episodes.get(path)
        if "view" not in cache:  # what the file says (the catalogue's part below may change any time)
            view = EpisodeView(reader)
            t0, t1 = view.span()
            md = reader.metadata
            cache["view"] = {"t0": t0, "t1": t1, "cameras": view.cameras(), "choices": choices_for(row.task),
                             "recorded": {"instruction": md.get("instruction"), "robot": md.get("robot", ""),
                                          "duration_s": md.get("duration_s"), "started_at": md.get("started_at"),
                                          "theme": reader.conditions.get("theme"), "sim": bool(md.get("sim", False))}}
            _frames(reader, cache)  # ready before the page asks for the first frames
        recorded = cache["view"]["recorded"]
        metadata = {**recorded, "task": row.task, "instruction": recorded["instruction"] or row.instruction,
                    "operator": row.operator, "station": row.station, "lighting": row.lighting, "weight": row.weight,
                    "outcome": row.recorded_outcome or row.outcome,
                    "outcome_override": row.outcome if row.recorded_outcome else None,
                    "qa": row.qa, "qa_problems": row.qa_problems, "status": row.status}
        review = read_review(path)
        latest = review.latest()
        return {**{k: v for k, v in cache["view"].items() if k != "recorded"}, "metadata": metadata,
                "episode_id": row.episode_id, "episode_index": row.episode_index, "path": row.path,
                "reviewer": reviewer,
                "review": {"verdict": review.verdict, "records": len(review.records),
                           "latest": {name: labels.to_json() for name, labels in latest.items()},
                           "mine": latest[reviewer].to_json() if reviewer in latest else None,
                           "agreement": review.agreement()}}

    def timeline(self, episode_id: str) -> dict:
        """Joints commanded vs measured, the control source and QA events (asked for beside the frames)."""
        path = self.path_of(self.row(episode_id))
        reader, cache = self.episodes.get(path)
        if "timeline" not in cache:
            view = EpisodeView(reader)
            cache["timeline"] = {"joints": view.joints(), "control": view.control(), "events": view.events()}
        return cache["timeline"]

    def suggestions(self, episode_id: str) -> dict:
        """Subtask and idle suggestions: asked for after the view, so they never delay the first frame."""
        path = self.path_of(self.row(episode_id))
        _, cache = self.episodes.get(path)
        if "suggestions" not in cache:
            cache["suggestions"] = suggestions_for(path)
        return cache["suggestions"]

    def frame(self, episode_id: str, camera: str, index: int) -> Tuple[bytes, float]:
        """The stored JPEG bytes of one frame and its stamp."""
        # Playback asks for ~30 frames a second per camera: the episode's path is remembered rather
        # than looked up in the catalogue each time (looked up again if the file moved).
        path = self._frame_paths.get(episode_id)
        if path is None or not path.is_file():
            path = self._frame_paths[episode_id] = self.path_of(self.row(episode_id))
        reader, cache = self.episodes.get(path)
        frames = _frames(reader, cache)
        if camera not in frames:
            raise BadRequest(f"{APP}: {episode_id} has no camera {camera[:40]!r} (cameras: "
                             f"{', '.join(sorted(frames))})", HTTPStatus.NOT_FOUND)
        sequence, stamps = frames[camera]
        if not 0 <= index < len(sequence):
            raise BadRequest(f"{APP}: {episode_id} camera {camera}: no frame {index} "
                             f"(0..{len(sequence) - 1})", HTTPStatus.NOT_FOUND)
        if sequence.is_jpeg:
            return sequence.encoded(index), float(stamps[index])
        from collector.recorder.frames import encode_jpeg  # raw/lzf cameras: there are no JPEG bytes to serve

        return encode_jpeg(sequence[index], 90).tobytes(), float(stamps[index])

    def save(self, episode_id: str, body, reviewer: Optional[str] = None) -> dict:
        """Saves the page's labels; `reviewer` (a logged-in person) is the only name they may carry."""
        if reviewer is not None and isinstance(body, dict):
            if body.get("reviewer") not in (None, "", reviewer):
                raise BadRequest(f"{APP}: labels are saved under the logged-in name {reviewer!r}, not "
                                 f"{str(body['reviewer'])[:64]!r}", HTTPStatus.FORBIDDEN)
            body = {**body, "reviewer": reviewer}
        row = self.row(episode_id)
        path = self.path_of(row)
        labels = labels_from_json(body, reviewer or self.reviewer)
        saved = save_labels(path, labels, fold=False)
        self.folder.saved(path)
        review = read_review(path)
        catalogue = self._mirror(row, path, review)
        return {"ok": True, "record": saved.to_json(), "catalogue": catalogue,
                "review": {"verdict": review.verdict, "records": len(review.records),
                           "outcome_override": review.outcome,
                           "reviewers": {n: l.verdict for n, l in review.latest().items()},
                           "agreement": review.agreement()}}

    def _mirror(self, row: EpisodeRow, path: Path, review) -> str:
        """Mirror every record of the episode (the catalogue keeps each once), so a mirror that failed
        before (a locked catalogue) catches up with the next save."""
        try:
            self.catalog.record_review(row.episode_id, review)
        except (CollectorError, ValueError, TypeError) as exc:
            log.warning("review: %s: labels saved in the file, not mirrored in the catalogue (%s)", path, exc)
            return f"not mirrored in the catalogue: {exc} (`collector catalog rebuild` restores it from the file)"
        return "recorded"


def _frames(reader: EpisodeReader, cache: dict) -> Dict[str, tuple]:
    """camera name -> (its FrameSequence, its frame stamps), made once per open episode."""
    if "frames" not in cache:
        cache["frames"] = {spec.camera_name: (reader.images(name), reader.stamps(name))
                           for name, spec in reader.streams.items() if spec.is_camera}
    return cache["frames"]


def _choice(query: Dict[str, list], name: str, allowed: Sequence[str]) -> Optional[str]:
    value = query_value(query, name, APP)
    if not value:
        return None
    if value not in allowed:
        raise BadRequest(f"{APP}: {name} must be one of {', '.join(allowed)}, got {value[:40]!r}")
    return value


def labels_from_json(body, default_reviewer: str) -> Labels:
    """Labels from the page's JSON, each field checked (BadRequest naming it)."""
    if not isinstance(body, dict):
        raise BadRequest(f"{APP}: labels must be a JSON object")
    unknown = set(body) - {"reviewer", "verdict", "reasons", "outcome", "subtasks", "instructions", "notes"}
    if unknown:
        raise BadRequest(f"{APP}: labels: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        reviewer = check_reviewer(body.get("reviewer") or default_reviewer)
    except ConfigError as exc:
        raise BadRequest(f"{APP}: {exc}") from None
    verdict, outcome = body.get("verdict"), body.get("outcome")
    if verdict not in (None,) + VERDICTS:
        raise BadRequest(f"{APP}: labels: verdict must be one of {', '.join(VERDICTS)} or null")
    if outcome not in (None,) + OUTCOME_OVERRIDES:
        raise BadRequest(f"{APP}: labels: outcome must be one of {', '.join(OUTCOME_OVERRIDES)} or null")
    notes = body.get("notes") or ""
    if not isinstance(notes, str) or len(notes) > MAX_TEXT_CHARS:
        raise BadRequest(f"{APP}: labels: notes must be text of at most {MAX_TEXT_CHARS} characters")
    return Labels(reviewer=reviewer, verdict=verdict, outcome=outcome, notes=notes,
                  reasons=_texts(body, "reasons"), instructions=_texts(body, "instructions"),
                  subtasks=_subtasks(body.get("subtasks")))


def _texts(body: dict, name: str) -> List[str]:
    values = body.get(name) or []
    if not isinstance(values, list) or len(values) > MAX_ITEMS or \
            not all(isinstance(v, str) and len(v) <= MAX_TEXT_CHARS for v in values):
        raise BadRequest(f"{APP}: labels: {name} must be a list of at most {MAX_ITEMS} texts")
    return [v.strip() for v in values if v.strip()]


def _subtasks(values) -> List[Subtask]:
    values = values or []
    if not isinstance(values, list) or len(values) > MAX_ITEMS:
        raise BadRequest(f"{APP}: labels: subtasks must be a list of at most {MAX_ITEMS} segments")
    out = []
    for i, item in enumerate(values):
        try:
            name, start, end = item["name"], item["start_t"], item["end_t"]
            ok = isinstance(name, str) and name.strip() and len(name) <= MAX_NAME_CHARS and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in (start, end))
        except (KeyError, TypeError):
            ok = False
        if not ok or end < start:
            raise BadRequest(f"{APP}: labels: subtask {i} must be {{name, start_t, end_t}} with finite times, "
                             "start_t <= end_t")
        out.append(Subtask(name.strip(), float(start), float(end)))
    return out


class _Handler(GatedHandler):
    server_app: ReviewServer
    app = APP
    cookie = COOKIE
    server_version = "collector-review"
    hint = "open the URL printed by `collector review` (it contains the access token)"

    @property
    def logged_in(self) -> Optional[str]:
        """The logged-in person's name (beyond loopback), else None."""
        return self.person.name if self.person is not None else None

    def route_get(self, path: str, query: Dict[str, list]) -> None:
        app = self.server_app
        parts = path.strip("/").split("/")
        me = self.logged_in
        if path == "/" and "token" in query:
            self.trade_token_for_cookie(app.token)
        elif path in ("/", "/index.html"):
            page = (STATIC_DIR / "review.html").read_text(encoding="utf-8").replace("{{TOKEN}}", self.page_token())
            page = page.replace("{{REVIEWER}}", html.escape(me or app.reviewer, quote=True))
            if me is not None:  # no free-text name when logged in
                page = page.replace('<input id="reviewer"', '<input id="reviewer" readonly', 1)
            self.send_body(HTTPStatus.OK, self.page_html(page).encode(), STATIC_TYPES[".html"])
        elif parts[0] == "static" and len(parts) == 2:
            self.send_static(STATIC_DIR, parts[1], APP)
        elif path == "/api/info":
            self.send_json(HTTPStatus.OK, {**app.info(), "reviewer": me or app.reviewer, "logged_in": me is not None})
        elif path == "/api/episodes":
            self.send_json(HTTPStatus.OK, app.listing(query, me))
        elif path == "/api/next":
            self.send_json(HTTPStatus.OK, {"episode_id": app.next_episode(query, me)})
        elif parts[:2] == ["api", "episode"] and len(parts) == 3:
            self.send_json(HTTPStatus.OK, app.episode_view(parts[2], app._reviewer_param(query, me)))
        elif parts[:2] == ["api", "episode"] and len(parts) == 4 and parts[3] == "timeline":
            self.send_json(HTTPStatus.OK, app.timeline(parts[2]))
        elif parts[:2] == ["api", "episode"] and len(parts) == 4 and parts[3] == "suggestions":
            self.send_json(HTTPStatus.OK, app.suggestions(parts[2]))
        elif parts[:2] == ["api", "episode"] and len(parts) == 6 and parts[3] == "frame" \
                and parts[5].endswith(".jpg"):
            number = parts[5][:-len(".jpg")]
            if not number.isascii() or not number.isdigit() or len(number) > 9:
                raise BadRequest(f"{APP}: frame number must be a whole number, got {number[:20]!r}")
            data, stamp = app.frame(parts[2], parts[4], int(number))
            self.send_body(HTTPStatus.OK, data, "image/jpeg",
                           {"Cache-Control": FRAME_CACHE, "X-Frame-Time": f"{stamp:.6f}"})
        else:
            raise BadRequest(f"{APP}: no page {path[:80]}", HTTPStatus.NOT_FOUND)

    def route_post(self, path: str, query: Dict[str, list]) -> None:
        parts = path.strip("/").split("/")
        if not (parts[:2] == ["api", "episode"] and len(parts) == 4 and parts[3] == "labels"):
            self.close_connection = True
            raise BadRequest(f"{APP}: no action endpoint {path[:80]}", HTTPStatus.NOT_FOUND)
        body = self.read_json_body()
        self.send_json(HTTPStatus.OK, self.server_app.save(parts[2], body, self.logged_in))
