"""The TLS certificate the VR server presents: WebXR only runs in a secure context (https).

On first run a self-signed certificate is generated with `cryptography` and kept in a
folder (default ~/.config/collector/vr) so the headset only has to trust it once; it is
regenerated when it expires or stops covering the host names the server is reached by.
A user-provided certificate and key (e.g. from mkcert or a real CA) are used as given.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from collector.errors import ConfigError

log = logging.getLogger(__name__)

CERT_FILE = "vr-server-cert.pem"
KEY_FILE = "vr-server-key.pem"
# Apple platforms refuse TLS server certificates valid for more than 398 days.
VALIDITY_DAYS = 397
# Regenerate a little before expiry so a session never starts on a certificate about to lapse.
RENEW_BEFORE = dt.timedelta(days=7)


def default_cert_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "collector" / "vr"


@dataclass(frozen=True)
class CertificateInfo:
    cert_path: Path
    key_path: Path
    self_signed: bool
    generated: bool  # True when this run created it (so the operator must trust it anew)
    names: tuple  # DNS names and IP addresses the certificate covers
    sha256_fingerprint: str
    not_valid_after: dt.datetime

    def ssl_context(self) -> ssl.SSLContext:
        return server_ssl_context(self.cert_path, self.key_path)


def host_names(bind_host: str, extra: Iterable[str] = ()) -> List[str]:
    """Names a headset may use to reach the server: loopback, this machine, the bind address, extras."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        names.append(bind_host)
    names.extend(extra)
    seen, unique = set(), []
    for name in names:
        if name and name not in seen:
            seen.add(name)
            unique.append(name)
    return unique


def _san_entries(names: Sequence[str]) -> List[x509.GeneralName]:
    entries: List[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def _covered_names(cert: x509.Certificate) -> set:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def generate_self_signed(cert_path: Path, key_path: Path, names: Sequence[str]) -> x509.Certificate:
    """Write a new P-256 key and a self-signed certificate covering `names`; the key is private to the user."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "collector"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"collector VR bridge ({socket.gethostname()})"[:64]),
        ]
    )
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san_entries(names)), critical=False)
        # CA:TRUE lets operating systems list it under "trusted roots" when the operator installs it.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, crl_sign=False, encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Create the key file 0600 from the start instead of chmod-ing after the secret is on disk.
    fd = os.open(str(key_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("generated self-signed certificate %s for %s", cert_path, ", ".join(names))
    return cert


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"certificate file {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"certificate file {path} is not a PEM certificate: {exc}") from None


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS file missing: {exc.filename}") from None
    except ssl.SSLError as exc:
        raise ConfigError(f"TLS certificate {cert_path} and key {key_path} do not load together: {exc}") from None
    return context


def ensure_certificate(
    names: Sequence[str],
    cert_dir: Optional[Path] = None,
    cert_file: Optional[Path] = None,
    key_file: Optional[Path] = None,
) -> CertificateInfo:
    """The certificate to serve with: the user's own if given, else the stored self-signed one (made if needed)."""
    if (cert_file is None) != (key_file is None):
        raise ConfigError("give both --cert and --key, or neither (then a self-signed certificate is used)")
    if cert_file is not None:
        cert_path, key_path = Path(cert_file), Path(key_file)
        cert = _load_cert(cert_path)
        server_ssl_context(cert_path, key_path)  # fail now, with the file names, if they don't match
        return CertificateInfo(
            cert_path, key_path, self_signed=cert.issuer == cert.subject, generated=False,
            names=tuple(sorted(_covered_names(cert))), sha256_fingerprint=_fingerprint(cert),
            not_valid_after=cert.not_valid_after_utc,
        )

    folder = Path(cert_dir) if cert_dir is not None else default_cert_dir()
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    generated = False
    cert = None
    if cert_path.is_file() and key_path.is_file():
        try:
            cert = _load_cert(cert_path)
            server_ssl_context(cert_path, key_path)
        except ConfigError as exc:
            log.warning("stored certificate unusable (%s); generating a new one", exc)
            cert = None
    if cert is not None:
        missing = set(names) - _covered_names(cert)
        expiring = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < RENEW_BEFORE
        if missing or expiring:
            log.info("regenerating certificate: %s", f"does not cover {sorted(missing)}" if missing else "expiring")
            cert = None
    if cert is None:
        cert = generate_self_signed(cert_path, key_path, names)
        generated = True
    return CertificateInfo(
        cert_path, key_path, self_signed=True, generated=generated,
        names=tuple(sorted(_covered_names(cert))), sha256_fingerprint=_fingerprint(cert),
        not_valid_after=cert.not_valid_after_utc,
    )


def trust_instructions(info: CertificateInfo, page_url: str) -> str:
    """What to tell the operator so the headset browser accepts the certificate."""
    if not info.self_signed:
        return f"TLS: using {info.cert_path} (issued by a CA; nothing to trust by hand)."
    return "\n".join(
        [
            f"TLS: self-signed certificate {info.cert_path}" + (" (new: trust it once)" if info.generated else ""),
            f"  SHA-256 fingerprint {info.sha256_fingerprint}",
            "  Quest / PICO browser: open the URL, choose Advanced -> Proceed (check the fingerprint above).",
            "  Apple Vision Pro: send the .pem to the device, install the profile, then enable it under",
            "    Settings > General > About > Certificate Trust Settings.",
            "  Desktop Chrome/Firefox: import the .pem as a trusted authority, or proceed past the warning.",
            f"  The certificate is also downloadable from {page_url.split('?')[0]}cert.pem (token required).",
        ]
    )
