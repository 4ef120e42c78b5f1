"""Who commanded the robot on each row of the aligned view: the recorded `control` stream, per row.

The teleop loop records the command arbiter's choice every control tick (stream `control`, field
`source`: a uint8 code; the stream's `sources` attr maps each source id to its code, docs/recorder.md)
with the same stamp as that tick's `command`. The aligned view does not carry it, so it is put on the
rows here: each row takes the control sample of the command sample the row's /action came from (the
`command` stream's sync index), so a row's label says who produced the action it trains on. Without
a sync index (a view on another timeline) the row's own stamp is used, as of the latest control sample.

Episodes recorded before the arbiter existed have no `control` stream: every row was the operator's.
Codes differ between episodes (a source's code is its position in that take's arbiter), so datasets
and exports map names onto one vocabulary (`source_vocabulary`): operator 0, policy 1, then the
other ids in name order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence

import numpy as np

from collector.errors import ConfigError, DataError
from collector.recorder import schema
from collector.recorder.vocabulary import COMMAND, CONTROL

OPERATOR = "operator"  # collector/teleop/operator_source.py OperatorSource.id
POLICY = "policy"  # collector/policy/source.py SOURCE_ID
STANDARD_SOURCES = (OPERATOR, POLICY)


@dataclass(frozen=True)
class RowControl:
    """codes: (T,) int, one per aligned row, indexing `names`; recorded: False when the episode has no
    control stream (every row the operator's)."""

    codes: np.ndarray
    names: List[str]
    recorded: bool

    def row_names(self) -> np.ndarray:
        return np.asarray(self.names, dtype=object)[self.codes] if self.codes.size else np.empty(0, dtype=object)

    def counts(self) -> Dict[str, int]:
        """Rows per source that commanded at least one row."""
        per_code = np.bincount(self.codes, minlength=len(self.names))
        return {name: int(n) for name, n in zip(self.names, per_code) if n}

    def recoded(self, vocabulary: Sequence[str]) -> np.ndarray:
        """The codes as positions in `vocabulary` (which must hold every name used)."""
        position = {name: i for i, name in enumerate(vocabulary)}
        table = np.array([position.get(name, -1) for name in self.names], dtype=np.int64)
        codes = table[self.codes]
        if codes.size and codes.min() < 0:
            missing = sorted({self.names[c] for c in np.unique(self.codes) if table[c] < 0})
            raise DataError(f"control sources {missing} are not in the vocabulary {list(vocabulary)}")
        return codes


def source_vocabulary(names: Iterable[str]) -> List[str]:
    """One code per source name across episodes: operator, policy, then the others sorted."""
    others = sorted(set(names) - set(STANDARD_SOURCES))
    return [*STANDARD_SOURCES, *others]


def read_row_control(reader) -> RowControl:
    """Per aligned row, who was in control; `reader` is an open collector.recorder EpisodeReader."""
    rows = _row_count(reader)
    streams = reader.streams
    if CONTROL not in streams or reader.count(CONTROL) == 0:
        return RowControl(np.zeros(rows, dtype=np.int64), [OPERATOR], recorded=False)
    control_t = np.asarray(reader.stamps(CONTROL), dtype=np.float64)
    raw_codes = np.asarray(reader.raw(CONTROL, "source")[: control_t.size])
    if raw_codes.shape != control_t.shape or raw_codes.dtype.kind not in "iu":
        raise DataError(f"{reader.path}: /raw/control/source is {raw_codes.dtype} {raw_codes.shape}, expected "
                        f"one unsigned integer code per stamp ({control_t.size})")
    raw_codes = raw_codes.astype(np.int64)
    named = source_ids(streams[CONTROL].attrs or {})
    # the sources the take declared, plus any code it recorded without declaring (named source_<code>)
    recorded = np.array(sorted(set(named) | set(np.unique(raw_codes).tolist())), dtype=np.int64)
    names = [source_name(named, code) for code in recorded]
    row_t = _action_stamps(reader)
    if row_t.size != rows:
        raise DataError(f"{reader.path}: the aligned view has {rows} rows but /sync/command {row_t.size}")
    # as of the row's command: equal stamps pick that very tick's sample; rows before the first
    # control sample (none in a loop recording) take the first one
    sample = np.clip(np.searchsorted(control_t, row_t, side="right") - 1, 0, control_t.size - 1)
    return RowControl(np.searchsorted(recorded, raw_codes[sample]), names, recorded=True)


def _row_count(reader) -> int:
    h5 = reader.h5
    for key in (schema.TIMESTAMPS, schema.ACTION):
        if key in h5:
            return int(h5[key].shape[0])
    raise DataError(f"{reader.path}: no aligned view; was the episode finalized? (`collector recover` it)")


def _action_stamps(reader) -> np.ndarray:
    """Stamp of the command sample behind each row's action, else the row's own stamp."""
    index_path = f"{schema.SYNC_GROUP}/{COMMAND}/index"
    if schema.TIMESTAMPS in reader.h5 and index_path in reader.h5 and COMMAND in reader.streams:
        index = reader.h5[index_path][...]  # only the index: error and valid are not needed here
        stamps = reader.stamps(COMMAND)
        if index.size and (index.min() < 0 or index.max() >= stamps.size):
            raise DataError(f"{reader.path}: /sync/command/index points outside /raw/command "
                            f"({stamps.size} samples): the aligned view disagrees with the raw data")
        return stamps[index]
    if schema.TIMESTAMPS in reader.h5:
        return reader.timestamps
    return np.arange(_row_count(reader), dtype=np.float64)  # no timeline at all: nothing to align by


def source_ids(attrs: Dict) -> Dict[int, str]:
    """{code: source id} from a control stream's `sources` attr ({id: code}); malformed entries are left out."""
    sources = attrs.get("sources") or {}
    by_code: Dict[int, str] = {}
    if isinstance(sources, dict):
        for name, code in sources.items():
            try:
                by_code[int(code)] = str(name)
            except (TypeError, ValueError):
                continue
    return by_code


def source_name(by_code: Dict[int, str], code: int) -> str:
    return by_code.get(int(code), f"source_{int(code)}")


def check_source_names(requested: Iterable[str], present: Iterable[str], what: str = "control") -> List[str]:
    """The requested source ids, or ConfigError naming one no episode can have (a typo) and the known ones."""
    known = source_vocabulary(present)
    wanted = [str(name) for name in requested]
    for name in wanted:
        if name not in known:
            raise ConfigError(f"{what}: unknown control source {name!r} (known: {', '.join(known)})")
    return wanted


def source_weights(codes: np.ndarray, vocabulary: Sequence[str], weights: Dict[str, float]) -> np.ndarray:
    """A float64 weight per row: weights[source name], 1.0 for a source not named."""
    table = np.array([float(weights.get(name, 1.0)) for name in vocabulary], dtype=np.float64)
    return table[codes]
