"""As-of lookups of sorted query stamps in a sorted source stream: which sample, how far, within tolerance.

Semantics are those of `pandas.merge_asof` (the tests check it on random streams):
  backward: the last sample with stamp <= query (with repeated stamps, the last of them);
  forward:  the first sample with stamp >= query (with repeated stamps, the first of them);
  nearest:  the closer of those two, the backward one on a tie (|q - t_b| <= |t_f - q|);
  a match is within tolerance when its distance is <= tolerance (inclusive).
"linear" (used for linear and spherical interpolation) reports the nearer of its two brackets and is
valid only when both brackets exist and both are within tolerance (an exact hit is its own bracket).
A row that is not valid has index -1 and error NaN, as merge_asof leaves it unmatched: that keeps a
row's answer final once no sample within tolerance can still arrive (what the online aligner needs).

Speed: everything reduces to one count per query, `count_le[i] = #{source stamps <= q_i}`. When the
queries are much sparser than the source (a 50 Hz grid over 1 kHz joints) that is a binary search
per query. Otherwise (every 1 kHz joint stamp looking up a 30 Hz camera, or a 50 Hz grid over a
30 Hz camera) a merge is used instead: search the source stamps into the queries and expand the
result with `np.repeat`, linear in the number of queries. Searching into a fixed-rate grid is
arithmetic (see sorted_search), so onto a grid the merge costs a few linear passes. The per-query
arithmetic runs in blocks small enough for their temporaries to stay in cache.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

# Queries at least this fraction of the source's size use the merge (see module doc): the merge
# searches the source into the queries, which is cheap when the queries are a fixed-rate grid.
MERGE_RATIO = 0.5
# Needle counts from which sorted_search first tries an arithmetic guess (evenly spaced haystacks).
GUESS_MIN = 4096
# A guess is abandoned when more than this fraction of a sample of needles misses.
GUESS_MISS_LIMIT = 0.01
# Sorted needles are searched in chunks of this many, each inside only the haystack slice it can land in:
# the search then stays in a cache-sized slice instead of wandering over the whole array.
SEARCH_CHUNK = 4096
# Per-query arithmetic block: ~10 temporaries of this many float64 stay within a core's L2 cache.
BLOCK = 1 << 14

_FINITE_MAX = np.finfo(np.float64).max


class Lookup(NamedTuple):
    index: np.ndarray  # (T,) int64 chosen sample, -1 where none within tolerance
    error: np.ndarray  # (T,) float64 t[index] - q, NaN where index == -1
    valid: np.ndarray  # (T,) bool, index >= 0
    count_le: Optional[np.ndarray]  # (T,) #{t <= q}, kept for interpolation ("linear" always has it)


def all_true(mask: np.ndarray) -> bool:
    """mask.all() without numpy's Python-level wrapper (it dominates on the online aligner's tiny arrays)."""
    return np.count_nonzero(mask) == mask.size


def sorted_search(haystack: np.ndarray, needles: np.ndarray, side: str) -> np.ndarray:
    """np.searchsorted(haystack, needles, side) for sorted needles, faster on large inputs.

    An evenly spaced haystack (a fixed-rate grid) is answered by arithmetic, checked by comparisons.
    Otherwise each chunk of needles is searched only inside the haystack slice bounded by the
    results of its first needle and of the next chunk's first needle: exact, as both are sorted.
    """
    found = _guessed_search(haystack, needles, side)
    return found if found is not None else _chunked_search(haystack, needles, side)


def _chunked_search(haystack: np.ndarray, needles: np.ndarray, side: str) -> np.ndarray:
    n = needles.size
    if n <= 2 * SEARCH_CHUNK or haystack.size <= 8 * SEARCH_CHUNK:
        return haystack.searchsorted(needles, side)
    starts = np.arange(0, n, SEARCH_CHUNK)
    bounds = np.empty(starts.size + 1, dtype=np.intp)
    bounds[:-1] = haystack.searchsorted(needles[starts], side)
    bounds[-1] = haystack.size
    out = np.empty(n, dtype=np.intp)
    for k, start in enumerate(starts.tolist()):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        stop = start + SEARCH_CHUNK
        found = haystack[lo:hi].searchsorted(needles[start:stop], side)
        np.add(found, lo, out=out[start:stop])
    return out


def _guess(haystack: np.ndarray, needles: np.ndarray, side: str) -> np.ndarray:
    """Linear-interpolation guess of searchsorted over the haystack's span: exact for a grid."""
    n = haystack.size
    h0, h1 = float(haystack[0]), float(haystack[-1])
    guess = needles - h0
    guess *= (n - 1) / (h1 - h0)
    # +1: #{h <= x} for an exactly even haystack. Needles exactly on a haystack stamp (common: grid
    # rows on grid rows) land a rounding error to either side of an integer; the nudge moves them to
    # the side's answer (left: before it, right: after).
    guess += 1.0 + (1e-6 if side == "right" else -1e-6)
    np.clip(guess, 0.0, float(n), out=guess)
    return guess.astype(np.intp)  # truncation is floor on the clipped, non-negative guesses


def _guess_misses(haystack: np.ndarray, needles: np.ndarray, side: str, pos: np.ndarray) -> np.ndarray:
    """Where the guessed positions are wrong, by exact comparisons with both neighbours."""
    n = haystack.size
    before = haystack.take(pos - 1, mode="clip")  # must count: before < x (left) or <= x (right)
    after = haystack.take(pos, mode="clip")  # must not count
    counts, stops = (np.less_equal, np.greater) if side == "right" else (np.less, np.greater_equal)
    wrong = ~counts(before, needles)
    wrong |= ~stops(after, needles)
    # Past either end a clipped read means nothing, only the other test applies. Positions are
    # sorted (so are the needles), so those rows are a prefix and a suffix.
    k0 = int(pos.searchsorted(0, side="right"))
    if k0:
        wrong[:k0] = ~stops(after[:k0], needles[:k0])
    kn = int(pos.searchsorted(n, side="left"))
    if kn < pos.size:
        wrong[kn:] = ~counts(before[kn:], needles[kn:])
    return wrong


def _guess_usable(haystack: np.ndarray, needles: np.ndarray, side: str) -> bool:
    """A cheap trial on every 64th needle: a jittered stream with drops misses by many, a grid by none."""
    if not (needles.size >= GUESS_MIN and haystack.size >= 2 and float(haystack[-1]) > float(haystack[0])):
        return False
    sample = needles[::64]
    wrong = _guess_misses(haystack, sample, side, _guess(haystack, sample, side))
    return np.count_nonzero(wrong) <= GUESS_MISS_LIMIT * wrong.size


def _guessed_search(haystack: np.ndarray, needles: np.ndarray, side: str):
    if not _guess_usable(haystack, needles, side):
        return None
    pos = _guess(haystack, needles, side)
    wrong = _guess_misses(haystack, needles, side, pos)
    if np.count_nonzero(wrong):
        misses = np.flatnonzero(wrong)
        pos[misses] = _chunked_search(haystack, needles[misses], side)
    return pos


def _counts_by_merge(source: np.ndarray, queries: np.ndarray, side: str) -> np.ndarray:
    """searchsorted(source, queries, side) computed as a merge, for queries much denser than source.

    p[j] = number of queries that come before source[j]; query i then counts the source samples
    with p[j] <= i, which np.repeat writes out in one linear pass.
    """
    # side="right" counts source <= q: source[j] <= q_i  <=>  i >= #{queries < source[j]}.
    flipped = "left" if side == "right" else "right"
    positions = sorted_search(queries, source, flipped)
    run_lengths = np.diff(positions, prepend=0, append=queries.size)
    return np.repeat(np.arange(source.size + 1, dtype=np.int64), run_lengths)


def capped_tolerance(tolerance: float) -> float:
    """An infinite tolerance as the largest finite float, so that an infinite distance (no sample) fails it."""
    return min(float(tolerance), _FINITE_MAX)


def lookup(source: np.ndarray, queries: np.ndarray, method: str, tolerance: float) -> Lookup:
    """Match each query to the source under `method` (see module doc). Both arrays sorted, source non-empty."""
    tol = capped_tolerance(tolerance)
    merge = queries.size >= MERGE_RATIO * source.size and queries.size > 2 * SEARCH_CHUNK
    if merge and method != "linear":
        return _lookup_runs(source, queries, method, tol)
    return _lookup_rows(source, queries, method, tol, merge)


# ---- per row: count the source samples at/before each row, then arithmetic in cache-sized blocks ----

def _lookup_rows(source, queries, method, tol, merge=False) -> Lookup:
    n_q = queries.size
    index = np.empty(n_q, dtype=np.int64)
    error = np.empty(n_q, dtype=np.float64)
    valid = np.empty(n_q, dtype=bool)
    side = "left" if method == "forward" else "right"
    count = _counts_by_merge(source, queries, side) if merge else sorted_search(source, queries, side)
    if method == "forward":
        block, extra = _forward_block, ()
    elif method == "backward":
        block, extra = _backward_block, ()
    else:
        block, extra = _nearest_block, (method == "linear",)
    if n_q <= BLOCK:  # the online aligner's case: a few rows, no slicing
        block(source, queries, count, *extra, tol, index, error, valid)
    else:
        for i0 in range(0, n_q, BLOCK):
            s = slice(i0, i0 + BLOCK)
            block(source, queries[s], count[s], *extra, tol, index[s], error[s], valid[s])
    return Lookup(index, error, valid, None if method == "forward" else count)


def _unmatch_invalid(index, error, valid):
    if all_true(valid):
        return
    invalid = ~valid
    np.copyto(index, -1, where=invalid)
    np.copyto(error, np.nan, where=invalid)


# The source is read with clipped indices (never copied: it can be an hour of 1 kHz stamps). Queries
# are sorted, so the rows with no earlier sample are a prefix and those with no later one a suffix:
# two scalar checks find them, and only those rows get a sentinel.

def _no_earlier(count_le) -> int:
    """How many leading rows have no sample at or before them."""
    return int(count_le.searchsorted(0, side="right")) if count_le.size and count_le[0] == 0 else 0


def _first_without_later(count, n_s) -> int:
    """The first row from which on there is no later sample."""
    return int(count.searchsorted(n_s, side="left")) if count.size and count[-1] == n_s else count.size


def _backward_block(source, q, count_le, tol, index, error, valid):
    np.subtract(count_le, 1, out=index)
    np.subtract(source.take(index, mode="clip"), q, out=error)
    error[:_no_earlier(count_le)] = np.nan  # NaN fails every test below
    np.less_equal(np.abs(error), tol, out=valid)
    _unmatch_invalid(index, error, valid)


def _forward_block(source, q, count_lt, tol, index, error, valid):
    np.copyto(index, count_lt)
    np.subtract(source.take(count_lt, mode="clip"), q, out=error)
    error[_first_without_later(count_lt, source.size):] = np.nan
    np.less_equal(error, tol, out=valid)  # forward errors are >= 0
    _unmatch_invalid(index, error, valid)


def _nearest_block(source, q, count_le, both, tol, index, error, valid):
    np.subtract(count_le, 1, out=index)
    t_before = source.take(index, mode="clip")
    t_after = source.take(count_le, mode="clip")
    d_before = q - t_before
    d_after = t_after - q
    # An infinite distance for a missing side makes it lose every comparison below.
    d_before[:_no_earlier(count_le)] = np.inf
    d_after[_first_without_later(count_le, source.size):] = np.inf
    use_before = d_before <= d_after  # the tie goes backward, as in pandas
    np.subtract(count_le, use_before, out=index)
    np.subtract(np.where(use_before, t_before, t_after), q, out=error)
    if both:
        # Both neighbours within tolerance, or an exact hit (which brackets itself).
        np.maximum(d_before, d_after, out=d_after)
        np.less_equal(d_after, tol, out=valid)
        valid |= d_before == 0.0
    else:
        np.minimum(d_before, d_after, out=d_after)
        np.less_equal(d_after, tol, out=valid)
    _unmatch_invalid(index, error, valid)


# ---- dense queries: the answer is constant over runs of queries; find run ends, expand with np.repeat ----

def _lookup_runs(source, queries, method, tol) -> Lookup:
    n_s = source.size
    if method == "backward":
        run_lengths = _run_lengths(sorted_search(queries, source, "left"), queries.size)
        index = np.repeat(np.arange(-1, n_s, dtype=np.int64), run_lengths)
        error = np.repeat(np.concatenate(([np.nan], source)), run_lengths)
    elif method == "forward":
        run_lengths = _run_lengths(sorted_search(queries, source, "right"), queries.size)
        index = np.repeat(np.append(np.arange(n_s, dtype=np.int64), -1), run_lengths)
        error = np.repeat(np.append(source, np.nan), run_lengths)
    else:
        run_lengths = _run_lengths(_nearest_switches(source, queries), queries.size)
        index = np.repeat(np.arange(n_s, dtype=np.int64), run_lengths)
        error = source.take(index)  # every row has a nearest sample: no sentinel needed
    error -= queries  # error now holds t[index] - q
    valid = np.empty(queries.size, dtype=bool)
    for i0 in range(0, queries.size, BLOCK):
        s = slice(i0, i0 + BLOCK)
        np.less_equal(np.abs(error[s]), tol, out=valid[s])  # NaN (no sample) compares False
        _unmatch_invalid(index[s], error[s], valid[s])
    return Lookup(index, error, valid, None)


def _run_lengths(run_ends: np.ndarray, n_queries: int) -> np.ndarray:
    return np.diff(run_ends, prepend=0, append=n_queries)


def _prefers_later(lo, hi, q):
    """True where query q is matched to sample `hi` rather than `lo` (its neighbour just before).

    The exact float rule of the sparse path: later only if strictly closer ((q - lo) > (hi - q));
    between repeated stamps (lo == hi) the later copy wins from q == lo on, so an exact hit lands
    on the last copy, as the backward search does.
    """
    return ((q - lo) > (hi - q)) | ((lo == hi) & (q >= lo))


def _rounding_margin(*stamp_arrays: np.ndarray) -> float:
    """A distance beyond which a query's side of a float midpoint is the side the exact rule gives.

    The midpoint and the rule's two differences each carry at most a couple of ulps of the largest
    stamp; 16 ulps is a safe margin and still a femtosecond-scale one.
    """
    largest = max(max(abs(float(a[0])), abs(float(a[-1]))) for a in stamp_arrays if a.size)
    return 16.0 * float(np.spacing(largest))


def _nearest_switches(source, queries) -> np.ndarray:
    """For each pair of neighbouring samples (j, j+1): the first query matched to j+1 or later.

    The rule is monotone in q, so the switch is found by searching the midpoints. Only queries within
    a rounding margin of their midpoint can be put one off by float rounding (or by an unchecked
    guess): a cheap margin test finds those few, and the exact rule settles them.
    """
    lo = source[:-1]
    hi = source[1:]
    mids = hi - lo
    mids *= 0.5
    mids += lo
    n_q = queries.size
    if n_q == 0 or mids.size == 0:
        return np.zeros(mids.size, dtype=np.intp)
    # Onto a grid the arithmetic guess is used unchecked: the margin test below verifies it.
    switch = _guess(queries, mids, "right") if _guess_usable(queries, mids, "right") else \
        sorted_search(queries, mids, "right")
    margin = _rounding_margin(source, queries)
    before = queries.take(switch - 1, mode="clip")  # must be clearly before the midpoint
    before -= mids
    suspect = before >= -margin
    after = queries.take(switch, mode="clip")  # must be clearly after it
    after -= mids
    suspect |= after <= margin
    # Clipped reads past either end mean nothing: there only the other test applies. The switches are
    # sorted, so those rows are a prefix and a suffix.
    k0 = int(switch.searchsorted(0, side="right"))
    if k0:
        np.less_equal(after[:k0], margin, out=suspect[:k0])
    kn = int(switch.searchsorted(n_q, side="left"))
    if kn < switch.size:
        np.greater_equal(before[kn:], -margin, out=suspect[kn:])
    suspects = np.flatnonzero(suspect)
    if suspects.size:
        _settle_switches(lo, hi, mids, queries, switch, suspects)
    return switch


def _settle_switches(lo, hi, mids, queries, switch, rows) -> None:
    """Correct `switch` in place on `rows` by the exact rule (a re-search first if many are off)."""
    n_q = queries.size

    def off(rows):
        late = rows[(switch[rows] > 0) & _prefers_later(lo[rows], hi[rows], queries.take(switch[rows] - 1, mode="clip"))]
        early = rows[(switch[rows] < n_q) & ~_prefers_later(lo[rows], hi[rows], queries.take(switch[rows], mode="clip"))]
        return late, early

    too_late, too_early = off(rows)
    if too_late.size + too_early.size > 64:  # a poor guess in places: search those exactly first
        redo = np.union1d(too_late, too_early)
        switch[redo] = sorted_search(queries, mids[redo], "right")
        too_late, too_early = off(redo)
    todo = too_late
    while todo.size:
        switch[todo] -= 1
        todo = todo[switch[todo] > 0]
        todo = todo[_prefers_later(lo[todo], hi[todo], queries[switch[todo] - 1])]
    todo = too_early
    while todo.size:
        switch[todo] += 1
        todo = todo[switch[todo] < n_q]
        todo = todo[~_prefers_later(lo[todo], hi[todo], queries[switch[todo]])]
