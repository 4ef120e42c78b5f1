"""A page on the floor's network: what `--listen ADDRESS` beyond loopback needs before it may serve
(TLS and at least one account in the catalogue), and the options every page command shares
(`collector review`, `collector session`, `collector fleet`).

Without --listen (or with a loopback address) nothing here applies: the page stays on localhost with its
per-run token, as on a single station."""
from __future__ import annotations

import argparse
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

from collector.accounts.sessions import DEFAULT_TTL_S, SessionStore
from collector.accounts.store import AccountStore
from collector.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class FloorAccess:
    """What a GatedServer beyond loopback serves with: login sessions over the catalogue's accounts, and TLS."""

    sessions: SessionStore
    ssl_context: ssl.SSLContext
    certificate: object = None  # the CertificateInfo (fingerprint, files) to tell the operator about

    @property
    def accounts(self) -> AccountStore:
        return self.sessions.accounts


def is_loopback(address: str) -> bool:
    if address in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def add_listen_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("serving beyond this machine (docs/fleet.md, 'Accounts and the floor's network')")
    group.add_argument("--listen", default=None, metavar="ADDRESS",
                       help="listen on ADDRESS (e.g. 0.0.0.0) instead of localhost; needs TLS and accounts, and "
                            "then every request needs a login")
    group.add_argument("--tls-cert", default=None, metavar="FILE", help="TLS certificate (PEM) for --listen")
    group.add_argument("--tls-key", default=None, metavar="FILE", help="its private key (PEM)")
    group.add_argument("--tls-self-signed", action="store_true",
                       help="generate (once) and use a self-signed certificate for --listen")
    group.add_argument("--session-hours", type=float, default=DEFAULT_TTL_S / 3600, metavar="H",
                       help="a login lasts H hours (default %(default)g)")


def floor_access(args, open_catalog: Callable[[], object]) -> Tuple[str, Optional[FloorAccess]]:
    """(the address to bind, the FloorAccess or None for loopback). ConfigError, before anything is created,
    when an address beyond loopback lacks TLS or the catalogue has no account. `open_catalog` gives
    the catalogue the accounts live in (or None when there is none yet)."""
    listen = getattr(args, "listen", None)
    cert, key, self_signed = args.tls_cert, args.tls_key, args.tls_self_signed
    if listen is None or is_loopback(listen):
        if cert or key or self_signed:
            raise ConfigError("--tls-cert/--tls-key/--tls-self-signed only apply with --listen beyond loopback "
                              "(e.g. --listen 0.0.0.0); on localhost the page uses its access token")
        return listen or "127.0.0.1", None
    if not (cert or key or self_signed):
        raise ConfigError(f"--listen {listen}: a page beyond loopback is served over TLS only; give --tls-cert "
                          "FILE --tls-key FILE, or --tls-self-signed")
    if self_signed and (cert or key):
        raise ConfigError("give either --tls-cert/--tls-key or --tls-self-signed, not both")
    if not self_signed and not (cert and key):
        raise ConfigError("give both --tls-cert and --tls-key")
    if not args.session_hours > 0:
        raise ConfigError(f"--session-hours must be positive, got {args.session_hours:g}")
    catalog = open_catalog()
    if catalog is None or not has_accounts(catalog):
        where = catalog.path if catalog is not None else "the dataset"
        raise ConfigError(f"--listen {listen}: {where} has no accounts; add one first: "
                          "collector accounts DATASET add NAME --role admin")
    certificate = _certificate(listen, cert, key)
    sessions = SessionStore(AccountStore(catalog), ttl_s=args.session_hours * 3600)
    return listen, FloorAccess(sessions, certificate.ssl_context(), certificate)


def has_accounts(catalog) -> bool:
    """Whether the catalogue holds at least one account (read only: no table is created to find out)."""
    with catalog.db.reading() as conn:
        if "accounts" not in catalog.db.tables(conn):
            return False
        return conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] > 0


def default_cert_dir() -> Path:
    from collector.teleop.vr.certificate import default_cert_dir as vr_dir

    return vr_dir().parent / "web"  # beside the VR bridge's: ~/.config/collector/web


def _certificate(listen: str, cert: Optional[str], key: Optional[str]):
    from collector.teleop.vr.certificate import ensure_certificate, host_names

    if cert:
        return ensure_certificate((), cert_file=Path(cert), key_file=Path(key))
    return ensure_certificate(host_names(listen, _local_addresses()), cert_dir=default_cert_dir())


def _local_addresses() -> list:
    """This machine's addresses, so a self-signed certificate also names the IP a browser types."""
    try:
        return sorted(set(socket.gethostbyname_ex(socket.gethostname())[2]))
    except OSError:
        return []


def url_host(listen: str) -> str:
    """The host name to print in a page's URL for a server bound to `listen`."""
    if listen in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{listen}]" if ":" in listen else listen
