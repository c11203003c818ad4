"""CTranslate2 against PyTorch: a Transformer run's test set decoded greedily and with beam 5 by
PyTorch (fp32 and bf16, eval.precision) and by its CTranslate2 exports (float32, bfloat16, int8).

    python scripts/bench_ctranslate2.py RUN [--checkpoint best] [--threads 2] [--repeat 3] [--sweep]

Exports RUN's checkpoint in each quantization, beside RUN as RUN.ct2-<quantization>/ (an
export already there is used again), then decodes the test split once per engine and search,
each in a process of its own, on the CPU, and reports:
- seconds: engine.translate of the whole test split, the fastest of --repeat decodings (all of
  them in seconds_all), after the model is loaded and has decoded its first 50 sentences once (a
  warm-up: allocations, kernel selection); on shared cores the fastest is the least disturbed;
- BLEU (sacreBLEU, as eval reports it) and `same`: the share of translations identical to
  PyTorch fp32's with the same search;
- peak_rss_mb: the process's peak resident memory, and rss_before_mb: its resident memory
  before the model loaded (Python, torch and CTranslate2 imported: both engines' processes
  import both); the difference is the model's and its decoding's;
- compute_type: what CTranslate2 computes in (a CPU without bfloat16 kernels computes a
  bfloat16 model in float32);
- load_average: the machine's (1 minute) when the timed decodings started.
--sweep adds int8 on 1 and 2 threads, and int8 greedy with batches of 8 to 256 sentences and
of 400 to 16,000 tokens (the default: each model's eval.batch_tokens, 1,000 for an export). One
JSON line per measurement, then the markdown tables of docs/results.md. The processes run with tcmalloc where it is installed,
as the command line does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

QUANTIZATIONS = ("float32", "bfloat16", "int8")
WARMUP = 50  # sentences decoded once before the timed decoding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a transformer run dir with a best checkpoint")
    parser.add_argument("--checkpoint", default="best", help="best | last | avg: what is exported and compared")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both engines")
    parser.add_argument("--repeat", type=int, default=3, help="timed decodings per measurement; the fastest counts")
    parser.add_argument("--sweep", action="store_true", help="also int8 by threads and batch size")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one measurement, in a process of its own
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return
    models = {"pytorch": args.run} | {q: export(args.run, q, args.checkpoint) for q in QUANTIZATIONS}
    engines = [("pytorch", "fp32"), ("pytorch", "bf16")] + [(q, None) for q in QUANTIZATIONS]
    results, reference = [], {}
    for beam in (1, 5):
        for name, precision in engines:
            results.append(run(models[name], beam=beam, threads=args.threads, precision=precision or "fp32",
                               checkpoint=args.checkpoint if name == "pytorch" else None, repeat=args.repeat))
            reference.setdefault(beam, results[-1]["hypotheses"])
    if args.sweep:
        for beam in (1, 5):
            for threads in (1, 2):
                results.append(run(models["int8"], beam=beam, threads=threads, repeat=args.repeat, sweep="threads"))
        for examples in (8, 32, 128, 256):
            results.append(run(models["int8"], beam=1, threads=args.threads, batch_examples=examples,
                               repeat=args.repeat, sweep="batch"))
        for tokens in (400, 1000, 4000, 8000, 16000):
            results.append(run(models["int8"], beam=1, threads=args.threads, batch_tokens=tokens,
                               repeat=args.repeat, sweep="batch"))
    for result in results:
        hyps = result.pop("hypotheses")
        result["same"] = round(sum(a == b for a, b in zip(hyps, reference[result["beam"]])) / len(hyps), 4)
        print(json.dumps(result), flush=True)
    print(tables(results))


def export(run: Path, quantization: str, checkpoint: str) -> Path:
    out = run.with_name(f"{run.name}.ct2-{quantization}")
    if not (out / "export.json").exists():
        subprocess.run([sys.executable, "-m", "seq2seq", "export", str(run), "--to", "ctranslate2", "--checkpoint",
                        checkpoint, "--quantization", quantization, "-o", str(out)], check=True)
    return out


def run(model: Path, **settings) -> dict:
    """One measurement in a fresh process (its peak memory is its own)."""
    said = subprocess.run([sys.executable, __file__, str(model), "--measure", json.dumps({"model": str(model),
                                                                                          **settings})],
                          check=True, capture_output=True, text=True)
    return json.loads(said.stdout.splitlines()[-1])


def measure(model: str, beam: int, threads: int, precision: str = "fp32", checkpoint: str | None = None,
            batch_tokens: int | None = None, batch_examples: int = 0, repeat: int = 1,
            sweep: str | None = None) -> dict:
    from seq2seq.allocator import tcmalloc_loaded
    from seq2seq.data import split_pairs
    from seq2seq.evaluate import load_run
    from seq2seq.metrics import corpus_scores

    before = rss_mb()
    loaded = load_run(model, checkpoint, device="cpu", threads=threads)
    settings = dataclasses.replace(loaded.cfg.eval, beam=beam, precision=precision, batch_examples=batch_examples,
                                   batch_tokens=batch_tokens or loaded.cfg.eval.batch_tokens)
    pairs = split_pairs(loaded.cfg.data, "test")
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    loaded.engine.translate(sources[:WARMUP], settings)
    load = os.getloadavg()[0]  # the machine's: other work on the cores slows every figure
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        hyps = loaded.engine.translate(sources, settings)
        seconds.append(round(time.perf_counter() - started, 2))
    engine = loaded.engine.describe()
    return {"model": model, **engine, "precision": precision if engine["engine"] == "pytorch" else None,
            "beam": beam, "batch_tokens": None if batch_examples else settings.batch_tokens,
            "batch_examples": batch_examples or None, "sweep": sweep, "sentences": len(sources),
            "seconds": min(seconds), "seconds_all": seconds, "bleu": corpus_scores(hyps, refs)["bleu"],
            "rss_before_mb": round(before),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "malloc": "tcmalloc" if tcmalloc_loaded() else "system", "load_average": round(load, 1),
            "hypotheses": hyps}


def rss_mb() -> float:
    import seq2seq.engines  # noqa: F401  what every measurement imports: torch, and CTranslate2 where it loads
    import ctranslate2  # noqa: F401

    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def tables(results: list[dict]) -> str:
    """The engines side by side (greedy and beam 5), then the sweep."""
    main = [r for r in results if r["sweep"] is None]
    lines = ["| engine | weights | computes in | greedy s | greedy BLEU | same as fp32 | beam 5 s | beam 5 BLEU "
             "| same as fp32 | peak memory MB (greedy / beam 5) | before loading MB |",
             "| --- | --- | --- |" + " ---: |" * 8]
    for greedy in (r for r in main if r["beam"] == 1):
        beam = next(r for r in main if r["beam"] == 5 and r["model"] == greedy["model"]
                    and r["precision"] == greedy["precision"])
        weights = greedy.get("quantization") or "float32"
        computes = greedy.get("compute_type") or greedy["precision"]
        lines.append(f"| {greedy['engine']} | {weights} | {computes} | {greedy['seconds']:.2f} | {greedy['bleu']:.2f} "
                     f"| {greedy['same']:.1%} | {beam['seconds']:.2f} | {beam['bleu']:.2f} | {beam['same']:.1%} "
                     f"| {greedy['peak_rss_mb']:,} / {beam['peak_rss_mb']:,} | {greedy['rss_before_mb']:,} |")
    sweep = [r for r in results if r["sweep"]]
    if sweep:
        lines += ["", "| int8 | threads | batch | s | BLEU | peak memory MB |",
                  "| --- | ---: | --- | ---: | ---: | ---: |"]
        for r in sweep:
            batch = f"{r['batch_examples']} sentences" if r["batch_examples"] else f"{r['batch_tokens']:,} tokens"
            search = "greedy" if r["beam"] == 1 else "beam 5"
            lines.append(f"| {search} | {r['threads']} | {batch} | {r['seconds']:.2f} | {r['bleu']:.2f} "
                         f"| {r['peak_rss_mb']:,} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--measure" in sys.argv:
        from seq2seq.allocator import restart_with_tcmalloc

        restart_with_tcmalloc()  # as the command line does (seq2seq/allocator.py)
    main()
