"""Ctrl-C and SIGTERM during training: the first asks the loop to stop at the next update
(it saves a checkpoint and ends), a second stops at once."""

from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator


@contextlib.contextmanager
def stop_requests(request: Callable[[str], None], requested: Callable[[], bool]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call request(signal name) (the loop then stops when it
    next looks), or raise KeyboardInterrupt if requested() says a stop was asked for already.
    The previous handlers come back on the way out."""
    def handle(signum, _frame) -> None:
        if requested():
            raise KeyboardInterrupt
        request(signal.Signals(signum).name)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
