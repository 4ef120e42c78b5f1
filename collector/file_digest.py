"""SHA-256 of a file, read in blocks: how checkpoints name their training episodes, how the catalogue
names a checkpoint, and how shared storage verifies an uploaded copy."""
from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK_BYTES = 8 * 1024 * 1024


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(Path(path), "rb") as stream:
        for block in iter(lambda: stream.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
