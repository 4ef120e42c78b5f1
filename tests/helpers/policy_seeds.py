"""Held-out pick-and-place seeds for tiny test policies, chosen by the object each seed's layout names."""
import numpy as np

from collector.policy.checkpoint import Checkpoint


def target_of(seed: int) -> str:
    from collector.sim.tasks.pick_place import OBJECTS

    return str(np.random.default_rng([seed, 3]).choice(list(OBJECTS)))  # PickPlace.place's draw


def known_seeds(checkpoint, count: int, start: int = 1_000_500_000) -> int:
    """The first of `count` consecutive held-out seeds whose pick-and-place object the policy knows
    (a tiny policy learned one take, so one object)."""
    known = set(Checkpoint.load(checkpoint).vocabulary.targets)
    seed = start
    while not all(target_of(seed + i) in known for i in range(count)):
        seed += 1
    return seed


def plan_seed_naming(checkpoint) -> int:
    """A plan seed whose first take's layout names an object the policy knows."""
    from collector.session.runner import take_seed

    known = set(Checkpoint.load(checkpoint).vocabulary.targets)
    return next(s for s in range(1, 100) if target_of(take_seed(s, 1)) in known)
