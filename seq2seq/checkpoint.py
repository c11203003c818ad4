"""One save/load pair for self-describing checkpoints.

A checkpoint holds the model's weights, the resolved config, a fingerprint of the vocabulary
and, for `last`, everything exact resumption needs (optimizer, schedule, counters, RNG states).
Saves are atomic; loads use weights_only=True, so a checkpoint can hold tensors and plain
values only, never arbitrary pickled objects.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from seq2seq.config import Config
from seq2seq.errors import UserError, first_line
from seq2seq.files import atomic_write
from seq2seq.rundir import RunDir
from seq2seq.runfiles import migrate_config
from seq2seq.tokenizer import Tokenizer

FORMAT = 1
REQUIRED = {"model", "config", "vocab", "progress"}  # in every checkpoint; `last` holds more


def save(path: Path, checkpoint: dict) -> None:
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **checkpoint}, f))


def load(path: Path, remedy: str = "use the other checkpoint or train again", mmap: bool = False) -> dict:
    """A checkpoint, or one clear error that ends with `remedy`. With mmap, tensors are mapped from
    the file, not read: cheap when only the progress is wanted."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (PermissionError, IsADirectoryError) as e:
        raise UserError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except Exception as e:  # a damaged file fails in many ways: zip, pickle, storage, key errors
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}); {remedy}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not REQUIRED <= ckpt.keys():
        raise UserError(f"{path} is not a seq2seq checkpoint (format {FORMAT})")
    return ckpt


def load_of_run(run: RunDir, which: str, remedy: str = "use the other checkpoint or train again"
                ) -> tuple[dict, Config, Tokenizer]:
    """Checkpoint `which` of a run, its config and the run's tokenizer, once it is shown to belong
    to the run: of the model in the run's config.yaml, made with the run's vocabulary (spm.model).
    The config's data.dataset is config.yaml's, the one home of where the run's data is now
    (`train --resume --dataset` moves it; a checkpoint saved before says where it was)."""
    path = run.checkpoint(which)
    ckpt = load(path, remedy)
    cfg = Config.from_dict(migrate_config(ckpt["config"]), where=str(path))
    run_cfg = run.read_config()
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=run_cfg.data.dataset))
    own = run_cfg.model
    if cfg.model != own:
        differs = (f"it is of model {cfg.model.name}, run {run.path} trains model {own.name}"
                   if cfg.model.name != own.name else f"its model's settings differ from {run.config}")
        raise UserError(f"checkpoint {path} belongs to another run: {differs}")
    tok = Tokenizer.load(run.spm)
    if ckpt.get("vocab") != vocab_fingerprint(tok.proto):
        raise UserError(f"checkpoint {path} belongs to another run: its vocabulary differs from {run.spm}")
    return ckpt, cfg, tok


def vocab_fingerprint(model_proto: bytes) -> str:
    return hashlib.sha256(model_proto).hexdigest()[:16]


def load_weights(model: torch.nn.Module, state_dict: dict, where: Path) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise UserError(f"checkpoint {where} does not fit this model ({first_line(e)})") from None


def average(paths: list[Path]) -> dict:
    """The parameter-wise mean of checkpoints of one run (as Vaswani et al. 2017 averaged their
    last checkpoints), with the config, vocabulary and progress of the last one and the steps
    averaged. Tensors that are not floating point (counters) are the last one's."""
    total, last, last_model, steps = {}, None, None, []
    for path in paths:
        ckpt = load(path)
        model_cfg = Config.from_dict(migrate_config(ckpt["config"]), where=str(path)).model
        if last is not None and (ckpt["vocab"], model_cfg) != (last["vocab"], last_model):
            raise UserError(f"cannot average {path} with {paths[0]}: they belong to different runs")
        if last is not None and ckpt["model"].keys() != total.keys():
            raise UserError(f"cannot average {path} with {paths[0]}: their weights differ in names")
        for name, value in ckpt["model"].items():
            if last is not None and value.shape != last["model"][name].shape:
                raise UserError(f"cannot average {path} with {paths[0]}: its {name} is of shape "
                                f"{tuple(value.shape)}, not {tuple(last['model'][name].shape)}")
            if value.is_floating_point():
                total[name] = total.get(name, 0) + value.double()
            else:
                total[name] = value
        last, last_model = ckpt, model_cfg
        steps.append(ckpt["progress"]["step"])
    model = {name: (value / len(paths)).to(last["model"][name].dtype) if value.is_floating_point() else value
             for name, value in total.items()}
    return {key: last[key] for key in REQUIRED} | {"model": model, "averaged_steps": steps}
