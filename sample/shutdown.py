"""Wait for Ctrl+C (SIGINT) or SIGTERM in a process that runs other threads."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
# A closed terminal sends SIGHUP; a program that must clean up children takes it too.
HANGUP_SIGNALS = STOP_SIGNALS | {signal.SIGHUP}


class StopSignals:
    """Set an event when SIGINT or SIGTERM arrives.

    Create it in the main thread before any other thread starts. A Python signal
    handler runs only when the main thread next executes bytecode, and the kernel
    may deliver the signal to one of the SDK's or gRPC's threads instead, so a
    main thread blocked in Event.wait() can sleep through it. Here the signals are
    blocked in the main thread, every thread started later inherits that mask,
    and one thread takes them with sigwait(). This also works as PID 1 in a
    container, where SIGTERM has no default action.
    """

    def __init__(
        self,
        on_signal: Callable[[signal.Signals], None] | None = None,
        exit_on_second: bool = True,
        signals: frozenset[signal.Signals] = STOP_SIGNALS,
    ) -> None:
        self._signals = signals
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        self.event = threading.Event()
        self.received: signal.Signals | None = None
        self._on_signal = on_signal
        self._exit_on_second = exit_on_second
        threading.Thread(target=self._receive, name="stop-signals", daemon=True).start()

    def _receive(self) -> None:
        while True:
            received = signal.Signals(signal.sigwait(self._signals))
            if self.event.is_set() and self._exit_on_second:
                # A second signal during the graceful stop means "stop now", as a
                # second Ctrl+C does in most tools.
                os._exit(128 + received)
            if self._on_signal is not None:
                self._on_signal(received)
            self.received = self.received or received
            self.event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop signal arrives or `timeout` seconds pass; return whether one did."""
        return self.event.wait(timeout)

    def is_set(self) -> bool:
        return self.event.is_set()


def unblock_stop_signals() -> None:
    """Unblock SIGINT, SIGTERM and SIGHUP in this thread.

    A child process inherits its parent's blocked signals across exec. A program
    that relies on Python's own Ctrl+C handling calls this first, in case it was
    started by one that uses StopSignals.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANGUP_SIGNALS)


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """Signal handler that makes SIGTERM stop a short-lived program as Ctrl+C does."""
    raise KeyboardInterrupt
