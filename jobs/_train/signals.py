"""Ctrl+C and SIGTERM stop a run cleanly: Ray Train aborts the workers, and the run is marked interrupted.

While a TorchTrainer fits in the main thread, Ray Train owns SIGINT: its handler aborts the worker
group and then ends the driver with SystemExit. SIGTERM, which schedulers and `kill` send, is turned
into that same SIGINT, so both stop the workers the same way.
"""
from __future__ import annotations

import signal

_received: list[int] = []


def forward_sigterm() -> None:
    """From now on SIGTERM acts as Ctrl+C, and is remembered as SIGTERM for the exit code and the message."""
    signal.signal(signal.SIGTERM, _as_sigint)


def _as_sigint(signum: int, frame) -> None:
    _received.append(signum)
    signal.raise_signal(signal.SIGINT)


def stopped_by() -> signal.Signals:
    """The signal that stopped the run: SIGTERM when one was forwarded, else SIGINT."""
    return signal.Signals(_received[-1]) if _received else signal.SIGINT


def exit_code(signum: signal.Signals) -> int:
    """What a shell reports for a process ended by that signal."""
    return 128 + int(signum)
