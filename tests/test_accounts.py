"""Accounts for pages served beyond loopback (collector/accounts/): scrypt hashes with a salt per user and
their parameters stored, expiring login sessions (an injected clock, no sleeping), roles, the catalogue
as their home on both engines, and `collector accounts` with its one-line errors."""
import pytest

from collector.accounts.passwords import PasswordHash, hash_password, verify_password
from collector.accounts.roles import role_allows
from collector.accounts.sessions import CACHE_S, SessionStore
from collector.accounts.store import AccountStore
from collector.cli import main
from collector.errors import ConfigError
from collector.session.catalog import Catalog

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    return AccountStore(Catalog(tmp_path / "catalog.sqlite"), clock=Clock())


def test_one_password_hashes_differently_for_two_users_with_its_parameters_stored(store):
    store.add("ana", "reviewer", PASSWORD)
    store.add("ben", "operator", PASSWORD)
    ana, ben = PasswordHash.decode(store.stored_hash("ana")), PasswordHash.decode(store.stored_hash("ben"))
    assert ana.salt != ben.salt and ana.digest != ben.digest and len(ana.salt) == 16
    assert (ana.n, ana.r, ana.p) == (2**14, 8, 1) and store.stored_hash("ana").startswith("scrypt$16384$8$1$")
    assert PASSWORD not in store.stored_hash("ana")
    assert store.check("ana", PASSWORD).role == "reviewer"
    assert store.check("ana", PASSWORD + "x") is None and store.check("ana", "") is None
    assert store.check("nobody", PASSWORD) is None


def test_stored_parameters_are_the_ones_checked():
    cheap = hash_password(PASSWORD, n=2**10, r=4, p=2)  # a hash made with another cost still verifies
    assert cheap.split("$")[1:4] == ["1024", "4", "2"]
    assert verify_password(PASSWORD, cheap) and not verify_password("wrong password", cheap)
    assert not verify_password(PASSWORD, "md5$abc") and not verify_password(PASSWORD, "")


def test_names_roles_and_passwords_are_checked(store):
    store.add("ana", "admin", PASSWORD)
    with pytest.raises(ConfigError, match="already exists"):
        store.add("ana", "reviewer", PASSWORD)
    with pytest.raises(ConfigError, match="role 'boss'"):
        store.add("bo", "boss", PASSWORD)
    with pytest.raises(ConfigError, match="account name"):
        store.add("bad name", "admin", PASSWORD)
    with pytest.raises(ConfigError, match="8 to 1024"):
        store.add("cy", "admin", "short")
    assert [(a.name, a.role) for a in store.accounts()] == [("ana", "admin")]


def test_a_session_past_its_expiry_is_refused(store):
    clock = store.clock
    store.add("ana", "reviewer", PASSWORD)
    sessions = SessionStore(store, ttl_s=3600)
    assert sessions.login("ana", "wrong password") is None
    token, account = sessions.login("ana", PASSWORD)
    assert account.name == "ana" and sessions.account(token) == account
    with store.db.reading() as conn:  # the server keeps only the token's hash
        stored = [row[0] for row in conn.execute("SELECT token_sha256 FROM account_sessions").fetchall()]
    assert len(stored) == 1 and token not in stored[0]
    clock.now += 3599
    assert sessions.account(token) == account
    clock.now += 2  # past the hour: refused, even though the answer was cached a moment ago
    assert sessions.account(token) is None
    assert sessions.account("made-up-token") is None and sessions.account(None) is None


def test_logout_a_new_password_and_removal_end_sessions(store):
    clock = store.clock
    store.add("ana", "reviewer", PASSWORD)
    sessions = SessionStore(store)
    first, _ = sessions.login("ana", PASSWORD)
    second, _ = sessions.login("ana", PASSWORD)
    sessions.logout(first)
    assert sessions.account(first) is None and sessions.account(second) is not None
    other_station = SessionStore(AccountStore(store.catalog, clock=clock))  # another page on the same catalogue
    other_station.accounts.set_password("ana", "a new password")
    clock.now += CACHE_S + 1  # a page that cached the session learns of it within CACHE_S
    assert sessions.account(second) is None
    assert sessions.login("ana", PASSWORD) is None
    third, _ = sessions.login("ana", "a new password")
    store.remove("ana")
    clock.now += CACHE_S + 1
    assert sessions.account(third) is None and store.accounts() == []


def test_roles():
    assert role_allows("operator", "dashboard") and not role_allows("operator", "review")
    assert role_allows("reviewer", "review") and not role_allows("reviewer", "dashboard")
    assert not role_allows("reviewer", "fleet") and not role_allows("operator", "fleet")
    assert all(role_allows("admin", page) for page in ("dashboard", "review", "fleet"))


def test_one_account_works_at_every_station_of_the_catalogue(catalog_location):
    """Stations share the catalogue (a PostgreSQL server for a fleet): an account added at one logs in at another."""
    added_at = AccountStore(Catalog(catalog_location))
    added_at.add("lee", "operator", PASSWORD)
    elsewhere = SessionStore(AccountStore(Catalog(catalog_location)))
    token, account = elsewhere.login("lee", PASSWORD)
    assert account.role == "operator"
    assert SessionStore(AccountStore(Catalog(catalog_location))).account(token).name == "lee"


def test_the_accounts_command(tmp_path, capsys):
    Catalog(tmp_path / "ds" / "catalog.sqlite")
    password_file = tmp_path / "pw.txt"
    password_file.write_text(PASSWORD + "\n")
    ds = str(tmp_path / "ds")
    assert main(["accounts", ds, "add", "ana", "--role", "reviewer", "--password-file", str(password_file)]) == 0
    assert main(["accounts", ds, "add", "root", "--role", "admin", "--password-file", str(password_file)]) == 0
    capsys.readouterr()
    assert main(["accounts", ds, "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["ana", "reviewer"] and listed[1].split() == ["root", "admin"]
    # one-line errors, exit 2, nothing changed
    for argv, message in [
        (["add", "ana", "--role", "admin", "--password-file", str(password_file)], "already exists"),
        (["passwd", "zed", "--password-file", str(password_file)], "no account 'zed'"),
        (["passwd", "ana", "--password-file", str(tmp_path / "missing.txt")], "missing.txt: cannot read"),
        (["remove", "zed"], "no account 'zed'"),
    ]:
        assert main(["accounts", ds] + argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("collector accounts: error: ") and message in err and err.count("\n") == 1, err
    assert main(["accounts", str(tmp_path / "nothing"), "list"]) == 2
    assert "not a dataset" in capsys.readouterr().err and not (tmp_path / "nothing").exists()
    (tmp_path / "plain").mkdir()  # an existing folder that is no dataset is not made one
    assert main(["accounts", str(tmp_path / "plain"), "add", "x", "--role", "admin", "--password-file",
                 str(password_file)]) == 2
    assert "not a dataset" in capsys.readouterr().err and list((tmp_path / "plain").iterdir()) == []
    # a dataset folder not made yet: `add` creates its catalogue, so accounts exist before the first session
    assert main(["accounts", str(tmp_path / "new"), "add", "x", "--role", "admin", "--password-file",
                 str(password_file)]) == 0
    assert (tmp_path / "new" / "catalog.sqlite").is_file()
    new_password = tmp_path / "new.txt"
    new_password.write_text("another password\n")
    assert main(["accounts", ds, "passwd", "ana", "--password-file", str(new_password)]) == 0
    store = AccountStore(Catalog(tmp_path / "ds" / "catalog.sqlite"))
    assert store.check("ana", "another password") and not store.check("ana", PASSWORD)
    assert main(["accounts", ds, "remove", "ana"]) == 0
    assert [a.name for a in store.accounts()] == ["root"]
