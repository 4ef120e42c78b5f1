"""Shared storage for episodes: a mounted folder or an object store, reached through fsspec.

A destination is a URL (`file:///mnt/share/ds`, `s3://bucket/ds`, `gs://bucket/ds`) or a plain path.
Object-store credentials and endpoints come the way fsspec and the stores' own clients take them
(AWS_* variables, FSSPEC_S3_ENDPOINT_URL, ~/.aws, gcloud's defaults) or as `storage_options`.

An object appears on the store only complete: S3 and GCS make an upload visible when it finishes
(multipart uploads on completion); on a folder the copy is written under a temporary name and renamed,
so a reader never sees half a file under an episode's name.

Verification reads the remote copy back and hashes it (SHA-256), instead of trusting the store's own
checksum: that is the same check on every backend (S3's ETag is an MD5 only for single-part uploads,
a folder has none) and it proves the bytes that are stored now, at the cost of reading them once more.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from collector.errors import ConfigError, DataError
from collector.file_digest import file_sha256
from collector.recorder.disk_writer import fsync_path

CHUNK_BYTES = 8 * 1024 * 1024
UPLOADING_SUFFIX = ".uploading"  # a folder copy's name until it is complete (one per object: a retry overwrites it)


def is_url(source) -> bool:
    return isinstance(source, str) and "://" in source


def _filesystem(url: str, storage_options: Optional[Dict] = None):
    try:
        import fsspec
    except ImportError:
        raise ConfigError("shared storage needs fsspec: pip install -e '.[fleet]'") from None
    logging.getLogger("aiobotocore.credentials").setLevel(logging.WARNING)  # "found credentials in ..." each run
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as exc:
        raise ConfigError(f"{url}: this storage needs a package that is not installed ({exc}); "
                          "pip install -e '.[fleet]' brings s3fs") from None
    except ValueError as exc:
        raise ConfigError(f"{url}: not a storage URL fsspec knows ({exc})") from None


class Store:
    """One destination root; objects are addressed by keys relative to it (`episodes/<file>`)."""

    def __init__(self, url: str, storage_options: Optional[Dict] = None):
        self.url = _as_url(url).rstrip("/")
        self.fs, self.root = _filesystem(self.url, storage_options)
        self.root = self.root.rstrip("/")
        self.is_folder = "file" in _protocols(self.fs)

    def url_of(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def put(self, local: Path, key: str) -> str:
        """Copy a local file to `key`; returns the object's URL. Raises OSError-like errors on failure."""
        target = self._path(key)
        if self.is_folder:
            staging = target + UPLOADING_SUFFIX
            self.fs.makedirs(os.path.dirname(target), exist_ok=True)
            self.fs.put_file(str(local), staging)
            fsync_path(staging)
            self.fs.mv(staging, target)  # a rename on one filesystem: the name appears with the whole file
        else:
            self.fs.put_file(str(local), target)
        return self.url_of(key)

    def sha256(self, key: str) -> Optional[str]:
        """SHA-256 of the stored object read back, or None when there is none."""
        self.fs.invalidate_cache()
        path = self._path(key)
        if not self.fs.exists(path):
            return None
        digest = hashlib.sha256()
        with self.fs.open(path, "rb", block_size=CHUNK_BYTES) as stream:
            for block in iter(lambda: stream.read(CHUNK_BYTES), b""):
                digest.update(block)
        return digest.hexdigest()

    def size(self, key: str) -> Optional[int]:
        self.fs.invalidate_cache()
        try:
            return int(self.fs.info(self._path(key))["size"])
        except FileNotFoundError:
            return None

    def episode_keys(self) -> List[str]:
        """Keys of the finished episode files under the root (what a published dataset holds)."""
        from collector.recorder import schema

        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return []
        keys = []
        for path in found:
            key = path[len(self.root):].lstrip("/") if path.startswith(self.root) else path
            if schema.is_final_name(key.rsplit("/", 1)[-1]):
                keys.append(key)
        return sorted(keys)


def _as_url(destination: str) -> str:
    """A plain path names a folder: file:///absolute/path, so one folder has one name in the queue."""
    if is_url(destination):
        return destination
    return "file://" + str(Path(destination).expanduser().resolve())


def _protocols(fs) -> tuple:
    protocol = fs.protocol
    return protocol if isinstance(protocol, tuple) else (protocol,)


# -- reading published episodes ----------------------------------------------------------------------

def cache_dir() -> Path:
    override = os.environ.get("COLLECTOR_CACHE")
    base = Path(override) if override else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "collector"
    return base / "episodes"


def open_episode_url(url: str, cache: Optional[Path] = None, storage_options: Optional[Dict] = None) -> Path:
    """A local path holding the episode at `url` (downloaded once into the cache folder).

    HDF5 wants a seekable local file, so a remote episode is copied whole; the copy is reused while
    the remote object keeps its size, and replaced otherwise (a re-upload)."""
    if not is_url(url) or url.startswith("file://"):
        local = Path(url[len("file://"):] if url.startswith("file://") else url)
        if not local.is_file():
            raise DataError(f"{url}: no such episode file")
        return local
    fs, path = _filesystem(url, storage_options)
    try:
        remote_size = int(fs.info(path)["size"])
    except FileNotFoundError:
        raise DataError(f"{url}: no such episode on the store") from None
    folder = Path(cache or cache_dir()) / hashlib.sha256(url.encode()).hexdigest()[:16]
    local = folder / url.rsplit("/", 1)[-1]
    if local.is_file() and local.stat().st_size == remote_size:
        return local
    folder.mkdir(parents=True, exist_ok=True)
    staging = local.with_name(local.name + UPLOADING_SUFFIX)
    fs.get_file(path, str(staging))
    os.replace(staging, local)
    return local


def local_copies(url: str, cache: Optional[Path] = None) -> List[Tuple[Path, str]]:
    """(local path, URL) of one remote episode or of every episode under a remote folder (a published dataset)."""
    from collector.recorder import schema

    if schema.is_final_name(url.rsplit("/", 1)[-1]):
        return [(open_episode_url(url, cache), url)]
    store = Store(url)
    keys = store.episode_keys()
    if not keys:
        raise DataError(f"{url}: no episode files there")
    return [(open_episode_url(store.url_of(key), cache), store.url_of(key)) for key in keys]
