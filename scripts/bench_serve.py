#!/usr/bin/env python
"""Load benchmark of `seq2seq serve`: concurrent clients send single test sentences, every answer
is checked against `seq2seq translate`, and throughput and latency are measured with request
batching and with batches of one.

    scripts/bench_serve.py RUN [RUN...] [--clients 16] [--sentences 400] [--max-batch 32]

The sentences are the first N of the runs' test split. For each mode (batches of up to
--max-batch sentences, then --max-batch 1) the script starts `seq2seq serve RUN... --port 0` on
127.0.0.1, warms it up with one request per client, then has C client threads send the N
sentences, each as one POST /translate for every run, and checks each run's answer against what
`seq2seq translate RUN` printed for that sentence. One JSON line per mode: sentences per second,
p50 and p99 latency (ms, per request), mismatches; then the speed-up. Exit 1 if any answer differs
or fails. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seq2seq.data import split_pairs
from seq2seq.rundir import RunDir

TIMEOUT = 600  # seconds any one request, or the server's start, may take


def translated(run: Path, sentences: list[str]) -> list[str]:
    """`seq2seq translate RUN` of the sentences, one line each."""
    out = subprocess.run([sys.executable, "-m", "seq2seq", "translate", str(run)], input="\n".join(sentences) + "\n",
                         capture_output=True, text=True, check=True).stdout
    return out.split("\n")[:-1]


def start(runs: list[Path], max_batch: int, wait_ms: float) -> tuple[subprocess.Popen, str]:
    """`seq2seq serve` on a free 127.0.0.1 port; the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", "serve", *map(str, runs), "--port", "0",
                             "--max-batch", str(max_batch), "--batch-wait-ms", str(wait_ms)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    first = lines.get(timeout=TIMEOUT)
    found = re.search(r"at (http://127\.0\.0\.1:\d+/) ", first)
    if not found:
        proc.kill()
        raise SystemExit(f"seq2seq serve did not start: {first}")
    return proc, found.group(1)


def ask(url: str, sentence: str) -> tuple[float, dict[str, str]]:
    """One POST /translate of the sentence to every run: its latency (s) and each run's translation."""
    request = urllib.request.Request(url + "translate", data=json.dumps({"text": sentence}).encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        body = json.loads(response.read())
    return time.perf_counter() - started, {answer["run"]: answer["translation"] for answer in body["runs"]}


def measure(runs: list[Path], sentences: list[str], expected: dict[str, list[str]], clients: int,
            max_batch: int, wait_ms: float) -> dict:
    proc, url = start(runs, max_batch, wait_ms)
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda s: ask(url, s), sentences[:clients]))  # warm-up, not counted
            started = time.perf_counter()
            answers = list(pool.map(lambda s: ask(url, s), sentences))
            seconds = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT)
    latencies = sorted(latency for latency, _ in answers)
    mismatches = sum(got.get(name) != want[i] for i, (_, got) in enumerate(answers) for name, want in expected.items())
    return {"max_batch": max_batch, "batch_wait_ms": wait_ms, "clients": clients, "sentences": len(sentences),
            "runs": list(expected), "seconds": round(seconds, 2), "sent_per_s": round(len(sentences) / seconds, 2),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "mismatches": mismatches, "load_average": round(os.getloadavg()[0], 1)}  # the machine's, at the end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = parser.parse_args()
    pairs = split_pairs(RunDir(args.runs[0]).read_config().data, "test")[:args.sentences]
    sentences = [source for source, _ in pairs]
    expected = {run.name: translated(run, sentences) for run in args.runs}
    machine = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version()}
    rows = []
    for max_batch in (args.max_batch, 1):
        rows.append(measure(args.runs, sentences, expected, args.clients, max_batch, args.batch_wait_ms) | machine)
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"speedup": round(rows[0]["sent_per_s"] / rows[1]["sent_per_s"], 2)}))
    sys.exit(1 if any(row["mismatches"] for row in rows) else 0)


if __name__ == "__main__":
    main()
