"""The policy network frozen for the control loop: a TorchScript trace of `predict_chunk`.

A policy of this project is small (a few million multiply-adds per camera), so most of an eager call is
Python: dispatching some hundred modules and tensor operations one by one. A trace recorded once at
start-up and frozen (`torch.jit.freeze`: the weights become constants, dead branches and the module
tree disappear) runs the same arithmetic with less of that overhead: 20 % off the median call and 12-16 %
off the p99 under two evaluations on two cores (docs/learning.md, "Fifteenth run").

The frozen network must compute what the eager one does: `freeze_for_inference` runs both on the
example batch and keeps the trace only if their chunks agree to 1e-5 (they are bit for bit equal for
both policies of the project); otherwise, or if tracing fails, the runner keeps the eager module and
says why in `reason`. A trace fixes the batch's keys and shapes, which is why the runner traces the
very batch layout it feeds every call (batch of one, its cameras, image size and inputs).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Sequence

import torch

from collector.policy.base import Policy

AGREEMENT = 1e-5  # largest difference from the eager chunk (normalized units) a trace may have


class _Predict(torch.nn.Module):
    """A policy's prediction with the batch's tensors as positional inputs, the form a trace records."""

    def __init__(self, policy: Policy, method: str, keys: Sequence[str]):
        super().__init__()
        self.policy, self.method, self.keys = policy, method, tuple(keys)

    def forward(self, *tensors: torch.Tensor):
        return getattr(self.policy, self.method)(dict(zip(self.keys, tensors)))


@dataclass
class InferenceNetwork:
    """`predict(batch) -> (B, chunk, A)`, or the tuple the traced method returns (`(chunk, objects)` for
    predict_chunk_and_objects); `frozen` says whether it is the trace, `reason` why not."""

    predict: Callable[[Dict[str, torch.Tensor]], torch.Tensor]
    frozen: bool
    reason: str = ""


def freeze_for_inference(policy: Policy, example: Dict[str, torch.Tensor],
                         method: str = "predict_chunk") -> InferenceNetwork:
    """The frozen trace of `policy.<method>` for batches laid out as `example`, or the eager call. The
    method returns the chunk, or a tuple of tensors from one pass (predict_chunk_and_objects: the chunk and
    the object head's estimate)."""
    policy.eval()
    keys = sorted(example)
    tensors = [example[k] for k in keys]
    eager = getattr(policy, method)
    try:
        # A trace warns of every shape check it turns into a constant; the layout is fixed here by design.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's; if it goes, tracing fails: eager
            traced = torch.jit.trace(_Predict(policy, method, keys).eval(), tuple(tensors), check_trace=False)
            frozen = torch.jit.freeze(traced)
        with torch.inference_mode():
            expected = eager(example)
            for _ in range(2):  # the profiling executor specializes on its first calls; check what it settles on
                got = frozen(*tensors)
        pairs = zip(got, expected) if isinstance(expected, tuple) else [(got, expected)]
        difference = max(float((a - b).abs().max()) for a, b in pairs)
    except Exception as error:  # noqa: BLE001  (any failure to trace leaves the eager module in charge)
        return InferenceNetwork(eager, False, f"tracing failed: {type(error).__name__}: {error}".splitlines()[0])
    if not difference <= AGREEMENT:
        return InferenceNetwork(eager, False, f"the trace differs from the eager network by {difference:.2g}")
    return InferenceNetwork(lambda batch: frozen(*[batch[k] for k in keys]), True)
