"""Datasets of recorded episodes: selection, training reads, statistics, exports, dataset-wide jobs.

    from collector.dataset import EpisodeDataset, select_episodes, JobEngine
    ds = EpisodeDataset("data/demo", cameras=["head"], history=2, chunk=50, split="train", task="pour")

Heavy optional dependencies (dask, pyarrow, av, mcap, matplotlib) load only in the modules that need them.
"""
from collector.dataset.episode import AlignedEpisode
from collector.dataset.episode_dataset import EpisodeDataset
from collector.dataset.jobs.engine import JobEngine
from collector.dataset.selection import EpisodeRef, Filters, select_episodes
from collector.dataset.split import split_episodes

__all__ = ["AlignedEpisode", "EpisodeDataset", "EpisodeRef", "Filters", "JobEngine", "select_episodes",
           "split_episodes"]
