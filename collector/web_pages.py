"""The one gate of the token-protected web pages that bind to localhost (the session dashboard, the review page).

`GatedHandler` applies the rules collector.web_auth.AccessGate holds: requests must name a loopback Host
(DNS rebinding), a foreign Origin is refused whatever its token, GETs may carry the token as the HttpOnly
cookie, a header, a bearer or `?token=`, and POSTs only in the X-Collector-Token header (a cross-site form
cannot add one). `GET /?token=T` trades the token for the cookie and redirects to `/`, so it leaves the URL
bar. Every error is JSON {"ok": false, "error": one line}. Subclasses set `app` (the name errors start
with), `cookie` and `hint` (what to open), and answer in `route_get` / `route_post`.
`GatedServer` binds the handler to loopback behind one AccessGate and serves it on its own thread.

Beyond loopback (`floor=FloorAccess`, collector/accounts/floor.py: `--listen ADDRESS` with TLS and at least
one account in the catalogue) the same classes serve over TLS and the per-run token gives way to
accounts: every request needs a login (GET/POST /login, a `Secure; HttpOnly; SameSite=Strict` session
cookie, POST /logout), the person's role must allow the page (collector/accounts/roles.py: the app name
is the page), a foreign Origin is still refused, and a change (POST) must also carry the page's
X-Collector-Token, here derived from the session (`page_token()`), so a cross-site form cannot make one.
The Host may be any name (TLS and the host-bound cookie stand where the loopback rule stood). Routes
read who is logged in as `self.person` (an Account, None on loopback).
"""
from __future__ import annotations

import html
import json
import logging
import re
import socket
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

from collector.accounts.roles import role_allows, whose_page
from collector.accounts.sessions import csrf_token
from collector.errors import CollectorError, ConfigError
from collector.json_values import json_default
from collector.web_auth import AccessGate, check_user_token, new_token, token_matches

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
LOOPBACK_BINDS = ("127.0.0.1", "localhost", "::1")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
TOKEN_HEADER = "X-Collector-Token"
LOGIN_PAGE = Path(__file__).parent / "accounts" / "login.html"
TLS_HANDSHAKE_TIMEOUT_S = 10.0
_DECIMAL = re.compile(r"-?[0-9]{1,20}")


class BadRequest(Exception):
    """A request the app cannot act on; answered with `status` and the one-line message."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = int(status)


def host_is_loopback(host_header: str) -> bool:
    host = (host_header or "").strip()
    name = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    return name in LOOPBACK_HOSTS


def query_value(query: Dict[str, list], name: str, app: str) -> Optional[str]:
    """The single value of a query parameter (None when absent); BadRequest if given twice."""
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{app}: query parameter {name!r} given {len(values)} times")
    return values[0]


def query_int(query: Dict[str, list], name: str, default: int, low: int, high: int, app: str) -> int:
    """The integer query parameter `name` in [low, high]; BadRequest naming it otherwise."""
    text = query_value(query, name, app)
    if text is None:
        return default
    # Plain decimal digits only: int() would also take "1_000" or non-ASCII digits.
    if not _DECIMAL.fullmatch(text.strip()) or not low <= int(text) <= high:
        raise BadRequest(f"{app}: query parameter {name!r} must be a whole number from {low} to {high}, "
                         f"got {text[:40]!r}")
    return int(text)


def static_file(directory: Path, name: str) -> Optional[Path]:
    """The file `name` directly inside `directory` with a known type, or None (no path tricks)."""
    file = (directory / name).resolve()
    if file.parent != directory.resolve() or not file.is_file() or file.suffix not in STATIC_TYPES:
        return None
    return file


class GatedHandler(BaseHTTPRequestHandler):
    """Answers with JSON or text and checks Host, Origin and token before any route runs."""

    protocol_version = "HTTP/1.1"
    # http.server sends a response's headers and its body in two writes; with Nagle's algorithm the body
    # then waits for the client's delayed ACK (~40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    app = "web"
    cookie = "collector_web"
    access: AccessGate
    hint = "open the URL the command printed (it contains the access token)"
    max_body_bytes = 100_000
    floor = None  # the FloorAccess of a server beyond loopback (accounts, TLS); None on loopback
    person = None  # beyond loopback: the Account logged in for this request
    session_token: Optional[str] = None

    def log_message(self, fmt, *args):  # the access log goes to logging, quietly
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- answers -------------------------------------------------------------------------------
    def send_static(self, directory: Path, name: str, app: str) -> None:
        """One of a page's own static files (`static_file`'s rules), or a 404 naming it."""
        file = static_file(directory, name)
        if file is None:
            raise BadRequest(f"{app}: no file {name[:80]}", HTTPStatus.NOT_FOUND)
        self.send_body(HTTPStatus.OK, file.read_bytes(), STATIC_TYPES[file.suffix])

    def send_body(self, status: int, body: bytes, content_type: str, headers: Optional[Dict[str, str]] = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        headers = dict(headers or {})
        headers.setdefault("Cache-Control", "no-store")
        # Beyond loopback no URL carries a token, and a form's POST must name its page in Origin (under
        # no-referrer browsers send "Origin: null", which the gate refuses).
        headers.setdefault("Referrer-Policy", "same-origin" if self.floor is not None else "no-referrer")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json_bytes(self, payload) -> bytes:
        """The payload as strict JSON (JSON.parse refuses NaN); the dashboard overrides it (NaN -> null)."""
        return json.dumps(payload, default=json_default, allow_nan=False).encode()

    def send_json(self, status: int, payload) -> None:
        self.send_body(status, self.json_bytes(payload), "application/json")

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json(status, {"ok": False, "error": " ".join(str(message).split())})

    # -- the gate ------------------------------------------------------------------------------
    def cookie_token(self) -> Optional[str]:
        # Read by hand: the browser also sends the cookies other localhost apps set, and SimpleCookie
        # drops the whole header (ours included) at the first name it finds illegal ("cart[1]=...").
        return self.cookie_named(self.cookie)

    def token_candidates(self, query: Dict[str, list]) -> Tuple[Optional[str], ...]:
        if self.command == "POST":
            # A cookie alone is not enough for a change: another site could make the browser send it.
            return (self.headers.get(TOKEN_HEADER),)
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or None
        return (self.cookie_token(), self.headers.get(TOKEN_HEADER), bearer, (query.get("token") or [None])[0])

    def gate(self) -> Optional[Tuple[str, Dict[str, list]]]:
        """(path, query) when the request may proceed; None after answering its refusal."""
        if self.floor is not None:
            return self.login_gate()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if not host_is_loopback(self.headers.get("Host") or ""):
            self.send_error_json(HTTPStatus.FORBIDDEN, f"{self.app}: requests must use a localhost address")
            return None
        peer = self.client_address[0]
        refusal = self.access.check(peer, self.token_candidates(query), self.headers.get("Origin"), "http",
                                    self.headers.get("Host") or "")
        if refusal is None:
            return parts.path, query
        log.warning("%s refused %s %s from %s: %s", self.app, self.command, parts.path, peer, refusal.reason)
        if refusal.status == HTTPStatus.TOO_MANY_REQUESTS:
            message = "too many wrong tokens from this address; wait a minute"
        elif refusal.status == HTTPStatus.FORBIDDEN:
            message = "requests from another web page (Origin) are refused; see --allow-origin"
        elif self.command == "POST":
            # Also what a page left open across a restart sees: its token is the old server's.
            message = f"changes need this server's token in the {TOKEN_HEADER} header; {self.hint}"
        else:
            message = self.hint
        self.send_error_json(refusal.status, f"{self.app}: {message}")
        return None

    # -- the gate beyond loopback: accounts --------------------------------------------------------
    @property
    def login_cookie_name(self) -> str:
        # __Host-: browsers keep it only if Secure, Path=/ and set by this very host (no Domain).
        return f"__Host-{self.cookie}_login"

    def login_gate(self) -> Optional[Tuple[str, Dict[str, list]]]:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        peer, origin = self.client_address[0], self.headers.get("Origin")
        if origin is not None and not self.access.origin_allowed(origin, "https", self.headers.get("Host") or ""):
            self.access.refused_origins += 1
            self.access.refused += 1
            log.warning("%s refused %s %s from %s: foreign Origin", self.app, self.command, parts.path, peer)
            self.send_error_json(HTTPStatus.FORBIDDEN, f"{self.app}: requests from another web page (Origin) "
                                                       "are refused; see --allow-origin")
            return None
        if parts.path == "/login":
            if self.command == "POST":
                self.answer(self.log_in)
            else:
                self.send_login_page(HTTPStatus.OK, "")
            return None
        token = self.cookie_named(self.login_cookie_name)
        try:
            person = self.floor.sessions.account(token)
            if parts.path == "/logout" and self.command == "POST":
                self.floor.sessions.logout(token)
        except CollectorError as exc:  # the catalogue (where sessions live) is unreachable: say so, go on
            self.send_error_json(HTTPStatus.SERVICE_UNAVAILABLE, f"{self.app}: cannot check the login: {exc}")
            return None
        if parts.path == "/logout" and self.command == "POST":
            self.send_body(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/login", "Connection": "close",
                                                                   "Set-Cookie": self.login_cookie("", max_age=0)})
            return None
        if person is None:
            self.access.refused += 1
            if self.command in ("GET", "HEAD") and parts.path in ("/", "/index.html"):
                self.send_body(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/login"})
            else:
                self.send_error_json(HTTPStatus.UNAUTHORIZED, f"{self.app}: log in first (open /login)")
            return None
        if not role_allows(person.role, self.app):
            self.access.refused += 1
            self.send_error_json(HTTPStatus.FORBIDDEN, f"{self.app}: {person.name} is a {person.role}; this page "
                                                       f"is for {whose_page(self.app)}")
            return None
        if self.command == "POST" and not token_matches(csrf_token(token), self.headers.get(TOKEN_HEADER)):
            # The session cookie alone is not enough for a change, as on loopback.
            self.access.refused += 1
            self.send_error_json(HTTPStatus.FORBIDDEN, f"{self.app}: changes need the page's {TOKEN_HEADER} "
                                                       "header; reload the page")
            return None
        self.person, self.session_token = person, token
        return parts.path, query

    def log_in(self) -> None:
        """POST /login (a form: name, password): the session cookie and back to the page, or the form again."""
        peer = self.client_address[0]
        form = self.read_form_body()
        name, password = (form.get("name") or [""])[0].strip(), (form.get("password") or [""])[0]
        if self.access.limiter.blocked(peer):
            self.access.refused += 1
            self.send_login_page(HTTPStatus.TOO_MANY_REQUESTS, "Too many wrong passwords from this address; "
                                                               "wait a minute.")
            return
        login = self.floor.sessions.login(name, password) if name and password else None
        if login is None:
            self.access.limiter.record_failure(peer)
            self.access.refused += 1
            log.warning("%s: failed login for %r from %s", self.app, name[:64], peer)
            self.send_login_page(HTTPStatus.UNAUTHORIZED, "Wrong name or password.")
            return
        token, account = login
        log.info("%s: %s (%s) logged in from %s", self.app, account.name, account.role, peer)
        max_age = int(self.floor.sessions.ttl_s)
        self.send_body(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Connection": "close",
                                                               "Set-Cookie": self.login_cookie(token, max_age=max_age)})

    def login_cookie(self, value: str, max_age: int) -> str:
        return f"{self.login_cookie_name}={value}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"

    def send_login_page(self, status: int, message: str) -> None:
        page = LOGIN_PAGE.read_text(encoding="utf-8").replace("{{APP}}", html.escape(self.app))
        page = page.replace("{{MESSAGE}}", html.escape(message))
        # do_POST closes the connection after a request the gate answered: say so, so clients reconnect.
        self.send_body(status, page.encode(), STATIC_TYPES[".html"],
                       {"Connection": "close"} if self.command == "POST" else None)

    def read_form_body(self) -> Dict[str, list]:
        length = self.body_length()
        try:
            return parse_qs(self.rfile.read(length).decode("utf-8"), max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest(f"{self.app}: the login form could not be read") from None

    def page_token(self) -> str:
        """The token a page puts in its X-Collector-Token header: the server's (loopback) or the session's CSRF token."""
        if self.floor is not None:
            return csrf_token(self.session_token or "")
        return self.access.token

    def page_html(self, page: str) -> str:
        """A page as served: beyond loopback with who is logged in and a Log out button."""
        if self.person is None:
            return page
        bar = ('<form method="post" action="/logout" id="collector-account" style="position:fixed;right:8px;'
               'bottom:8px;margin:0;font:12px system-ui,sans-serif;background:#fffe;padding:4px 8px;'
               f'border-radius:4px;z-index:1000">{html.escape(self.person.name)} ({html.escape(self.person.role)}) '
               '<button type="submit">Log out</button></form>')
        return page.replace("</body>", bar + "</body>", 1)

    def cookie_named(self, cookie: str) -> Optional[str]:
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.partition("=")
            if name.strip() == cookie:
                return value.strip().strip('"') or None
        return None

    # -- routes --------------------------------------------------------------------------------
    def do_GET(self):
        gated = self.gate()
        if gated is not None:
            self.answer(lambda: self.route_get(*gated))

    do_HEAD = do_GET

    def do_POST(self):
        gated = self.gate()
        if gated is None:
            self.close_connection = True  # the unread body must not be taken for the next request
            return
        self.answer(lambda: self.route_post(*gated))

    def route_get(self, path: str, query: Dict[str, list]) -> None:
        raise BadRequest(f"{self.app}: no page {path[:80]}", HTTPStatus.NOT_FOUND)

    def route_post(self, path: str, query: Dict[str, list]) -> None:
        raise BadRequest(f"{self.app}: no action endpoint {path[:80]}", HTTPStatus.NOT_FOUND)

    def answer(self, route: Callable[[], None]) -> None:
        """Runs a route; every failure becomes a one-line JSON error and the server goes on."""
        try:
            route()
        except BadRequest as exc:
            self.close_connection = self.command == "POST"  # its body may be left unread
            self.send_error_json(exc.status, str(exc))
        except CollectorError as exc:
            self.send_error_json(HTTPStatus.UNPROCESSABLE_ENTITY if isinstance(exc, ConfigError)
                                 else HTTPStatus.INTERNAL_SERVER_ERROR, f"{self.app}: {exc}")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away mid-answer
        except Exception as exc:  # a bug must cost one request, not the operator's server
            log.exception("%s: %s %s failed", self.app, self.command, self.path)
            self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                                 f"{self.app}: unexpected {type(exc).__name__}: {exc}"[:300])

    def trade_token_for_cookie(self, token: str) -> None:
        if self.floor is not None:  # logged in: there is no access token to trade, just tidy the URL
            self.send_body(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/"})
            return
        cookie = f"{self.cookie}={token}; HttpOnly; SameSite=Strict; Path=/"
        self.send_body(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})

    def read_json_body(self):
        """The request's JSON body; BadRequest for a bad length, too many bytes or not JSON."""
        length = self.body_length()
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest(f"{self.app}: the body must be a JSON object") from None

    def body_length(self) -> int:
        # A negative or huge Content-Length would make read() wait for bytes that never come.
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isascii() or not text.isdigit():
            raise BadRequest(f"{self.app}: Content-Length must be a byte count, got {text[:40]!r}")
        length = int(text)
        if length > self.max_body_bytes:
            raise BadRequest(f"{self.app}: body of {length} bytes exceeds {self.max_body_bytes}",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return length


def allowed_bind(host: str, app: str) -> str:
    if host not in LOOPBACK_BINDS:
        raise ConfigError(f"{app} host {host!r}: without accounts and TLS it only binds to localhost "
                          "(reach it remotely with `ssh -L PORT:localhost:PORT station`, or see --listen)")
    return host


class _TlsHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer over TLS. The handshake runs on the connection's own thread: done in accept(),
    one client that connects and says nothing would stall every other."""

    ssl_context: ssl.SSLContext

    def __init__(self, address, handler, ssl_context: ssl.SSLContext):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.ssl_context = ssl_context
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        request.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # plain HTTP, a scanner, a browser refusing the certificate
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            connection.settimeout(None)
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            connection.close()

    def handle_error(self, request, client_address):
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)


class GatedServer:
    """A page's HTTP server: loopback only, one AccessGate, served on its own thread until close().

    `handler` (a GatedHandler subclass) reaches the server as `self.server_app`. `closing` is set when
    the server closes, so long answers (an event stream) end."""

    app = "web"

    def __init__(self, handler: type, *, host: str, port: int, token: Optional[str],
                 allowed_origins: Sequence[str] = (), floor=None):
        # A page that starts recordings or saves labels is exposed beyond this machine only with TLS and
        # accounts (`floor`, a collector.accounts.floor.FloorAccess); otherwise remote users forward the
        # port over SSH.
        if floor is None:
            allowed_bind(host, self.app)
        elif floor.accounts.count() == 0:
            raise ConfigError(f"{self.app}: {floor.accounts.catalog.path} has no accounts; add one first: "
                              "collector accounts DATASET add NAME --role admin")
        self.floor = floor
        self.host = host
        self.token = check_user_token(token) if token else new_token()
        self.access = AccessGate(self.token, allowed_origins, unauthorized=HTTPStatus.UNAUTHORIZED)
        self.closing = threading.Event()
        bound = type(handler.__name__, (handler,), {"server_app": self, "access": self.access, "floor": floor})
        try:
            if floor is None:
                self.httpd = ThreadingHTTPServer((host, port), bound)
            else:
                self.httpd = _TlsHTTPServer((host, port), bound, floor.ssl_context)
        except OSError as exc:
            raise ConfigError(f"{self.app}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        if self.floor is not None:
            from collector.accounts.floor import url_host

            return f"https://{url_host(self.host)}:{self.port}/"
        return f"http://localhost:{self.port}/?token={self.token}"

    @property
    def refused_requests(self) -> int:
        """Requests refused for a missing or wrong token or a foreign Origin, on any method."""
        return self.access.refused

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"{self.app}-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, then `after_close` (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.closing.set()
        if self._thread is not None:
            self.httpd.shutdown()  # only while serve_forever runs: it would wait forever otherwise
            self._thread.join(timeout=5)
        self.httpd.server_close()
        self.after_close()

    def after_close(self) -> None:
        """What a page still does once it has stopped serving."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


__all__: Sequence[str] = ("BadRequest", "GatedHandler", "GatedServer", "LOOPBACK_HOSTS", "STATIC_TYPES",
                          "allowed_bind", "host_is_loopback", "query_int", "query_value", "static_file")
