"""One update of the weights: the loss per target token of every rank's batch (label-smoothed),
its gradients clipped to train.clip_norm, and AdamW (Loshchilov & Hutter 2019) at the rate the
schedule (schedule.py) gives the update. A model returns the loss summed over the batch's
target tokens (loss.output_loss), label-smoothed as this step asks; its normalisation is done here.
Training's loop calls it once a batch, and so do the benchmarks (scripts/bench.py,
bench_precision.py, profile_step.py), which need no run dir.
"""

from __future__ import annotations

import math

import torch

from seq2seq.batching import Batch
from seq2seq.config import TrainConfig
from seq2seq.device import autocast, resolve_precision
from seq2seq.distributed import World
from seq2seq.models.base import Seq2Seq
from seq2seq.schedule import lr_at
from seq2seq.tokenizer import PAD
from seq2seq.train_stats import StepStats


class Update:
    """The optimizer step of a model on `device`, one rank of `world`; `total_steps` (epochs or
    max_steps, whichever ends training first) is the length the cosine schedule anneals over."""

    def __init__(self, cfg: TrainConfig, model: Seq2Seq, device: torch.device, world: World = World(),
                 total_steps: float = math.inf):
        self.cfg, self.model, self.device, self.world, self.total_steps = cfg, model, device, world, total_steps
        # Fused: one kernel updates every parameter, and it skips an update on the device when told
        # the loss was not finite (found_inf), so the loop need not wait to find out.
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                           weight_decay=cfg.weight_decay, fused=True)
        if cfg.compile:
            model.compile_steps()
        # This rank's replica of the model, as an update calls it: the model itself in one process;
        # under torchrun wrapped by DDP, whose backward all-reduces (averages) the gradients.
        self.replica = model if world.size == 1 else torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        self.precision = resolve_precision(cfg.precision, device)
        self.autocast = autocast(device, self.precision)

    def lr(self, step: int, elapsed: float = 0.0, warmup_elapsed: float = 0.0) -> float:
        """The rate of update `step` (schedule.lr_at), `elapsed` training seconds in."""
        return lr_at(step, self.cfg, self.total_steps, elapsed, warmup_elapsed)

    def __call__(self, batch: Batch, lr: float) -> StepStats:
        """One update on this rank's batch at rate `lr`, queued without waiting for the device;
        when the loss or a gradient is not finite the update is skipped (and reported so)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.autocast:
            loss = self.replica(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out, self.cfg.label_smoothing)
        # the loss and target tokens of all ranks' batches, summed on the device: no wait for them
        loss_sum, tokens = self.world.all_reduce(torch.stack([loss.detach().double(),
                                                              (batch.tgt_out != PAD).sum().double()]))
        # DDP averages gradients over ranks: scaled by the world size, the result is the gradient
        # of the loss per target token of all ranks' batches together, as in one process.
        (loss * self.world.size / tokens.float()).backward()
        clip = self.cfg.clip_norm if self.cfg.clip_norm > 0 else float("inf")  # inf: the norm only
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)  # the same on every rank
        skipped = ~(torch.isfinite(loss_sum) & torch.isfinite(grad_norm))  # a NaN/inf loss or gradient
        self.optimizer.found_inf = skipped.float()  # the fused AdamW leaves parameters and moments as they are
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepStats(*(torch.where(skipped, 0.0, x) for x in (loss_sum, tokens)), skipped.double(),
                         torch.where(skipped, 0.0, grad_norm.double()))

    def load_state_dict(self, saved: dict) -> None:
        """The optimizer's state from a checkpoint. Checkpoints from before the fused optimizer say
        fused=None: set before loading, since the groups' flag decides where `step` is loaded to
        (the param's device, float32, for the fused kernel)."""
        groups = [group | {"fused": True, "foreach": None} for group in saved["param_groups"]]
        self.optimizer.load_state_dict({**saved, "param_groups": groups})
