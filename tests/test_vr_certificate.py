"""The server's TLS certificate: generated once, reused, renewed when it no longer fits, or user-provided."""
import datetime as dt
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collector.errors import ConfigError
from collector.teleop.vr.certificate import (
    CERT_FILE,
    KEY_FILE,
    ensure_certificate,
    host_names,
    trust_instructions,
)

NAMES = ["localhost", "127.0.0.1", "::1"]


def test_self_signed_certificate_is_generated_once_and_reused(tmp_path):
    first = ensure_certificate(NAMES, cert_dir=tmp_path)
    second = ensure_certificate(NAMES, cert_dir=tmp_path)
    assert first.generated and not second.generated
    assert first.sha256_fingerprint == second.sha256_fingerprint
    assert set(NAMES) <= set(first.names)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600  # the private key is the user's only
    cert = x509.load_pem_x509_certificate((tmp_path / CERT_FILE).read_bytes())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=398, minutes=5)  # Apple's limit for TLS server certificates
    assert isinstance(first.ssl_context(), ssl.SSLContext)
    text = trust_instructions(first, "https://127.0.0.1:8443/?token=x")
    assert first.sha256_fingerprint in text and "https://127.0.0.1:8443/cert.pem" in text


def test_certificate_is_renewed_for_a_new_address(tmp_path):
    first = ensure_certificate(NAMES, cert_dir=tmp_path)
    wider = ensure_certificate(host_names("192.168.7.20"), cert_dir=tmp_path)
    assert wider.generated and wider.sha256_fingerprint != first.sha256_fingerprint
    assert "192.168.7.20" in wider.names


def test_a_corrupt_stored_certificate_is_replaced(tmp_path):
    ensure_certificate(NAMES, cert_dir=tmp_path)
    (tmp_path / CERT_FILE).write_text("not a certificate")
    again = ensure_certificate(NAMES, cert_dir=tmp_path)
    assert again.generated


def _user_cert(tmp_path, name="station.example"):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "user.pem", tmp_path / "user.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_user_certificate_is_used_as_given(tmp_path):
    cert_path, key_path = _user_cert(tmp_path)
    info = ensure_certificate(NAMES, cert_file=cert_path, key_file=key_path)
    assert info.cert_path == cert_path and not info.generated
    assert info.names == ("station.example",)
    assert not list(tmp_path.glob(CERT_FILE))  # nothing self-signed was made


def test_user_certificate_problems_are_named(tmp_path):
    cert_path, key_path = _user_cert(tmp_path)
    (tmp_path / "other").mkdir()
    other_cert, _ = _user_cert(tmp_path / "other", name="other.example")
    with pytest.raises(ConfigError, match="both --cert and --key"):
        ensure_certificate(NAMES, cert_file=cert_path)
    with pytest.raises(ConfigError, match="does not exist"):
        ensure_certificate(NAMES, cert_file=tmp_path / "missing.pem", key_file=key_path)
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        ensure_certificate(NAMES, cert_file=tmp_path / "junk.pem", key_file=key_path)
    with pytest.raises(ConfigError, match="do not load together"):
        ensure_certificate(NAMES, cert_file=other_cert, key_file=key_path)
