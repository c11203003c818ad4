"""What `train --resume` checks before it continues a run: that the run has a checkpoint to
resume from, that the checkpoint is the run's own, that the config asked for differs from the
run's only where a run may change, and that the data is the data it was trained on."""

from __future__ import annotations

from seq2seq import checkpoint
from seq2seq.config import Config
from seq2seq.distributed import World
from seq2seq.errors import UserError
from seq2seq.rundir import RunDir
from seq2seq.tokenizer import Tokenizer

# Fields that may change when a run is resumed (and data.dataset: the data's fingerprint is checked);
# any other difference means another run.
RESUMABLE_CHANGES = {"epochs", "max_steps", "time_budget", "patience", "eval_every", "checkpoint_every",
                     "checkpoint_seconds", "log_every", "device", "compile", "max_nonfinite", "keep_best",
                     "tensorboard", "precision"}


def last_checkpoint(cfg: Config, run: RunDir) -> tuple[dict, Tokenizer]:
    """The run's last checkpoint and tokenizer, checked against the config it is resumed with."""
    if not run.checkpoint("last").exists():
        raise UserError(f"run {run.path} has no checkpoint to resume from (it stopped before its first "
                        "save): train it again with --overwrite")
    run.read_info()  # a malformed run.json fails now, not after the data is prepared
    ckpt, saved, tok = checkpoint.load_of_run(run, "last",
                                              remedy="it cannot be resumed: train it again with --overwrite")
    check_resumable(saved, cfg, run)
    return ckpt, tok


def check_resumable(saved: Config, asked: Config, run: RunDir) -> None:
    """The config of the run's last checkpoint (saved) against the one it is resumed with (asked)."""
    a, b = saved.to_dict(), asked.to_dict()
    for section in a:
        for key in a[section]:
            if a[section][key] != b[section].get(key) and not (section == "train" and key in RESUMABLE_CHANGES
                                                           or (section, key) == ("data", "dataset")):
                raise UserError(f"cannot resume {run.path} with {section}.{key}={b[section].get(key)!r}: "
                                f"the run has {a[section][key]!r}")


def check_same_data(ckpt: dict, data_fingerprint: str, cfg: Config, run: RunDir, log) -> None:
    """A run resumes on the data it was trained on, wherever that lives now (data.dataset may
    change: a moved copy has the same fingerprint)."""
    saved = ckpt.get("data")
    if saved is None:
        log("the run predates data fingerprints: that its data is unchanged cannot be checked")
    elif saved != data_fingerprint:
        raise UserError(f"the data in {cfg.data.dataset} is not the data run {run.path} was trained on "
                        f"(fingerprint {data_fingerprint}, the run's {saved}): resume it on its own data")


def check_world_size(ckpt: dict, world: World, run: RunDir) -> None:
    """A run resumes with as many processes as it was trained with: each trains on a batch of its
    own, so another number would change the target tokens of every update, and each process's
    random state is its own. (A checkpoint from before it said its number is not checked.)"""
    saved = ckpt.get("world_size")
    if saved is not None and saved != world.size:
        how = f"torchrun --nproc_per_node {saved} -m seq2seq train --resume {run.path}" if saved > 1 else \
            f"seq2seq train --resume {run.path}, without torchrun"
        raise UserError(f"run {run.path} was trained by {saved} process{'es' * (saved > 1)}, not {world.size}: "
                        f"another number would change its tokens per update; resume it with {how}")
