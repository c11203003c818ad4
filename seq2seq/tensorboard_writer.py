"""Training curves as TensorBoard event files in RUN/tensorboard/ (train.tensorboard).

torch.utils.tensorboard writes them; the tensorboard package it needs is an optional extra,
asked for before a run writes anything. Rank 0 alone writes. A resumed run goes on along the
same step axis: the events that a stopped process logged after its last checkpoint, which the
resumed run logs again, are purged (SummaryWriter's purge_step), so no step shows twice.
Everything logged at the checkpoint's own step was logged before it was saved, and stays.
"""

from __future__ import annotations

from pathlib import Path

from seq2seq.errors import UserError


def require(log_dir: Path | None = None) -> None:
    """Fail, before anything is written, where the tensorboard package is missing or `log_dir`
    (a resumed run's) is there but no directory."""
    try:
        import torch.utils.tensorboard  # noqa: F401 (it imports tensorboard)
    except ImportError:
        raise UserError('train.tensorboard needs the tensorboard package: pip install -e ".[tensorboard]"') from None
    if log_dir is not None and (log_dir.exists() or log_dir.is_symlink()) and not log_dir.is_dir():
        raise UserError(f"{log_dir} is there but not a directory: move it away to write TensorBoard curves there")


class TensorBoard:
    """Scalars by training step into log_dir, after `step` (where training starts or resumes);
    nothing at all where log_dir is None."""

    def __init__(self, log_dir: Path | None = None, step: int = 0):
        self.writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir), purge_step=step + 1)

    def add(self, step: int, scalars: dict[str, float]) -> None:
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
