"""torch.compile inside the engine: TRAIN.COMPILE / TEST.COMPILE, static batch shapes, compile time.

* ``compile_model(model, mode)``: ``torch.compile(model, mode=..., dynamic=False)``, or the model
  itself for ``off``. For training the engine compiles the DDP-wrapped model (torch's
  recommendation: dynamo sees DDP and splits the graph at its gradient buckets, so all-reduce
  overlaps the backward pass; a DDP wrapped around an already compiled module could only start
  communicating after the whole compiled backward). Evaluation compiles the bare model (no DDP
  forward in evaluation). Parameters stay those of the original module: checkpoints are written
  from the unwrapped model and keep their plain names.
* ``StaticBatch``: compiled steps see one batch shape per phase. A batch smaller than the largest
  one seen so far (the last batch of an evaluation, or of a loader that keeps its remainder) is
  padded with copies of its first sample and the outputs of the padding are dropped, so the
  compiled graph is reused instead of compiled again. Samples never interact inside either model
  (no batch norm), so the real rows' outputs and gradients are exactly those of the smaller batch.
* ``CompileClock``: wall time spent compiling (dynamo tracing, inductor code generation, the lazily
  compiled backward, CUDA graph recording), read from torch's compile callbacks, so that the
  engine reports it on its own line and keeps it out of the iteration times.
"""
from __future__ import annotations

import logging
import time

import torch
import torch.nn as nn

from .config import COMPILE_MODES

logger = logging.getLogger(__name__)

__all__ = ["COMPILE_MODES", "compile_model", "is_compiled", "StaticBatch", "CompileClock",
           "compile_clock"]


# The compiler behind every mode. Tests swap in "aot_eager" (the same dynamo and autograd graphs,
# no code generation) where they check the engine's wiring rather than inductor's kernels.
BACKEND = "inductor"


def is_compiled(model: nn.Module) -> bool:
    """True for the wrapper torch.compile returns around a module."""
    return isinstance(model, torch._dynamo.eval_frame.OptimizedModule)


def compile_model(model: nn.Module, mode: str) -> nn.Module:
    """``model`` compiled in ``mode`` (one of COMPILE_MODES); ``off`` returns it unchanged.

    ``dynamic=False``: every graph is specialised to its shapes, which StaticBatch keeps fixed.
    (Symbolic batch sizes would give slower generic kernels, still recompile for a batch of one
    -- sizes 0 and 1 are always specialised -- and defeat CUDA graphs in reduce-overhead mode.)
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    if mode == "off":
        return model
    if BACKEND != "inductor":  # modes are inductor settings
        return torch.compile(model, backend=BACKEND, dynamic=False)
    return torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)


class StaticBatch:
    """Pads batches up to the largest batch seen so far (only while ``enabled``)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.size = 0

    def pad(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(batch padded to the static size, number of real samples)."""
        real = batch.shape[0]
        if not self.enabled:
            return batch, real
        self.size = max(self.size, real)
        if real == self.size:
            return batch, real
        filler = batch[:1].expand(self.size - real, *batch.shape[1:])
        return torch.cat([batch, filler]), real


class CompileClock:
    """Seconds spent compiling in this process (tracing, code generation, lazily compiled
    backward graphs, CUDA graph recording) and ``compiles``, the number of frames dynamo traced
    (one per graph, one more per recompilation). Both only grow: callers take differences
    around a step. One clock per process (``compile_clock()``), listening to torch's compile
    start/end callbacks (nested compiles count once)."""

    def __init__(self):
        self.seconds = 0.0
        self.compiles = 0
        self._started: float | None = None

    def _start(self, args) -> None:
        self._started = time.perf_counter()

    def _end(self, args) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None
        if args.callback_trigger == torch._dynamo.callback.CallbackTrigger.DYNAMO:
            self.compiles += 1


_CLOCK: CompileClock | None = None


def compile_clock() -> CompileClock:
    """The process' compile clock, (re-)registered with torch whenever it is asked for
    (``torch._dynamo.reset()`` drops every callback)."""
    global _CLOCK
    if _CLOCK is None:
        _CLOCK = CompileClock()
    handler = torch._dynamo.callback_handler
    if _CLOCK._start not in handler.start_callbacks:
        handler.register_start_callback(_CLOCK._start)
        handler.register_end_callback(_CLOCK._end)
    return _CLOCK
