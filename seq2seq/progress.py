"""How far a job has got: a live progress bar on stderr where a user waits (training, eval,
translate), drawn only when stderr is a terminal, never in pipes, logs or tests, and never on
stdout, which carries output.
"""

from __future__ import annotations

import sys


class ProgressBar:
    """A bar of `total` steps labelled `label`; nothing at all where stderr is not a terminal."""

    def __init__(self, total: int, label: str, done: int = 0, active: bool = True):
        self.active = active and sys.stderr.isatty()
        if self.active:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.fields[info]}"), console=Console(stderr=True),
                                transient=True, redirect_stdout=False)
            self.task = self.bar.add_task(label, total=total, completed=done, info="")
            self.bar.start()

    def update(self, done: int, info: str = "") -> None:
        if self.active:
            self.bar.update(self.task, completed=done, info=info)

    def advance(self, steps: int) -> None:
        if self.active:
            self.bar.advance(self.task, steps)

    def close(self) -> None:
        if self.active:
            self.bar.stop()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
