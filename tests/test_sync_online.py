"""Online alignment gives the offline rows, whatever the chunking; late, repeated and missing data are handled."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.errors import ConfigError, DataError
from collector.sync import OnlineAligner, align_stream, fixed_grid

CONFIG = {
    "joints": {"method": "linear", "tolerance": 0.0015},
    "camera": {"method": "nearest", "tolerance": 0.02},
    "vr": {"method": "slerp", "tolerance": 0.017, "quat_slices": [slice(3, 7)]},
    "lux": {"method": "backward", "tolerance": 0.15},
    "cmd": {"method": "forward", "tolerance": 0.01},
}
RATES = {"joints": 1000.0, "camera": 30.0, "vr": 90.0, "lux": 10.0, "cmd": 100.0}


def make_session(seed, duration=3.0, gaps=True):
    """Jittered streams with drops; returns {name: (t, values or None)}."""
    r = np.random.default_rng(seed)
    session = {}
    for name, rate in RATES.items():
        n = int(duration * rate)
        t = np.arange(n) / rate + r.uniform(0, 1.0 / rate) + r.normal(0, 0.05 / rate, n)
        if gaps:
            t = np.delete(t, r.choice(n, size=n // 20, replace=False))
        t = np.sort(t)
        if name == "joints":
            values = r.normal(size=(t.size, 6))
        elif name == "vr":
            values = np.concatenate([r.normal(size=(t.size, 3)), r.normal(size=(t.size, 4))], axis=1)
        elif name == "camera":
            values = None  # frames are aligned by index only
        else:
            values = r.normal(size=t.size)
        session[name] = (t, values)
    return session


def offline(session, t0, config=CONFIG, rate=50.0):
    newest = max(t[-1] for t, _ in session.values())
    ref = fixed_grid(t0, newest, rate)
    return ref, {name: align_stream(ref, t, v, name=name, **config[name]) for name, (t, v) in session.items()}


def collect(outputs, name, field):
    parts = [o[name][field] for o in outputs if o["t"].size]
    if parts[0] is None:
        assert all(p is None for p in parts)
        return None
    return np.concatenate(parts)


def assert_same_rows(outputs, ref, expected):
    np.testing.assert_array_equal(np.concatenate([o["t"] for o in outputs]), ref)
    for name, res in expected.items():
        for field in ("index", "error", "valid", "values"):
            got = collect(outputs, name, field)
            want = getattr(res, field)
            if want is None:
                assert got is None, (name, field)
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"{name}.{field}")


def chunk_events(session, r, max_chunk_s):
    """Push events (arrival, stream, t, values): each stream in random chunks of at most max_chunk_s,
    all streams interleaved by when their chunk has arrived (its last stamp plus up to 20 ms, in order)."""
    events = []
    for name, (t, v) in session.items():
        edges = t[0] + np.cumsum(r.uniform(0.1, 1.0, size=int((t[-1] - t[0]) / (0.1 * max_chunk_s)) + 2) * max_chunk_s)
        cuts = np.searchsorted(t, edges)
        arrived = -np.inf
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, t.size]):
            if b > a:
                arrived = max(arrived, t[b - 1] + r.uniform(0, 0.02))  # one stream's transport is FIFO
                events.append((arrived, name, t[a:b], None if v is None else v[a:b]))
    events.sort(key=lambda e: e[0])
    return events


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), max_chunk_s=st.sampled_from([0.004, 0.02, 0.1, 0.7]),
       pop_every=st.integers(1, 5), explicit_t0=st.booleans())
def test_online_rows_equal_offline_rows_whatever_the_chunking(seed, max_chunk_s, pop_every, explicit_t0):
    r = np.random.default_rng(seed)
    session = make_session(seed, duration=2.0)
    # A chunk can arrive up to max_chunk_s after its first sample: latency allowance to match.
    aligner = OnlineAligner(CONFIG, rate_hz=50.0, t0=0.0 if explicit_t0 else None, reorder_window_s=0.05,
                            max_latency_s=max_chunk_s + 0.1)
    outputs = []
    for i, (_, name, t, v) in enumerate(chunk_events(session, r, max_chunk_s)):
        aligner.push(name, t, v)
        if i % pop_every == 0:
            outputs.append(aligner.pop_ready())
    outputs.append(aligner.finish())
    ref, expected = offline(session, aligner.t0)
    assert_same_rows(outputs, ref, expected)  # expired rows included: every sample came within max_latency
    assert all(s["late_dropped"] == 0 for s in aligner.stats()["streams"].values())


def test_out_of_order_samples_within_the_window_give_the_sorted_offline_rows():
    r = np.random.default_rng(3)
    session = make_session(3, duration=4.0)
    # Every sample arrives up to 25 ms after its stamp; all streams interleaved by arrival time.
    names, stamps, rows = [], [], []
    for name, (t, _) in session.items():
        names += [name] * t.size
        stamps.append(t + r.uniform(0, 0.025, t.size))
        rows.append(np.arange(t.size))
    arrival_order = np.argsort(np.concatenate(stamps))
    names = np.array(names)[arrival_order]
    rows = np.concatenate(rows)[arrival_order]
    joints_rows = rows[names == "joints"]
    assert np.any(np.diff(session["joints"][0][joints_rows]) < 0)  # really out of order
    aligner = OnlineAligner(CONFIG, rate_hz=50.0, t0=0.0, reorder_window_s=0.03)
    outputs = []
    # Push runs of consecutive arrivals of one stream (at most 7 samples), pop every 10 pushes.
    run_starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    for n_push, (a, b) in enumerate(zip(run_starts, np.r_[run_starts[1:], names.size])):
        for c in range(a, b, 7):
            name, idx = names[c], rows[c:min(b, c + 7)]
            t, v = session[name]
            aligner.push(name, t[idx], None if v is None else v[idx])
        if n_push % 10 == 0:
            outputs.append(aligner.pop_ready())
    outputs.append(aligner.finish())
    ref, expected = offline(session, 0.0)
    assert_same_rows(outputs, ref, expected)
    stats = aligner.stats()["streams"]
    assert all(s["late_dropped"] == 0 and s["expired_rows"] == 0 for s in stats.values())


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_repeated_stamps_online_match_offline_policy(policy):
    config = {"cam": {"method": "nearest", "tolerance": 0.02, "duplicates": policy},
              "lux": {"method": "linear", "tolerance": 0.2, "duplicates": policy}}
    t_cam = np.repeat(np.arange(0, 3, 1 / 30), 2)  # every frame stamp published twice
    t_lux = np.repeat(np.arange(0, 3, 0.1), [1, 2] * 15)
    v_lux = np.arange(t_lux.size, dtype=float)
    aligner = OnlineAligner(config, rate_hz=50.0, t0=0.0)
    outputs = []
    for k in range(0, 90, 5):
        aligner.push("cam", t_cam[2 * k:2 * k + 10])
        aligner.push("lux", t_lux[(t_lux >= k / 30) & (t_lux < (k + 5) / 30)],
                     v_lux[(t_lux >= k / 30) & (t_lux < (k + 5) / 30)])
        outputs.append(aligner.pop_ready())
    outputs.append(aligner.finish())
    if policy == "keep":
        session = {"cam": (t_cam, None), "lux": (t_lux, v_lux)}
    else:  # online counts accepted samples only: compare with the stream as it would be stored
        first_cam = np.r_[True, t_cam[1:] != t_cam[:-1]]
        first_lux = np.r_[True, t_lux[1:] != t_lux[:-1]]
        session = {"cam": (t_cam[first_cam], None), "lux": (t_lux[first_lux], v_lux[first_lux])}
        stats = aligner.stats()["streams"]
        assert stats["cam"]["duplicates_dropped"] == 90 and stats["lux"]["duplicates_dropped"] == 15
    ref, expected = offline(session, 0.0, config)
    assert_same_rows(outputs, ref, expected)


def test_duplicate_error_policy_names_the_stream():
    aligner = OnlineAligner({"cam": {"method": "nearest"}})
    aligner.push("cam", [0.0, 0.1])
    with pytest.raises(DataError, match="stream 'cam': duplicated stamp 0.1"):
        aligner.push("cam", [0.1, 0.2])


def test_late_samples_are_dropped_and_counted_or_rejected():
    aligner = OnlineAligner({"j": {"method": "nearest"}}, reorder_window_s=0.05)
    aligner.push("j", np.arange(0, 1, 0.01))
    assert aligner.push("j", [0.975, 0.5, 1.0]) == 2  # 0.5 is 0.49 s behind: late
    assert aligner.stats()["streams"]["j"]["late_dropped"] == 1
    strict = OnlineAligner({"j": {"method": "nearest"}}, reorder_window_s=0.05, late="error")
    strict.push("j", np.arange(0, 1, 0.01))
    with pytest.raises(DataError, match="stream 'j'.*later than the reorder window"):
        strict.push("j", [0.5])


def test_a_stalled_stream_stops_holding_rows_back_after_max_latency():
    config = {"joints": {"method": "linear", "tolerance": 0.0015}, "lux": {"method": "nearest", "tolerance": 0.15}}
    aligner = OnlineAligner(config, rate_hz=50.0, t0=0.0, max_latency_s=0.5)
    t = np.arange(0, 10, 0.001)
    emitted = []
    for k in range(100):
        if k <= 20:  # the sensor dies after 2 s
            aligner.push("lux", [k / 10], [1.0])
        aligner.push("joints", t[k * 100:(k + 1) * 100], t[k * 100:(k + 1) * 100, None])
        emitted.append(aligner.pop_ready())
    rows = np.concatenate([o["t"] for o in emitted])
    # Rows keep coming while lux is silent, lagging the joints by at most latency + min(tolerance, latency).
    assert rows[-1] > 9.9 - 0.5 - 0.15 - 0.05
    lux_valid = np.concatenate([o["lux"]["valid"] for o in emitted])
    np.testing.assert_array_equal(lux_valid, rows <= 2.0 + 0.15 + 1e-9)
    joints = np.concatenate([o["joints"]["values"] for o in emitted])[:, 0]
    np.testing.assert_allclose(joints[rows < 9.9], rows[rows < 9.9], atol=1e-12)
    assert aligner.stats()["streams"]["lux"]["expired_rows"] > 300
    assert aligner.stats()["streams"]["joints"]["expired_rows"] == 0


def test_a_stream_that_never_arrives_gives_invalid_rows_of_the_right_shape():
    config = {"joints": {"method": "nearest"}, "vr": {"method": "slerp", "values": True}}
    aligner = OnlineAligner(config, rate_hz=10.0, t0=0.0, max_latency_s=0.2)
    aligner.push("joints", np.arange(0, 3, 0.01), np.zeros((300, 2)))
    out = aligner.pop_ready()
    assert out["t"].size > 0 and not out["vr"]["valid"].any() and (out["vr"]["index"] == -1).all()
    assert out["vr"]["values"] is None  # its shape was never seen


def test_memory_stays_bounded_over_a_long_session():
    config = {"joints": {"method": "linear", "tolerance": 0.0015}, "camera": {"method": "nearest", "tolerance": 0.02}}
    aligner = OnlineAligner(config, rate_hz=50.0, t0=0.0)
    peak = []
    for k in range(1200):  # 120 s in 100 ms chunks
        t = np.arange(k * 100, (k + 1) * 100) / 1000.0
        aligner.push("joints", t, np.zeros((100, 60)))
        aligner.push("camera", np.arange(k * 3, (k + 1) * 3) / 30.0)
        aligner.pop_ready()
        if k % 200 == 199:
            peak.append(max(s["buffered"] for s in aligner.stats()["streams"].values()))
    assert max(peak) < 300  # about reorder window + one chunk of 1 kHz samples, not growing
    assert peak[-1] <= peak[0] + 10
    assert aligner._buffers["joints"].t.size <= 1024  # the storage itself stopped growing too


def test_bad_configuration_and_input_are_named():
    with pytest.raises(ConfigError, match="align method 'spline'"):
        OnlineAligner({"j": {"method": "spline"}})
    with pytest.raises(ConfigError, match="unknown settings"):
        OnlineAligner({"j": {"tolerence": 0.1}})
    with pytest.raises(ConfigError, match="'t' names the row stamps"):
        OnlineAligner({"t": {}})
    with pytest.raises(ConfigError, match="rate_hz"):
        OnlineAligner({"j": {}}, rate_hz=0)
    aligner = OnlineAligner({"j": {"method": "nearest"}, "cam": {}})
    with pytest.raises(DataError, match="unknown stream 'x'"):
        aligner.push("x", [0.0])
    with pytest.raises(DataError, match="stream 'j': non-finite stamp"):
        aligner.push("j", [0.0, np.nan], np.zeros((2, 3)))
    aligner.push("j", [0.0], np.zeros((1, 3)))
    with pytest.raises(DataError, match=r"stream 'j': value rows of shape \(4,\)"):
        aligner.push("j", [0.1], np.zeros((1, 4)))
    with pytest.raises(DataError, match="stream 'j': 2 stamps but 1 rows"):
        aligner.push("j", [0.1, 0.2], np.zeros((1, 3)))
    with pytest.raises(DataError, match="stream 'j': values missing"):
        aligner.push("j", [0.1])
    aligner.push("cam", [0.0])
    with pytest.raises(DataError, match="stream 'cam': values given"):
        aligner.push("cam", [0.1], np.zeros(1))
    aligner.finish()
    with pytest.raises(DataError, match="push after finish"):
        aligner.push("j", [0.2], np.zeros((1, 3)))
