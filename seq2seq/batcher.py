"""What `seq2seq serve` decodes, and how requests that arrive together are decoded together:
each served run (Served: its loaded model, and each sentence's answer as `translate` gives it)
has a queue (Batcher) whose worker waits up to batch_wait after the first request for more,
takes up to max_batch sentences of one beam and attention, and decodes them in one call on the
decode thread. serve.py is the HTTP side.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Callable

from seq2seq.errors import UserError
from seq2seq.evaluate import LoadedRun
from seq2seq.runfiles import read_report
from seq2seq.search import fit
from seq2seq.tokenizer import EOS


@dataclass(frozen=True)
class Settings:
    max_batch: int = 32  # sentences one decode takes, per run
    batch_wait: float = 0.005  # seconds a batch waits for more requests after its first
    max_chars: int = 5000  # characters one request may hold
    max_lines: int = 50  # lines (sentences) one request may hold

    def check(self) -> None:
        for name in ("max_batch", "max_chars", "max_lines"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.batch_wait <= 1:
            raise UserError(f"--batch-wait-ms must be from 0 to 1000, got {self.batch_wait * 1000:g}")


@dataclass
class Job:
    lines: list[str]  # non-blank
    beam: int
    attention: bool
    answer: asyncio.Future


class Batcher:
    """One run's queue. Its worker takes the first job that waits and, after up to `batch_wait`
    for more, the jobs behind it of the same beam and attention, up to max_batch sentences (a
    job is never split), decodes their sentences in one call on `executor`, and answers each."""

    def __init__(self, decode: Callable[[list[str], int, bool], list[dict]], settings: Settings, executor):
        self.decode, self.settings, self.executor = decode, settings, executor
        self.waiting: deque[Job] = deque()
        self.arrived = asyncio.Event()
        self.pending = 0  # sentences asked for and not yet answered: waiting or being decoded

    async def translate(self, lines: list[str], beam: int, attention: bool) -> list[dict]:
        job = Job(lines, beam, attention, asyncio.get_running_loop().create_future())
        self.waiting.append(job)
        self.arrived.set()
        self.pending += len(lines)
        try:
            return await job.answer
        finally:
            self.pending -= len(lines)

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._gather(loop)
            jobs = self._take()
            lines = [line for job in jobs for line in job.lines]
            try:
                found, failed = await loop.run_in_executor(self.executor, self.decode, lines, jobs[0].beam,
                                                           jobs[0].attention), None
            except Exception as e:  # a bug or out of memory: each request of the batch fails with it
                found, failed = [], e
            for job in jobs:
                if not job.answer.done():  # else cancelled: its client went away
                    if failed is None:
                        job.answer.set_result(found[:len(job.lines)])
                    else:
                        job.answer.set_exception(failed)
                found = found[len(job.lines):]

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Until a job waits, then up to batch_wait longer while fewer than max_batch sentences wait."""
        while not self.waiting:
            self.arrived.clear()
            await self.arrived.wait()
        deadline = loop.time() + self.settings.batch_wait
        while sum(len(job.lines) for job in self.waiting) < self.settings.max_batch:
            left = deadline - loop.time()
            if left <= 0:
                return
            self.arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)

    def _take(self) -> list[Job]:
        first = self.waiting.popleft()
        taken, n, rest = [first], len(first.lines), deque()
        for job in self.waiting:
            if (job.beam, job.attention) == (first.beam, first.attention) and n + len(job.lines) <= \
                    self.settings.max_batch:
                taken.append(job)
                n += len(job.lines)
            else:
                rest.append(job)
        self.waiting = rest
        return taken


@dataclass
class Served:
    """A run as the server shows it, and its queue (made when the server starts)."""

    name: str
    id: int  # OpenNMT-py's model_id: the run's place on the command line, from 0
    loaded: LoadedRun
    batcher: Batcher | None = None

    def describe(self) -> dict:
        cfg = self.loaded.cfg
        return {"name": self.name, "id": self.id, "model": cfg.model.name, "settings": dataclasses.asdict(cfg.model),
                "attention_layers": self.loaded.engine.attention_layers, "checkpoint": self.loaded.which,
                "step": self.loaded.step, "beam": cfg.eval.beam, **self.loaded.engine.describe(),
                "test_bleu": evaluated_bleu(self.loaded)}

    def decode(self, lines: list[str], beam: int, attention: bool) -> list[dict]:
        """Each line's translation as `translate --beam` gives it, with its tokens, their log p and
        (asked for) the attention: what /translate answers per sentence. Runs on the decode thread."""
        engine, tok = self.loaded.engine, self.loaded.tok
        settings = dataclasses.replace(self.loaded.cfg.eval, beam=beam)
        found = engine.best(lines, settings, need_weights=attention)
        texts = tok.decode([h.tokens for h in found])
        out = []
        ids = tok.encode(lines)
        for line, src, full, h, text in zip(lines, fit(engine.max_positions, ids), ids, found, texts):
            sentence = {"source": line, "translation": text, "source_tokens": tok.pieces(src + [EOS]),
                        "tokens": tok.pieces(h.tokens + [EOS]), "logprobs": [round(p, 4) for p in h.logprobs],
                        "score": round(h.score, 4), "cut": len(full) > len(src)}
            if attention:
                sentence["attention"] = None if h.attention is None else \
                    [[round(w, 3) for w in row] for row in h.attention.float().tolist()]  # (T_out + 1, S_b)
            out.append(sentence)
        return out


def evaluated_bleu(loaded: LoadedRun) -> float | None:
    """The test BLEU `seq2seq eval` reported for the checkpoint served, where it evaluated that one."""
    path = loaded.run.report("test", 1, which=loaded.report_name)
    try:
        report = read_report(path, "") if path.exists() else None
    except UserError:
        return None
    return report.bleu if report is not None and report.step == loaded.step else None


def blank(line: str) -> dict:
    """A blank line's answer: an empty translation, as `translate` leaves it."""
    return {"source": line, "translation": "", "source_tokens": [], "tokens": [], "logprobs": [], "score": 0.0,
            "cut": False}
