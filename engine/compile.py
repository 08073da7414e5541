"""``--compile``: fixed-shape compiled training steps on CUDA (torch.compile, CUDA graphs, fused SGD).

On CUDA, `compile_networks` compiles the networks the distiller names (``distiller.networks()``: the
student and every frozen teacher) in place (``nn.Module.compile``,
so state-dict keys and checkpoints are unchanged) with ``dynamic=False``; the default mode
``reduce-overhead`` replays CUDA graphs, which is what small CIFAR networks at batch 64 need (they are
bound by kernel launches). The trainer then drops the last partial training batch (one static shape)
and uses fused SGD. Evaluation compiles a second graph for its last, smaller batch.

On the CPU ``--compile`` is ignored with one logged line (`engine.trainer`): the run is the same as without it.
"""
from __future__ import annotations

from typing import List

from torch import nn

COMPILE_MODES = ("reduce-overhead", "default", "max-autotune", "max-autotune-no-cudagraphs")


def compile_networks(distiller: nn.Module, mode: str = "reduce-overhead") -> List[str]:
    """Compile each network of ``distiller.networks()`` (attribute name -> module) in place; returns the
    attribute names compiled."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"--compile_mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    done = []
    for attr, module in getattr(distiller, "networks", dict)().items():
        module.compile(mode=mode, dynamic=False)
        done.append(attr)
    return done
