"""Password hashes with the standard library's scrypt: a random salt per hash and the cost parameters
stored beside it, so the cost can be raised later without breaking the hashes already stored.

Stored form (one text column): `scrypt$N$r$p$SALT$HASH`, salt and hash in unpadded URL-safe base64.
N=2**14, r=8, p=1 is the cost the scrypt paper and OWASP give for interactive logins: about 50 ms and
16 MB per check here, which makes guessing slow without making a login feel slow."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from collector.errors import ConfigError

SCHEME = "scrypt"
COST_N, BLOCK_R, PARALLEL_P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # scrypt reads all of it: a megabyte "password" must not cost a megabyte hash


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        return "$".join([SCHEME, str(self.n), str(self.r), str(self.p), _b64(self.salt), _b64(self.digest)])

    @classmethod
    def decode(cls, text: str) -> "PasswordHash":
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError(f"not a {SCHEME} password hash")
        return cls(int(parts[1]), int(parts[2]), int(parts[3]), _unb64(parts[4]), _unb64(parts[5]))


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ConfigError(f"a password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    return password


def hash_password(password: str, *, n: int = COST_N, r: int = BLOCK_R, p: int = PARALLEL_P) -> str:
    """The stored form of a new hash of `password`, with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    return PasswordHash(n, r, p, salt, _scrypt(check_password(password), salt, n, r, p)).encode()


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from (compared in constant time)."""
    try:
        known = PasswordHash.decode(stored)
    except ValueError:
        return False
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    return hmac.compare_digest(_scrypt(password, known.salt, known.n, known.r, known.p), known.digest)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem: scrypt needs 128*r*n bytes; OpenSSL's default ceiling (32 MB) would refuse a raised cost.
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES,
                          maxmem=256 * r * n + 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
