"""Publishing episodes to shared storage (collector/fleet): a folder through fsspec's file:// backend and
the S3 wire protocol against moto's standalone server (a real process on a loopback port), uploads
verified by SHA-256, retries with backoff, a durable queue that survives kill -9, and reading back."""
import hashlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest

from collector.cli import main
from collector.dataset import EpisodeDataset
from collector.fleet.publisher import Publisher
from collector.fleet.storage import Store, open_episode_url
from collector.fleet.upload_queue import UploadQueue, published_location

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
pytestmark = pytest.mark.dataset(episodes=3, duration_s=1.5)  # the shape of the `dataset` fixture (conftest.py)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _start_moto(port: int) -> subprocess.Popen:
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    pytest.fail("moto_server did not start listening within 30 s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _s3_env(port: int) -> dict:
    return {**os.environ, **CREDENTIALS, "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "PYTHONPATH": str(ROOT)}


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """A moto S3 server on a free loopback port with bucket `fleet`; this process's fsspec points at it."""
    port = _free_port()
    server = _start_moto(port)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": f"http://127.0.0.1:{port}"})
    monkeypatch.setenv("COLLECTOR_CACHE", str(tmp_path / "cache"))
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("fleet")
    yield port
    _stop(server)


def _copy_dataset(dataset, tmp_path) -> Path:
    copy = tmp_path / "station"
    shutil.copytree(dataset, copy)
    return copy


def _episode_files(root: Path):
    return sorted((root / "episodes").glob("*.hdf5"))


def test_file_backend_publishes_verifies_and_keeps_local_by_default(dataset, tmp_path, capsys):
    station = _copy_dataset(dataset, tmp_path)
    share = tmp_path / "share"
    assert main(["publish", str(station), "--to", f"file://{share}", "--once"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("published 3 file(s)")
    for local in _episode_files(station):
        remote = share / "episodes" / local.name
        assert _sha256(remote) == _sha256(local)
        episode_id = local.name[: -len(".hdf5")]
        assert published_location(station, episode_id) == f"file://{share}/episodes/{local.name}"
    assert not list(share.rglob("*.uploading"))  # the staging names are gone once renamed
    # A second run finds nothing new, and the same folder given as a plain path is the same destination.
    assert main(["publish", str(station), "--to", str(share), "--once"]) == 0
    again = capsys.readouterr().out
    assert "published 0 file(s)" in again and "3 already published" in again
    assert len(UploadQueue(station).all()) == 3
    assert len(_episode_files(station)) == 3


def test_delete_local_after_verify_and_dataset_tools_read_the_published_copies(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLLECTOR_CACHE", str(tmp_path / "cache"))
    station = _copy_dataset(dataset, tmp_path)
    local_read = EpisodeDataset(station, chunk=4, normalize=False)
    picks = (0, len(local_read) // 2, len(local_read) - 1)
    before = {i: local_read[i] for i in picks}  # read now: the local files are about to go
    hashes = {p.name: _sha256(p) for p in _episode_files(station)}
    share = tmp_path / "share"
    assert main(["publish", str(station), "--to", f"file://{share}", "--once", "--delete-local"]) == 0
    assert "3 local copies deleted" in capsys.readouterr().out
    assert _episode_files(station) == []  # freed only because every remote copy was verified
    assert {p.name: _sha256(p) for p in _episode_files(share)} == hashes
    assert all(u.state == "verified" and u.local_deleted for u in UploadQueue(station).all())
    # The catalogue still lists the episodes at their local paths: the tools follow the published copies.
    after = EpisodeDataset(station, chunk=4, normalize=False)
    assert len(after) == len(local_read)
    for i in picks:
        for key, value in before[i].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(after[i][key], value)
    assert main(["check", str(station), "--engine", "inline", "--no-progress"]) == 0
    assert "3 of 3 episode(s) passed" in capsys.readouterr().out


def test_the_catalogue_records_where_each_episode_lives_and_readers_find_it_there(dataset, tmp_path, capsys,
                                                                                  monkeypatch):
    from collector.session.catalog import Catalog

    monkeypatch.setenv("COLLECTOR_CACHE", str(tmp_path / "cache"))
    station = _copy_dataset(dataset, tmp_path)
    local_read = EpisodeDataset(station, chunk=4, normalize=False)
    picks = (0, len(local_read) - 1)
    before = {i: local_read[i] for i in picks}
    share = tmp_path / "share"
    assert main(["publish", str(station), "--to", f"file://{share}", "--once", "--delete-local"]) == 0
    assert "3 local copies deleted" in capsys.readouterr().out
    catalog = Catalog(station / "catalog.sqlite")
    rows = catalog.episodes(status=["kept", "recovered"])
    assert len(rows) == 3 and _episode_files(station) == []
    assert {r.episode_id: r.location for r in rows} == {
        r.episode_id: f"file://{share}/episodes/{Path(r.path).name}" for r in rows}
    assert main(["catalog", "list", str(station), "--unpublished", "--status", "kept"]) == 0
    assert "no episodes match" in capsys.readouterr().out
    # Episodes verified before the catalogue had locations (an older collector) get theirs on the next run.
    catalog.set_locations({r.episode_id: "" for r in rows})
    assert main(["publish", str(station), "--to", f"file://{share}", "--once"]) == 0
    assert "3 already published" in capsys.readouterr().out
    assert all(r.location.startswith(f"file://{share}/") for r in catalog.episodes(status=["kept", "recovered"]))
    # Without this station's upload queue (a reader on another machine has only the catalogue), the
    # dataset is still read whole, from where the catalogue says each episode lives.
    for name in ("publish.sqlite", "publish.sqlite-wal", "publish.sqlite-shm"):
        (station / name).unlink(missing_ok=True)
    after = EpisodeDataset(station, chunk=4, normalize=False)
    assert len(after) == len(local_read)
    for i in picks:
        for key, value in before[i].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(after[i][key], value)


def test_a_local_copy_stays_while_the_catalogue_cannot_record_where_it_went(dataset, tmp_path, capsys):
    station = _copy_dataset(dataset, tmp_path)
    for stale in station.glob("catalog.sqlite*"):
        stale.unlink()
    (station / "catalog.url").write_text(f"postgresql://postgres@127.0.0.1:{_free_port()}/gone\n")  # no server there
    share = tmp_path / "share"
    assert main(["publish", str(station), "--to", f"file://{share}", "--once", "--delete-local"]) == 0
    out = capsys.readouterr().out
    assert "catalogue not updated with where 1 episode(s) live" in out and "local copies deleted" not in out
    assert [p.name for p in _episode_files(station)] == [p.name for p in _episode_files(share)]  # none deleted
    assert all(u.state == "verified" and not u.local_deleted for u in UploadQueue(station).all())


def test_damaged_remote_copy_is_detected_and_uploaded_again(dataset, tmp_path, capsys):
    station = _copy_dataset(dataset, tmp_path)
    share = tmp_path / "share"
    assert main(["publish", str(station), "--to", str(share), "--once"]) == 0
    victim = _episode_files(share)[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, different content
    victim.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["publish", str(station), "--to", str(share), "--once", "--verify-remote"]) == 0
    out = capsys.readouterr().out
    assert f"damaged file://{victim}" in out and "published 1 file(s)" in out
    assert _sha256(victim) == _sha256(station / "episodes" / victim.name)


def test_a_review_folded_after_publishing_publishes_the_episode_again(dataset, tmp_path):
    station = _copy_dataset(dataset, tmp_path)
    share = tmp_path / "share"
    publisher = Publisher(station, str(share))
    assert publisher.run_once().published == 3
    local = _episode_files(station)[0]
    with open(local, "ab") as stream:  # stands for the fold rewriting the file (new bytes, new mtime)
        stream.write(b"\0" * 16)
    summary = publisher.run_once()
    assert summary.published == 1 and summary.already == 2
    assert _sha256(share / "episodes" / local.name) == _sha256(local)


def test_s3_round_trip_and_episode_dataset_reads_the_bucket_like_the_local_folder(dataset, tmp_path, s3, capsys):
    station = _copy_dataset(dataset, tmp_path)
    assert main(["publish", str(station), "--to", "s3://fleet/station", "--once"]) == 0
    assert "published 3 file(s)" in capsys.readouterr().out
    store = Store("s3://fleet/station")
    assert store.episode_keys() == [f"episodes/{p.name}" for p in _episode_files(station)]
    for local in _episode_files(station):
        assert store.sha256(f"episodes/{local.name}") == _sha256(local)
    local_read = EpisodeDataset(station, chunk=4, normalize=False)
    remote_read = EpisodeDataset("s3://fleet/station", chunk=4, normalize=False)
    assert len(remote_read) == len(local_read) and [r.episode_id for r in remote_read.refs] == \
        [r.episode_id for r in local_read.refs]
    for i in range(0, len(local_read), max(1, len(local_read) // 7)):
        for key, value in local_read[i].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(remote_read[i][key], value)
    one = published_location(station, "episode_000002")
    assert one == "s3://fleet/station/episodes/episode_000002.hdf5"
    assert _sha256(open_episode_url(one)) == _sha256(station / "episodes" / "episode_000002.hdf5")
    assert main(["check", one, "--engine", "inline", "--no-progress"]) == 0


def _wait_for_port(port: int, what: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen within {timeout_s:.0f} s")


def test_a_dask_worker_on_another_machine_reads_published_episodes_from_their_urls(dataset, tmp_path, s3, capsys):
    """The job's worker cannot see the caller's files (its cached copies are gone, as on another machine):
    it reads each episode from the store into its own cache and the job passes."""
    from collector.dataset.jobs import JobEngine
    from collector.dataset.jobs.tasks import validate_task
    from collector.dataset.selection import select_episodes

    station = _copy_dataset(dataset, tmp_path)
    assert main(["publish", str(station), "--to", "s3://fleet/station", "--once"]) == 0
    refs = select_episodes("s3://fleet/station")
    assert [r.url for r in refs] == [f"s3://fleet/station/episodes/{p.name}" for p in _episode_files(station)]
    shutil.rmtree(tmp_path / "cache")  # the selecting machine's copies: not on the worker's machine
    assert not any(r.path.exists() for r in refs)

    port, worker_cache = _free_port(), tmp_path / "worker-cache"
    env = {**_s3_env(s3), "COLLECTOR_CACHE": str(worker_cache)}
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait_for_port(port, "dask scheduler", scheduler)
        worker = subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--host", "127.0.0.1", "--nworkers", "1",
                                   "--nthreads", "1", "--no-dashboard"], env=env, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with JobEngine(address=f"tcp://127.0.0.1:{port}", progress=False) as engine:
            engine.start()
            engine._client.wait_for_workers(1, timeout=60)
            outcomes = engine.map(validate_task, refs)
        assert [o.error for o in outcomes] == [None] * len(refs)
        assert [o.value for o in outcomes] == [[]] * len(refs)  # every episode read and passing QA
        fetched = sorted(worker_cache.rglob("*.hdf5"))
        assert sorted(p.name for p in fetched) == [p.name for p in _episode_files(station)]
        originals = {p.name: _sha256(p) for p in _episode_files(station)}
        assert all(_sha256(p) == originals[p.name] for p in fetched)
    finally:
        for process in (worker, scheduler):
            if process is not None:
                _stop(process)


def test_s3_damaged_object_is_uploaded_again(dataset, tmp_path, s3, capsys):
    station = _copy_dataset(dataset, tmp_path)
    assert main(["publish", str(station), "--to", "s3://fleet/d", "--once"]) == 0
    fs = fsspec.filesystem("s3")
    fs.pipe("fleet/d/episodes/episode_000001.hdf5", b"not an episode")
    capsys.readouterr()
    assert main(["publish", str(station), "--to", "s3://fleet/d", "--once", "--verify-remote"]) == 0
    assert "published 1 file(s)" in capsys.readouterr().out
    assert Store("s3://fleet/d").sha256("episodes/episode_000001.hdf5") == _sha256(
        station / "episodes" / "episode_000001.hdf5")


def test_retries_with_backoff_while_the_store_is_down_then_publishes(dataset, tmp_path):
    station = _copy_dataset(dataset, tmp_path)
    port = _free_port()
    env = {**_s3_env(port), "AWS_MAX_ATTEMPTS": "1"}  # botocore's own retries off: the publisher's are tested
    publisher = subprocess.Popen([sys.executable, "-m", "collector", "publish", str(station), "--to", "s3://late/ds",
                                  "--once", "--retries", "10", "--backoff", "0.25"], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = None
    lines = []
    try:
        # The store is down: wait until two attempts have failed and backed off, then bring it up.
        while sum(line.startswith("retry ") for line in lines) < 2:
            line = publisher.stdout.readline()
            assert line, "the publisher ended while the store was down:\n" + "".join(lines)
            lines.append(line)
        server = _start_moto(port)
        fsspec.filesystem("s3", skip_instance_cache=True, endpoint_url=f"http://127.0.0.1:{port}", key="test",
                          secret="test").mkdir("late")
        rest, _ = publisher.communicate(timeout=240)
        out = "".join(lines) + rest
    finally:
        if publisher.poll() is None:
            publisher.kill()
        if server:
            _stop(server)
    assert publisher.returncode == 0, out[-3000:]
    retries = [line.split() for line in out.splitlines() if line.startswith("retry ")]  # retry KEY in S s (...)
    first = [float(words[3]) for words in retries if words[1] == retries[0][1]]
    assert first[:3] == [0.25, 0.5, 1.0][:len(first)] and len(first) >= 2  # exponential backoff
    assert "published 3 file(s)" in out
    assert all(u.state == "verified" for u in UploadQueue(station).all())


def test_kill_9_mid_upload_resumes_and_never_reports_an_unverified_copy(dataset, tmp_path, s3):
    station = _copy_dataset(dataset, tmp_path)
    big = station / "episodes" / "episode_000099.hdf5"  # the publisher copies bytes; their content is not its business
    # big enough that its upload lasts seconds: at 40 MB a quiet CI machine uploaded and verified it inside
    # the half second this test used to wait, and the kill found nothing to interrupt
    big.write_bytes(np.random.default_rng(0).bytes(200 * 1024 * 1024))
    env = _s3_env(s3)
    command = [sys.executable, "-m", "collector", "publish", str(station), "--to", "s3://fleet/k", "--once"]
    publisher = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue_file = station / "publish.sqlite"

    def big_state():
        if not queue_file.exists():
            return None
        try:
            with sqlite3.connect(queue_file, timeout=30) as conn:
                row = conn.execute("SELECT state FROM uploads WHERE key=?", ("episodes/" + big.name,)).fetchone()
        except sqlite3.OperationalError:  # the publisher is creating the table right now
            return None
        return row[0] if row else None

    deadline = time.monotonic() + 120
    while big_state() != "uploading" and time.monotonic() < deadline:
        assert publisher.poll() is None, "the publisher ended before the big upload started"
        time.sleep(0.01)
    time.sleep(0.1)  # some of its bytes in flight
    publisher.send_signal(signal.SIGKILL)
    publisher.wait(30)
    store = Store("s3://fleet/k")
    # Whatever the kill interrupted, nothing unverified is counted as published.
    for upload in UploadQueue(station).all():
        if upload.state == "verified":
            assert store.sha256(upload.key) == _sha256(upload.local_path)
    assert big_state() == "uploading" and published_location(station, "episode_000099") is None
    assert store.size("episodes/" + big.name) in (None, big.stat().st_size)  # never a partial object

    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert all(u.state == "verified" for u in UploadQueue(station).all())
    assert store.sha256("episodes/" + big.name) == _sha256(big)
    assert published_location(station, "episode_000099") == "s3://fleet/k/episodes/" + big.name


def test_one_publisher_per_dataset_at_a_time(dataset, tmp_path, capsys):
    station = _copy_dataset(dataset, tmp_path)
    with Publisher(station, str(tmp_path / "share"))._exclusive():  # a publisher at work (the lock is a flock)
        assert main(["publish", str(station), "--to", str(tmp_path / "other"), "--once"]) == 2
        err = capsys.readouterr().err
        assert "another publisher is running on this dataset" in err and f"pid {os.getpid()}" in err
    assert main(["publish", str(station), "--to", str(tmp_path / "other"), "--once"]) == 0


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["publish", str(tmp_path / "nowhere"), "--to", str(tmp_path / "share"), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("collector publish: error:") and "not a dataset folder" in err and len(err.splitlines()) == 1
    (tmp_path / "ds" / "episodes").mkdir(parents=True)
    assert main(["publish", str(tmp_path / "ds"), "--to", "nosuchproto://x/y", "--once"]) == 2
    assert "nosuchproto://x/y" in capsys.readouterr().err


def test_plan_publish_key_is_parsed_and_checked(tmp_path):
    from collector.errors import ConfigError
    from collector.session.plan import load_plan, parse_plan

    demo = (ROOT / "configs" / "plans" / "demo.yaml").read_text()
    assert load_plan(ROOT / "configs" / "plans" / "demo.yaml").publish is None
    plan = parse_plan(demo + "publish: {to: 's3://bucket/hall', keep_local: false}\n", "p.yaml")
    assert (plan.publish.to, plan.publish.keep_local) == ("s3://bucket/hall", False)
    assert parse_plan(demo + "publish: /mnt/share\n", "p.yaml").publish.keep_local is True
    with pytest.raises(ConfigError, match=r"publish\.keep_local.*true or false"):
        parse_plan(demo + "publish: {to: /mnt/share, keep_local: 'no'}\n", "p.yaml")
    with pytest.raises(ConfigError, match=r"publish.*needs 'to'"):
        parse_plan(demo + "publish: {keep_local: true}\n", "p.yaml")


def test_a_session_with_publish_in_its_plan_publishes_each_take(tmp_path):
    share = tmp_path / "share"
    plan = tmp_path / "plan.yaml"
    plan.write_text((ROOT / "configs" / "plans" / "demo.yaml").read_text() + f"publish: {{to: 'file://{share}'}}\n")
    done = subprocess.run([sys.executable, "-m", "collector", "collect", "--plan", str(plan), "--input", "scripted",
                           "--out", str(tmp_path / "station"), "--max-takes", "1", "--no-progress"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (take,) = _episode_files(tmp_path / "station")
    assert _sha256(share / "episodes" / take.name) == _sha256(take)  # published as the session closed
    episode_id = take.name[: -len(".hdf5")]
    assert published_location(tmp_path / "station", episode_id) == f"file://{share}/episodes/{take.name}"
