"""Speed benchmark: training throughput, peak memory and decoding speed, one JSON line each.

Trains MODEL for N updates on Multi30k with the configuration matched to ../shared/bench
(joint 8k sentencepiece vocabulary, batches of 4,096 target tokens, AdamW (0.9, 0.98), label
smoothing 0.1, the architecture of configs/MODEL.yaml with the bench's dropout), then decodes
the test split greedily and with beam 5:

    python scripts/bench.py --model transformer --updates 60 --dataset ../shared/data/multi30k

    {"model": "transformer", "what": "train", "device": "cpu", "tgt_tok_per_s": ..., "peak_mem_mb": ...}
    {"model": "transformer", "what": "greedy", "device": "cpu", "sent_per_s": ..., "seconds": ...}
    {"model": "transformer", "what": "beam5", "device": "cpu", "sent_per_s": ..., "seconds": ...}

Throughput counts real target tokens (EOS included, padding not) per wall-clock second of
whole updates (batch collation, forward, backward, optimizer), median over the updates after
the first `--warmup` ones, as the JoeyNMT baseline reports it; on a GPU, where updates are
queued without waiting, median over windows of 10 updates. Training runs in train.precision,
decoding in eval.precision; each line's "dtype" says what ran (seq2seq.device.precision_label).
`wall_s` is the time of all updates, a compilation's included (`first_window_s`).
Peak memory is the process's peak resident set on the CPU ("malloc" says whose allocator
served it: tcmalloc where installed, see seq2seq/allocator.py), and the peak allocated CUDA
memory on a GPU. `--repeat-batch` trains on the first batch over and over: the peak it prints is
then what one batch shape needs, and the difference to a run over varied batches is what the
memory allocator keeps in pieces it cannot reuse.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import sys
import time

import torch

from seq2seq.allocator import restart_with_tcmalloc, tcmalloc_loaded
from seq2seq.batching import token_batches
from seq2seq.config import DEFAULT_DATASET, load_config
from seq2seq.corpus import prepare
from seq2seq.data import split_pairs
from seq2seq.device import describe, pick_device, precision_label, resolve_precision
from seq2seq.evaluate import load_run
from seq2seq.models import MODELS
from seq2seq.models.build import build_model
from seq2seq.search import translate
from seq2seq.models.base import count_parameters
from seq2seq.update import Update

BENCH_DROPOUT = {"transformer": 0.1}  # ../shared/bench/README.md: 0.1 for the transformer, 0.2 for the others


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="transformer", choices=list(MODELS))
    ap.add_argument("--updates", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5, help="updates left out of the median")
    ap.add_argument("--dataset", default=os.environ.get("SEQ2SEQ_DATASET", DEFAULT_DATASET))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--decode", type=int, default=1000, help="test sentences to decode (0: skip decoding)")
    ap.add_argument("--run", help="decode with this trained run's best model (default: the model just "
                                  "benchmarked, whose untrained outputs run long)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    ap.add_argument("--repeat-batch", action="store_true", help="train on the first batch every update")
    args = ap.parse_args()

    from seq2seq.config import parse_set

    cfg = load_config(model=args.model, overrides={
        "data.dataset": args.dataset, "model.dropout": BENCH_DROPOUT.get(args.model, 0.2), "train.batch_tokens": 4096,
        "train.device": args.device, "train.max_steps": args.updates, **parse_set(args.overrides)})
    device = pick_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    corpus, tok = prepare(cfg, lambda msg: print(msg, file=sys.stderr))
    model = build_model(cfg.model, tok.vocab_size).to(device)
    update = Update(cfg.train, model, device, total_steps=args.updates)
    src_lens, tgt_lens = corpus.lengths()
    batches = token_batches(src_lens, tgt_lens, cfg.train.batch_tokens, cfg.train.seed, 0)
    batches = [batches[0]] * args.updates if args.repeat_batch else \
        (batches * (1 + args.updates // len(batches)))[:args.updates]
    # The training loop does not wait for a GPU between updates, so on one the clock reads
    # whole windows of updates; on the CPU every update is its own window.
    per_window = 1 if device.type == "cpu" else 10
    rates = []
    model.train()
    started = time.perf_counter()
    for start in range(0, len(batches), per_window):
        sync(device)
        tick = time.perf_counter()
        tokens = 0
        for step, idx in enumerate(batches[start:start + per_window], start):
            batch = corpus.batch(idx).to(device)
            update(batch, update.lr(step))
            tokens += batch.n_tokens
        sync(device)
        rates.append(tokens / (time.perf_counter() - tick))
        if start == 0:
            first = time.perf_counter() - tick  # with train.compile, its compilation
    warmup = -(-args.warmup // per_window)  # windows holding the warmup updates
    wall = time.perf_counter() - started  # every update, the first ones' compilation included
    common = {"model": args.model, "device": device.type, "hardware": describe(device),
              "dtype": precision_label(model, update.precision, device), "threads": torch.get_num_threads(),
              "params": count_parameters(model), "malloc": "tcmalloc" if tcmalloc_loaded() else "system"}
    emit(common | {"what": "train", "updates": args.updates,
                   "tgt_tok_per_s": round(statistics.median(rates[warmup:] or rates)),
                   "compile": cfg.train.compile, "repeat_batch": args.repeat_batch,
                   "wall_s": round(wall, 1), "first_window_s": round(first, 2),
                   "peak_mem_mb": round(peak_mem_mb(device))})
    if args.decode:
        test = split_pairs(cfg.data, "test")[:args.decode]
        settings = cfg.eval
        if args.run:
            loaded = load_run(args.run, "best", args.device)
            model, tok, device = loaded.model, loaded.tok, loaded.device
            common |= {"run": args.run}
        for beam in (1, 5):
            sync(device)
            tick = time.perf_counter()
            translate(model, tok, [s for s, _ in test], device, dataclasses.replace(settings, beam=beam))
            sync(device)
            seconds = time.perf_counter() - tick
            emit(common | {"what": "greedy" if beam == 1 else f"beam{beam}",
                           "dtype": precision_label(model, resolve_precision(settings.precision, device), device),
                           "sentences": len(test),
                           "sent_per_s": round(len(test) / seconds, 1), "seconds": round(seconds, 2)})


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    restart_with_tcmalloc()  # as the command line does (seq2seq/allocator.py)
    main()
