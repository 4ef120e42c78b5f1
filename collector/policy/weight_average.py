"""An exponential moving average of a policy's weights during training (Polyak averaging).

The weights at any one optimizer step carry that step's noise: in the study, runs that differ only in
their seed land up to 6 rollouts of 42 apart. The average over the last ~1/(1 - decay) steps is a
flatter point of the same run, and it needs no learning-rate schedule, which a time-boxed run (whose
step count is not known in advance) could not plan. A run with `ema_decay` ships the average as the
checkpoint's `weights` and keeps the optimizer's own weights as `training_weights`, which resume
continues from.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import torch

from collector.errors import ConfigError


def check_decay(decay: float) -> None:
    if not 0.0 <= decay < 1.0:
        raise ConfigError(f"EMA decay must be in [0, 1) (0 turns it off; 0.999 averages ~1000 steps), got {decay}")


class WeightAverage:
    """Averages every floating-point tensor of the state dict (parameters and float buffers); other
    buffers (counters) follow the live weights."""

    def __init__(self, policy: torch.nn.Module, decay: float, averaged: Optional[Dict[str, torch.Tensor]] = None,
                 updates: int = 0):
        check_decay(decay)
        self.decay = decay
        self.updates = updates
        live = policy.state_dict()
        source = averaged if averaged is not None else live
        missing = sorted(set(live) - set(source))
        if missing:
            raise ConfigError(f"the averaged weights lack {', '.join(missing[:3])}: they are not this policy's")
        self.averaged = {k: source[k].detach().clone().to(live[k].device) for k in live}

    def rate(self) -> float:
        """The decay of the next update: small at first, so the average is not dominated by the
        untrained initial weights (the warm-up of TensorFlow's ExponentialMovingAverage)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, policy: torch.nn.Module) -> None:
        decay = self.rate()
        for name, value in policy.state_dict().items():
            average = self.averaged[name]
            if average.is_floating_point():
                average.mul_(decay).add_(value.detach(), alpha=1.0 - decay)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.averaged.items()}

    @contextmanager
    def applied(self, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The policy with the averaged weights in place (e.g. to validate what will be shipped); its own
        weights are put back afterwards."""
        live = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        policy.load_state_dict(self.averaged)
        try:
            yield policy
        finally:
            policy.load_state_dict(live)
