"""The web pages beyond loopback (collector/web_pages.py with collector/accounts/): a real TLS server on
0.0.0.0 with a self-signed certificate, accounts in the dataset's catalogue, logins, roles, the session
cookie's attributes, changes that need the page's header, the logged-in name on saved labels, expiry
with an injected clock; the refusals to listen beyond loopback without TLS or without accounts (one
line, exit 2); and headless Chromium logging in and labelling a take on the review page."""
import http.client
import json
import ssl

import pytest

from collector.accounts.floor import FloorAccess
from collector.accounts.sessions import SessionStore, csrf_token
from collector.accounts.store import AccountStore
from collector.cli import main
from collector.errors import ConfigError
from collector.review.annotations import read_review
from collector.session.catalog import Catalog

pytestmark = pytest.mark.dataset(episodes=2, duration_s=1.0)
PASSWORDS = {"ana": "ana's password", "olga": "olga's password", "root": "root's password"}
ROLES = {"ana": "reviewer", "olga": "operator", "root": "admin"}


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def catalog(dataset):
    catalog = Catalog(dataset / "catalog.sqlite")
    store = AccountStore(catalog)
    for name, role in ROLES.items():
        store.add(name, role, PASSWORDS[name])
    return catalog


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from collector.teleop.vr.certificate import ensure_certificate, host_names

    return ensure_certificate(host_names("0.0.0.0"), cert_dir=tmp_path_factory.mktemp("tls"))


def floor_of(catalog, certificate, clock=None, ttl_s=3600.0):
    sessions = SessionStore(AccountStore(catalog, clock=clock) if clock else AccountStore(catalog), ttl_s=ttl_s)
    return FloorAccess(sessions, certificate.ssl_context(), certificate)


@pytest.fixture(scope="module")
def review(dataset, catalog, certificate):
    from collector.review.server import ReviewServer

    with ReviewServer(dataset, host="0.0.0.0", port=0, reviewer="station-user",
                      floor=floor_of(catalog, certificate)) as srv:
        yield srv


def https(srv, certificate, path, *, method="GET", body=None, headers=None):
    """(status, headers, body) of one request over TLS, the self-signed certificate trusted as its own CA."""
    context = ssl.create_default_context(cafile=str(certificate.cert_path))
    connection = http.client.HTTPSConnection("localhost", srv.port, context=context, timeout=30)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    try:
        connection.request(method, path, body=data, headers=dict(headers or {}))
        reply = connection.getresponse()
        return reply.status, reply.headers, reply.read()
    finally:
        connection.close()


def log_in(srv, certificate, name, password=None):
    """The session cookie header of a fresh login as `name`, and the page's CSRF token for it."""
    form = f"name={name}&password={password or PASSWORDS[name]}".replace(" ", "+").replace("'", "%27")
    status, headers, _ = https(srv, certificate, "/login", method="POST", body=form.encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["Location"] == "/", status
    cookie = headers["Set-Cookie"].split(";")[0]
    return {"Cookie": cookie}, csrf_token(cookie.split("=", 1)[1])


def test_plain_http_fails_and_https_needs_a_login(review, certificate):
    assert review.url.startswith("https://") and review.httpd.server_address[0] == "0.0.0.0"
    plain = http.client.HTTPConnection("127.0.0.1", review.port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/api/info")
        plain.getresponse().read()
    plain.close()
    status, headers, _ = https(review, certificate, "/")
    assert status == 303 and headers["Location"] == "/login"
    status, _, body = https(review, certificate, "/api/info")
    assert status == 401 and "log in" in json.loads(body)["error"]
    # the per-run token of a loopback page opens nothing here
    assert https(review, certificate, f"/api/info?token={review.token}")[0] == 401
    status, _, page = https(review, certificate, "/login")
    assert status == 200 and b'action="/login"' in page and b'type="password"' in page
    wrong = b"name=ana&password=not+it"
    status, headers, page = https(review, certificate, "/login", method="POST", body=wrong)
    assert status == 401 and b"Wrong name or password" in page and "Set-Cookie" not in headers

    status, headers, _ = https(review, certificate, "/login", method="POST",
                               body=b"name=ana&password=ana%27s+password")
    assert status == 303 and headers["Location"] == "/"
    attributes = {part.strip() for part in headers["Set-Cookie"].split(";")}
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= attributes
    assert headers["Set-Cookie"].startswith("__Host-collector_review_login=")
    cookie = {"Cookie": headers["Set-Cookie"].split(";")[0]}
    status, _, body = https(review, certificate, "/api/info", headers=cookie)
    info = json.loads(body)
    assert status == 200 and info["reviewer"] == "ana" and info["logged_in"] is True
    status, _, page = https(review, certificate, "/", headers=cookie)
    assert status == 200 and b'<input id="reviewer" readonly' in page and b'content="ana"' in page
    session = cookie["Cookie"].split("=", 1)[1]
    assert session.encode() not in page and review.token.encode() not in page  # the page's token is the CSRF one
    assert csrf_token(session).encode() in page and b'action="/logout"' in page


def test_saved_labels_name_the_logged_in_reviewer(review, certificate):
    cookie, csrf = log_in(review, certificate, "ana")
    labels = "/api/episode/episode_000001/labels"
    # the cookie alone does not make a change; nor does another page (Origin); nor another name
    assert https(review, certificate, labels, method="POST", body={"verdict": "accept"}, headers=cookie)[0] == 403
    evil = {**cookie, "X-Collector-Token": csrf, "Origin": "https://evil.example"}
    assert https(review, certificate, labels, method="POST", body={"verdict": "accept"}, headers=evil)[0] == 403
    status, _, body = https(review, certificate, labels, method="POST",
                            body={"verdict": "accept", "reviewer": "mallory"},
                            headers={**cookie, "X-Collector-Token": csrf})
    assert status == 403 and "logged-in name 'ana'" in json.loads(body)["error"]
    status, _, body = https(review, certificate, labels, method="POST", body={"verdict": "reject", "reasons": ["blurry"]},
                            headers={**cookie, "X-Collector-Token": csrf})
    assert status == 200 and json.loads(body)["record"]["reviewer"] == "ana"
    path = review.layout.absolute(review.catalog.episode(1).path)
    latest = read_review(path).latest()
    assert latest["ana"].verdict == "reject" and "mallory" not in latest and "station-user" not in latest


def test_roles_and_logout_on_the_review_page(review, certificate):
    operator, _ = log_in(review, certificate, "olga")
    status, _, body = https(review, certificate, "/api/info", headers=operator)
    assert status == 403 and "olga is a operator" in json.loads(body)["error"]
    admin, _ = log_in(review, certificate, "root")
    assert https(review, certificate, "/api/info", headers=admin)[0] == 200
    status, headers, _ = https(review, certificate, "/logout", method="POST", headers=admin)
    assert status == 303 and headers["Location"] == "/login" and "Max-Age=0" in headers["Set-Cookie"]
    assert https(review, certificate, "/api/info", headers=admin)[0] == 401


def test_a_reviewer_gets_403_on_the_dashboards_commands(catalog, certificate):
    from collector.session.dashboard import DashboardServer
    from collector.session.live import LiveState

    actions, operators = [], []
    control = lambda action: actions.append(action) or f"{action} done"  # noqa: E731
    with DashboardServer(LiveState(), control, host="0.0.0.0", port=0, floor=floor_of(catalog, certificate),
                         take_operator=operators.append) as dash:
        reviewer, csrf = log_in(dash, certificate, "ana")
        start = {"action": "start"}
        status, _, body = https(dash, certificate, "/api/control", method="POST", body=start,
                                headers={**reviewer, "X-Collector-Token": csrf})
        assert status == 403 and "this page is for operators and admins" in json.loads(body)["error"]
        assert https(dash, certificate, "/api/state", headers=reviewer)[0] == 403
        assert actions == [] and operators == []
        operator, csrf = log_in(dash, certificate, "olga")
        assert https(dash, certificate, "/api/control", method="POST", body=start, headers=operator)[0] == 403
        status, _, body = https(dash, certificate, "/api/control", method="POST", body=start,
                                headers={**operator, "X-Collector-Token": csrf})
        assert status == 200 and json.loads(body)["message"] == "start done"
        assert actions == ["start"] and operators == ["olga"]  # the take records who started it
        status, _, page = https(dash, certificate, "/", headers=operator)
        assert status == 200 and csrf.encode() in page and b"olga (operator)" in page


def test_an_expired_login_is_refused(dataset, catalog, certificate):
    from collector.review.server import ReviewServer

    clock = Clock()
    with ReviewServer(dataset, host="0.0.0.0", port=0, floor=floor_of(catalog, certificate, clock, ttl_s=600)) as srv:
        cookie, _ = log_in(srv, certificate, "ana")
        clock.now += 599
        assert https(srv, certificate, "/api/info", headers=cookie)[0] == 200
        clock.now += 2
        assert https(srv, certificate, "/api/info", headers=cookie)[0] == 401
        assert https(srv, certificate, "/", headers=cookie)[1]["Location"] == "/login"


def test_beyond_loopback_needs_tls_and_accounts(tmp_path, dataset, catalog, capsys, monkeypatch):
    from collector.review.server import ReviewServer
    from collector.session.dashboard import DashboardServer
    from collector.session.live import LiveState
    from collector.dataset.synthetic import write_synthetic_dataset

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(ConfigError, match="only binds to localhost"):
        DashboardServer(LiveState(), lambda a: a, host="0.0.0.0", port=0)
    with pytest.raises(ConfigError, match="only binds to localhost"):
        ReviewServer(dataset, host="0.0.0.0", port=0)
    bare = write_synthetic_dataset(tmp_path / "bare", 1, camera_size=(48, 64), duration_s=0.5)
    before = sorted(p.name for p in bare.iterdir())
    cases = [
        (["review", str(dataset), "--listen", "0.0.0.0", "--port", "0"], "served over TLS only"),
        (["review", str(bare), "--listen", "0.0.0.0", "--port", "0", "--tls-self-signed"], "has no accounts"),
        (["review", str(dataset), "--port", "0", "--tls-self-signed"], "only apply with --listen"),
        (["review", str(dataset), "--listen", "0.0.0.0", "--tls-cert", str(tmp_path / "c.pem")], "both --tls-cert"),
        (["session", "--plan", "demo", "--out", str(tmp_path / "new"), "--listen", "0.0.0.0"], "TLS only"),
        (["session", "--plan", "demo", "--out", str(tmp_path / "new"), "--listen", "0.0.0.0",
          "--tls-self-signed"], "the dataset has no accounts"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"collector {argv[0]}: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "new").exists() and not (tmp_path / "config").exists()  # nothing made
    assert sorted(p.name for p in bare.iterdir()) == before


@pytest.mark.slow
def test_a_reviewer_logs_in_and_labels_a_take_in_chromium(review, certificate, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import StaleElementReferenceException

    wait = WebDriverWait(browser, 60, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
    js = browser.execute_script
    browser.get(f"https://localhost:{review.port}/")  # the helper's Chromium accepts the self-signed certificate
    loaded = lambda d: js("return document.readyState") == "complete"  # noqa: E731
    wait.until(lambda d: d.current_url.endswith("/login") and loaded(d))
    browser.find_element(By.ID, "name").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys("not it")
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda d: "Wrong name or password" in d.find_element(By.ID, "message").text and loaded(d))
    browser.find_element(By.ID, "name").clear()
    browser.find_element(By.ID, "name").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["ana"], Keys.ENTER)
    # the page itself (it then names the take it opens in the URL's #fragment)
    wait.until(lambda d: d.current_url.split("#")[0] == f"https://localhost:{review.port}/")
    wait.until(lambda d: js("return document.body.dataset.ready") == "1")
    assert browser.find_element(By.ID, "reviewer").get_attribute("value") == "ana"
    assert browser.find_element(By.ID, "reviewer").get_attribute("readonly") is not None
    assert js("return document.cookie") == ""  # HttpOnly: the page's scripts never see the session
    js("location.hash = '#episode_000002'")
    wait.until(lambda d: js("return review.ep && review.ep.episode_id") == "episode_000002")
    ActionChains(browser).send_keys("a").perform()  # accept: saves
    wait.until(lambda d: js("return document.getElementById('save-state').dataset.state") == "saved")
    path = review.layout.absolute(review.catalog.episode(2).path)
    assert read_review(path).latest()["ana"].verdict == "accept"
    assert {r["reviewer"] for r in review.catalog.review_records() if r["episode_index"] == 2} == {"ana"}


def test_a_password_guesser_is_throttled(dataset, catalog, certificate):
    from collector.review.server import ReviewServer
    from collector.web_auth import MAX_FAILURES

    with ReviewServer(dataset, host="0.0.0.0", port=0, floor=floor_of(catalog, certificate)) as srv:
        for _ in range(MAX_FAILURES):
            assert https(srv, certificate, "/login", method="POST", body=b"name=ana&password=guess+guess")[0] == 401
        # from now on this address is answered 429, the right password too, until the window has passed
        status, _, page = https(srv, certificate, "/login", method="POST", body=b"name=ana&password=ana%27s+password")
        assert status == 429 and b"Too many wrong passwords" in page
        assert srv.refused_requests >= MAX_FAILURES + 1


def test_a_catalogue_that_cannot_be_read_is_answered_503_and_the_server_goes_on(tmp_path, certificate):
    from collector.session.dashboard import DashboardServer
    from collector.session.live import LiveState

    catalog = Catalog(tmp_path / "catalog.sqlite")
    AccountStore(catalog).add("olga", "operator", PASSWORDS["olga"])
    with DashboardServer(LiveState(), lambda a: a, host="0.0.0.0", port=0,
                         floor=floor_of(catalog, certificate)) as dash:
        with catalog.transaction() as conn:
            conn.execute("ALTER TABLE account_sessions RENAME TO sessions_elsewhere")
        status, _, body = https(dash, certificate, "/api/state", headers={"Cookie": "__Host-collector_dashboard_login=x"})
        assert status == 503 and "cannot check the login" in json.loads(body)["error"]
        with catalog.transaction() as conn:
            conn.execute("ALTER TABLE sessions_elsewhere RENAME TO account_sessions")
        cookie, _ = log_in(dash, certificate, "olga")
        assert https(dash, certificate, "/api/state", headers=cookie)[0] == 200
