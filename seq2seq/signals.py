"""Ctrl-C and SIGTERM for the life of a training command.

While the run is set up, the first interrupts it (KeyboardInterrupt: what was begun is undone).
While it trains, the first asks the loop to stop at the next update (it saves a checkpoint and
ends) and a second stops at once. Once it is stopping, by a signal or because it is done, more
signals are noted and change nothing: the clean-up is never cut short.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator


class Interrupts:
    def __init__(self) -> None:
        self.name: str | None = None  # the first signal's name, once one came
        self.request: Callable[[str], None] | None = None  # the loop's, while it trains
        self.closing = False

    def handle(self, signum, _frame) -> None:
        if self.closing:
            return
        first, self.name = self.name is None, self.name or signal.Signals(signum).name
        if first and self.request is not None:
            self.request(self.name)
            return
        self.closing = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts() -> Iterator[Interrupts]:
    """SIGINT and SIGTERM handled by an Interrupts while inside; the previous handlers come back
    on the way out."""
    state = Interrupts()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, state.handle)
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
