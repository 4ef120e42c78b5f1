"""Which episodes a dataset tool works on: a dataset folder (through its catalogue), a folder of
episode files, or files named one by one; narrowed by task, condition and outcome.

With a catalogue the filters are SQL queries on it (the catalogue is the dataset's index, see
collector.session.catalog) and only finished episodes (status kept or recovered) are used. Without
one, the same filters are applied to each file's root attributes, so the tools also work on a copy of
some episode files with no catalogue beside them.
`verdict` (the reviewers' verdict: accepted, rejected, disputed, unreviewed) is the catalogue's mirror of
the review labels, or without a catalogue read from each file's annotations (collector/review).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from collector.episodes.conditions import condition_label
from collector.errors import ConfigError, DataError
from collector.recorder import schema
from collector.session.catalog import OUTCOMES, QA_STATES, REVIEW_VERDICTS, STATUSES

USABLE_STATUSES = ("kept", "recovered")
FILTER_NAMES = ("task", "lighting", "weight", "outcome", "qa", "operator", "station", "session_id", "robot",
                "verdict")
# Filters whose values come from a known set. A value outside it can match nothing, so it is named as a
# typo (as plan validation names an unknown preset) rather than reported as an empty selection.
CLOSED_FILTERS = {"outcome": ("outcome", OUTCOMES), "qa": ("QA state", QA_STATES), "status": ("status", STATUSES),
                  "verdict": ("review verdict", REVIEW_VERDICTS)}
# Names the project defines (tasks, presets); a dataset may also hold names from elsewhere, so a
# value is accepted when either knows it.
NAMED_FILTERS = {"task": "task", "lighting": "lighting preset", "weight": "weight preset"}


@dataclass(frozen=True)
class EpisodeRef:
    """One selected episode: its file and the facts filters and exports need without opening it."""

    path: Path
    episode_id: str
    task: str = ""
    lighting: str = ""
    weight: str = ""
    outcome: str = "unknown"
    index: Optional[int] = None  # catalogue episode number, when there is a catalogue
    dataset_root: Optional[Path] = None  # the dataset folder whose catalogue lists it
    catalog: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # Where its published copy lives (s3://, gs://, file://; '' when unpublished): a job's worker on
    # another machine, where `path` does not exist, reads the episode from there (jobs/engine.py).
    url: str = ""


@dataclass
class Filters:
    """Each filter is a list of accepted values; an empty list accepts everything."""

    task: List[str] = field(default_factory=list)
    lighting: List[str] = field(default_factory=list)
    weight: List[str] = field(default_factory=list)
    outcome: List[str] = field(default_factory=list)
    qa: List[str] = field(default_factory=list)
    operator: List[str] = field(default_factory=list)
    station: List[str] = field(default_factory=list)
    session_id: List[str] = field(default_factory=list)
    robot: List[str] = field(default_factory=list)
    verdict: List[str] = field(default_factory=list)

    @classmethod
    def from_kwargs(cls, **values) -> "Filters":
        unknown = set(values) - set(FILTER_NAMES)
        if unknown:
            raise ConfigError(f"unknown episode filter(s) {sorted(unknown)}; known: {', '.join(FILTER_NAMES)}")
        return cls(**{k: _as_list(v) for k, v in values.items() if v is not None})

    def active(self) -> Dict[str, List[str]]:
        return {name: getattr(self, name) for name in FILTER_NAMES if getattr(self, name)}

    def describe(self) -> str:
        return ", ".join(f"{k}={'|'.join(v)}" for k, v in self.active().items()) or "none"


def _as_list(value) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


def select_episodes(source: Union[str, Path, Sequence[Union[str, Path]]],
                    filters: Optional[Filters] = None) -> List[EpisodeRef]:
    """Episodes of a dataset folder, a folder of episode files (.hdf5 or legacy .h5), one file, or a list of files, in a stable order.

    Raises DataError when the source does not exist or nothing matches (naming the filters), because
    an empty selection is almost always a typo in a filter, and training on nothing helps nobody.
    """
    filters = filters or Filters()
    if isinstance(source, (str, Path)):
        sources = _local_sources([source])
    else:
        sources = _local_sources(source)
    refs: List[EpisodeRef] = []
    for src, url in sources:
        src = src.expanduser()
        if not src.exists():
            raise DataError(f"{src}: no such dataset folder or episode file")
        if src.is_dir() and ((src / "catalog.sqlite").is_file() or (src / "catalog.url").is_file()):  # own or server
            refs.extend(_from_catalog(src, filters))
        elif src.is_dir():
            found = [_from_file(p, in_folder=True) for p in schema.episode_files_under(src, final_only=True)]
            check_filter_values(filters.active(), lambda name: {_ref_value(r, name) for r in found})
            refs.extend(r for r in found if _matches(r, filters))
        else:
            ref = dataclasses.replace(_from_file(src), url=url)
            if _matches(ref, filters):
                refs.append(ref)
    if not refs:
        where = ", ".join(url or str(path) for path, url in sources[:3])
        if len(sources) > 3:  # a list of hundreds of files would bury the message
            where += f" and {len(sources) - 3} more"
        raise DataError(f"no episodes in {where} match the filters ({filters.describe()})")
    seen = set()
    unique = []
    for ref in refs:
        key = ref.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(ref)
    return unique


def _local_sources(sources) -> List[Tuple[Path, str]]:
    """(path, URL) per source: a path as given (no URL); an episode or published-dataset URL (s3://, gs://,
    file://) becomes each episode's local cached copy with the episode's own URL."""
    from collector.fleet.storage import is_url, local_copies

    return [pair for s in sources for pair in (local_copies(str(s)) if is_url(s) else [(Path(s), "")])]


def check_filter_values(filters: Dict[str, Any], present: Callable[[str], Iterable[str]]) -> None:
    """Raise ConfigError for a filter value no episode can have, naming it and the values there are.

    filters: {name: value or list of values}; present(name): the values of `name` the data holds
    (called only when a value is not one the project defines)."""
    project: Optional[Dict[str, Iterable[str]]] = None
    for name, values in filters.items():
        for value in _as_list(values):
            if name in CLOSED_FILTERS:
                what, allowed = CLOSED_FILTERS[name]
            elif name in NAMED_FILTERS:
                if project is None:
                    project = _project_names()
                what, allowed = NAMED_FILTERS[name], set(project.get(name, ()))
                if value not in allowed:
                    allowed |= {v for v in present(name) if v}
            else:
                continue
            if value not in allowed:
                raise ConfigError(f"--{name}: unknown {what} {value!r} (known: {', '.join(sorted(allowed)) or 'none'})")


def _project_names() -> Dict[str, Iterable[str]]:
    from collector.session.plan import known_names_from_project

    known = known_names_from_project()
    return {"task": known.tasks, "lighting": known.lighting, "weight": known.weights}


def catalog_values(catalog, name: str) -> List[str]:
    """Distinct values of one filterable column in a catalogue (every status)."""
    return catalog.values(name)


def _from_catalog(root: Path, filters: Filters) -> List[EpisodeRef]:
    from collector.session.catalog import Catalog
    from collector.session.layout import DatasetLayout

    layout = DatasetLayout(root)
    catalog = Catalog(layout.catalog_path)
    check_filter_values(filters.active(), lambda name: catalog_values(catalog, name))
    rows = catalog.episodes(status=list(USABLE_STATUSES), **filters.active())
    refs = []
    for row in rows:
        if not row.path:
            continue
        path = layout.absolute(row.path)
        if not path.is_file():
            path = _published_copy(root, row.episode_id, row.location) or path
        if not path.is_file():
            raise DataError(f"{root}: catalogue lists {row.episode_id} at {row.path}, but the file is missing")
        refs.append(EpisodeRef(path=path, episode_id=row.episode_id, task=row.task, lighting=row.lighting,
                               weight=row.weight, outcome=row.outcome, index=row.episode_index,
                               dataset_root=layout.root, catalog=row.as_dict(), url=row.location))
    return refs


def _published_copy(root: Path, episode_id: str, location: str = "") -> Optional[Path]:
    """A local copy of an episode whose file was deleted after publishing (`collector publish --delete-local`):
    from where the catalogue says it lives, else from this folder's upload queue."""
    from collector.fleet.storage import open_episode_url
    from collector.fleet.upload_queue import published_location

    url = location or published_location(root, episode_id)
    return open_episode_url(url) if url else None


def _from_file(path: Path, in_folder: bool = False) -> EpisodeRef:
    try:
        with schema.open_episode(path) as h5:
            meta = schema.read_metadata(h5)
    except DataError as exc:
        if not in_folder:
            raise
        # Still selected: the job that opens it reports this file's problem, and every other file's result.
        return EpisodeRef(path=path, episode_id=schema.episode_id_from_name(path.name), catalog={"unreadable": str(exc)})
    conditions = meta.get("conditions") if isinstance(meta.get("conditions"), dict) else {}
    return EpisodeRef(
        path=path,
        episode_id=str(meta.get("episode_id") or schema.episode_id_from_name(path.name)),
        task=str(meta.get("task", "")),
        lighting=condition_label(conditions, "lighting"),
        weight=condition_label(conditions, "weight"),
        outcome=str(meta.get("outcome", "unknown")),
        catalog={"qa": meta.get("qa", ""), "operator": meta.get("operator", ""), "station": meta.get("station", ""),
                 "session_id": meta.get("session_id", ""), "robot": meta.get("robot", "")},
    )


def _ref_value(ref: EpisodeRef, name: str) -> str:
    if name == "verdict":
        return file_verdict(ref.path)
    return str(getattr(ref, name, None) if name in ("task", "lighting", "weight", "outcome") else ref.catalog.get(name))


def file_verdict(path: Path) -> str:
    """The reviewers' verdict an episode file's annotations give ('unreviewed' when it cannot be read)."""
    from collector.review.annotations import read_review

    try:
        return read_review(path).verdict
    except DataError:
        return "unreviewed"


def _matches(ref: EpisodeRef, filters: Filters) -> bool:
    for name, accepted in filters.active().items():
        if _ref_value(ref, name) not in accepted:
            return False
    return True


def paths(refs: Iterable[EpisodeRef]) -> List[Path]:
    return [r.path for r in refs]
