"""fp32 against bf16 autocast on the CPU, on the same batches, in one process, the two
alternated round by round so that both see the same load on the machine:

    python scripts/bench_precision.py --model transformer --threads 1 --rounds 2

prints one JSON line per round and precision: target tokens per second over `--updates`
updates of the benchmark's configuration (5,000 training pairs, batches of 4,096 target
tokens, the model's shipped config), after one update of warmup.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from seq2seq.batching import token_batches
from seq2seq.config import DEFAULT_DATASET, load_config
from seq2seq.corpus import prepare
from seq2seq.models.build import build_model
from seq2seq.update import Update


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="transformer")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--updates", type=int, default=7)
    ap.add_argument("--dataset", default=os.environ.get("SEQ2SEQ_DATASET", DEFAULT_DATASET))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_config(model=args.model, overrides={"data.dataset": args.dataset, "data.max_train_pairs": 5000,
                                                    "train.batch_tokens": 4096, "train.device": "cpu"})
    corpus, tok = prepare(base, lambda msg: None)
    src_lens, tgt_lens = corpus.lengths()
    batches = token_batches(src_lens, tgt_lens, 4096, base.train.seed, 0)[:args.updates + 1]
    cpu = torch.device("cpu")
    for round_ in range(1, args.rounds + 1):
        for precision in ("fp32", "bf16"):
            cfg = base.replace({"train.precision": precision})
            torch.manual_seed(0)
            model = build_model(cfg.model, tok.vocab_size).train()
            update = Update(cfg.train, model, cpu)
            update(corpus.batch(batches[0]), update.lr(0)).read()  # warmup
            tokens, tick = 0, time.perf_counter()
            for idx in batches[1:]:
                batch = corpus.batch(idx)
                update(batch, update.lr(0)).read()  # read(): wait for the update
                tokens += batch.n_tokens
            seconds = time.perf_counter() - tick
            print(json.dumps({"model": args.model, "round": round_, "dtype": precision, "threads": args.threads,
                              "updates": args.updates, "tgt_tok_per_s": round(tokens / seconds)}), flush=True)


if __name__ == "__main__":
    main()
