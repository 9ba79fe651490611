"""engine.logging: Ctrl-C held around TensorBoard calls (an interrupted run must not hang)."""
from __future__ import annotations

import os
import signal

import pytest

from engine.logging import TensorBoardWriter, ctrl_c_deferred


def _ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_inside_the_block_is_raised_when_it_ends():
    before = signal.getsignal(signal.SIGINT)
    ran = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            _ctrl_c()
            ran.append("after the signal")
    assert ran == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is before


def test_an_ignored_ctrl_c_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_deferred():
            _ctrl_c()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


class _SlowClosingWriter:
    """Stands in for SummaryWriter: Ctrl-C arrives while it is closing (joining its thread)."""

    def __init__(self):
        self.calls = []

    def add_scalar(self, tag, value, step):
        _ctrl_c()
        self.calls.append((tag, value, step))

    def close(self):
        _ctrl_c()
        self.calls.append("closed")


def test_tensorboard_calls_finish_before_a_ctrl_c_is_raised():
    tb = TensorBoardWriter(None)
    tb._writer = writer = _SlowClosingWriter()
    with pytest.raises(KeyboardInterrupt):
        tb.scalars({"loss": 1.5, "lr": None, "top1": 2}, step=3, prefix="train/")
    assert writer.calls == [("train/loss", 1.5, 3), ("train/top1", 2.0, 3)]
    with pytest.raises(KeyboardInterrupt):
        tb.close()
    assert writer.calls[-1] == "closed" and tb._writer is None
    tb.close()  # closing twice is a no-op
