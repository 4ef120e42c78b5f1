"""Stream health reports and explicit stamp repairs."""
import json

import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.sync import align_stream, repair_stamps, stream_report


def test_report_measures_rate_jitter_and_gaps():
    r = np.random.default_rng(0)
    t = np.arange(0, 60, 0.01) + r.normal(0, 2e-4, 6000)
    t = np.sort(np.delete(t, np.r_[1000:1050, 3000:3003]))  # a 0.5 s stall and a 3-sample drop
    report = stream_report(t, name="vr", nominal_rate_hz=100.0, gap_periods=3.0)
    assert report.count == t.size and report.n_duplicates == 0 and report.n_non_monotonic == 0
    assert report.effective_rate_hz == pytest.approx((t.size - 1) / (t[-1] - t[0]))
    intervals = np.diff(t)
    assert report.jitter_std_s == pytest.approx(intervals.std())
    assert report.jitter_p99_s == pytest.approx(np.percentile(intervals, 99))
    assert report.n_gaps == 2
    (a0, b0), (a1, b1) = report.gaps
    assert (a0, b0) == (t[999], t[1000]) and b0 - a0 == pytest.approx(0.51, abs=2e-3)
    assert b1 - a1 == pytest.approx(0.04, abs=2e-3)
    assert report.missing_estimate == 53
    d = report.to_dict()
    assert json.loads(json.dumps(d))["n_gaps"] == 2


def test_report_counts_repeats_and_backwards_stamps_without_distorting_intervals():
    t = np.array([0.0, 0.1, 0.1, 0.3, 0.2, 0.4, 0.5])
    report = stream_report(t, name="lux", nominal_rate_hz=10.0)
    assert report.n_duplicates == 1 and report.n_non_monotonic == 1
    assert report.median_interval_s == pytest.approx(0.1)
    assert report.jitter_std_s == pytest.approx(0.0, abs=1e-12)
    assert report.n_gaps == 0


def test_report_without_a_nominal_rate_uses_the_median_interval():
    t = np.r_[np.arange(0, 1, 0.02), np.arange(2, 3, 0.02)]
    report = stream_report(t, name="cmd")
    assert report.period_s == pytest.approx(0.02) and report.n_gaps == 1


def test_single_sample_report_is_json_safe():
    d = stream_report([5.0], name="once").to_dict()
    assert d["count"] == 1 and d["effective_rate_hz"] is None
    json.dumps(d)


@pytest.mark.parametrize("t,kwargs,error,match", [
    ([], {}, DataError, "stream 'x': no stamps"),
    ([0.0, np.nan], {}, DataError, r"stream 'x': 1 non-finite stamp\(s\), first at index 1"),
    ([0.0, 1.0], {"nominal_rate_hz": -5.0}, ConfigError, "nominal_rate_hz"),
    ([0.0, 1.0], {"gap_periods": 0.0}, ConfigError, "gap_periods"),
])
def test_report_rejects_bad_input(t, kwargs, error, match):
    with pytest.raises(error, match=match):
        stream_report(t, name="x", **kwargs)


def test_repair_error_policy_names_the_first_problem():
    with pytest.raises(DataError, match=r"stream 'cam': 1 duplicated stamp\(s\), first at index 2"):
        repair_stamps([0.0, 1.0, 1.0, 2.0], policy="error", name="cam")
    with pytest.raises(DataError, match=r"stream 'cam': 1 stamp\(s\) go backwards, first at index 2"):
        repair_stamps([0.0, 1.0, 0.5, 2.0], policy="error", name="cam")
    fixed, report = repair_stamps([0.0, 1.0, 2.0], policy="error", name="cam")
    assert not report.changed and fixed.tolist() == [0.0, 1.0, 2.0]


def test_repair_drop_keeps_only_samples_later_than_all_before():
    t = [0.0, 1.0, 1.0, 0.5, 2.0, 1.5, 3.0]
    fixed, report = repair_stamps(t, policy="drop", name="cam")
    assert fixed.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert report.keep.tolist() == [0, 1, 4, 6]
    assert report.to_dict() == {"name": "cam", "policy": "drop", "n_in": 7, "n_out": 4, "n_dropped": 3,
                                "n_duplicates": 1, "n_non_monotonic": 2, "reordered": False,
                                "first_problem_index": 2}


def test_repair_sort_restores_order_and_keeps_first_arrival_of_a_repeat():
    t = np.array([0.0, 2.0, 1.0, 1.0, 3.0])
    values = np.array([10, 12, 11, 99, 13])
    fixed, report = repair_stamps(t, policy="sort", name="imu")
    assert fixed.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert values[report.keep].tolist() == [10, 11, 12, 13]
    assert report.reordered and report.n_dropped == 1
    # The repaired stream aligns; indices map back to the raw rows through `keep`.
    res = align_stream(np.array([1.1]), fixed, values[report.keep], method="nearest", name="imu")
    assert report.keep[res.index[0]] == 2


def test_repair_rejects_non_finite_and_unknown_policy():
    with pytest.raises(DataError, match="non-finite"):
        repair_stamps([0.0, np.inf], policy="sort", name="x")
    with pytest.raises(DataError, match="repair policy 'fix'"):
        repair_stamps([0.0], policy="fix", name="x")
