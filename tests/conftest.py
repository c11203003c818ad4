import atexit
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k"
TINY = ROOT / "tests" / "tiny.yaml"  # a tiny bahdanau; tiny(model) for the others
# Each model's tiny sizes: tiny.yaml's model section is bahdanau's.
TINY_MODELS = {"rnn": {"emb_dim": 32, "hidden_dim": 32}, "lstm": {"emb_dim": 32, "hidden_dim": 32},
               "bahdanau": {"emb_dim": 32, "hidden_dim": 32, "attn_dim": 32},
               "transformer": {"d_model": 32, "heads": 4, "ff_dim": 64, "enc_layers": 1, "dec_layers": 1}}
_TINY_DIR = Path(tempfile.mkdtemp(prefix="seq2seq-tiny-"))
atexit.register(shutil.rmtree, _TINY_DIR, ignore_errors=True)


def tiny(model: str = "bahdanau") -> Path:
    """A config file like tiny.yaml, with `model`'s own tiny sizes (for --config and load_config)."""
    import yaml

    path = _TINY_DIR / f"{model}.yaml"
    if not path.exists():
        raw = yaml.safe_load(TINY.read_text(encoding="utf-8"))
        raw["model"] = {"name": model, "dropout": raw["model"]["dropout"], **TINY_MODELS[model]}
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NO_BROWSER = "no Chromium found (Debian: apt-get install chromium)"


def browser() -> str | None:
    """The path of a Chromium (or Chrome) on PATH, for the tests that render pages; None if there is none."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


# A toy "language": German number words and their English translations, so that tiny models
# can learn the mapping in seconds and BLEU can reach 100.
DE = ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn"]
EN = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def toy_pairs(n: int, seed: int = 0, max_len: int = 6) -> list[tuple[str, str]]:
    import random

    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        idx = [rng.randrange(len(DE)) for _ in range(rng.randint(1, max_len))]
        pairs.append((" ".join(DE[i] for i in idx), " ".join(EN[i] for i in idx).capitalize() + "."))
    return pairs


def write_jsonl(root: Path, shape: str = "flat", sizes=(300, 40, 40)) -> Path:
    """A dataset dir in the hub's layout: train/val/test .jsonl with flat or `translation` columns."""
    root.mkdir(parents=True, exist_ok=True)
    for (name, n), seed in zip(zip(("train", "val", "test"), sizes), (1, 2, 3)):
        with open(root / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for de, en in toy_pairs(n, seed):
                row = {"de": de, "en": en} if shape == "flat" else {"translation": {"de": de, "en": en}}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return root


def wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait until the run's last.pt is of `step` or later (while proc, which trains it, lives)."""
    import torch

    last, deadline = run / "checkpoints" / "last.pt", time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists():
            try:
                if torch.load(last, weights_only=True)["progress"]["step"] >= step:
                    return
            except Exception:  # replaced while we read it: read again
                pass
        time.sleep(0.02)
    raise AssertionError(f"run never reached step {step} (exit {proc.poll()})")


def _tiny(device: str, precision: str):
    """A tiny bahdanau model on a toy vocabulary, without dropout or warmup, in fp32 unless told
    (`auto` would be bf16 on a CPU with AVX512-BF16, too coarse for the numbers the tests
    compare): its config, model and tokenizer."""
    import torch

    from seq2seq.config import load_config
    from seq2seq.models.build import build_model
    from seq2seq.tokenizer import Tokenizer

    tok = Tokenizer.train([s for p in toy_pairs(300) for s in p], vocab_size=60)
    cfg = load_config(TINY, {"model.dropout": 0.0, "train.warmup_steps": 0, "train.precision": precision})
    torch.manual_seed(0)
    return cfg, build_model(cfg.model, tok.vocab_size).to(device), tok


def tiny_update(world=None, device="cpu", precision="fp32"):
    """The optimizer step (update.Update) of a tiny model (_tiny), for driving updates by hand, as
    the benchmarks do, without a run dir; returns it and its tokenizer."""
    import torch

    from seq2seq.distributed import World
    from seq2seq.update import Update

    cfg, model, tok = _tiny(device, precision)
    return Update(cfg.train, model, torch.device(device), world or World()), tok


def tiny_trainer(run_dir, world=None, device="cpu", precision="fp32"):
    """A Trainer of a tiny model (_tiny) in run_dir, for driving its checkpoints by hand; returns
    it and its tokenizer."""
    import torch

    from seq2seq.corpus import Corpus
    from seq2seq.distributed import World
    from seq2seq.rundir import RunDir
    from seq2seq.train_checkpoints import TrainingState
    from seq2seq.trainer import Trainer

    cfg, model, tok = _tiny(device, precision)
    corpus = Corpus({"src_len": [1], "tgt_len": [1]}, [], [])  # the Trainer reads only the length columns
    return Trainer(cfg, RunDir(run_dir), model, tok, corpus, torch.device(device), TrainingState(),
                   lambda *a, **k: None, world or World()), tok


def overfit_tiny_model(name: str):
    """A tiny model of kind `name` trained (300 Adam steps, no dropout) on eight toy pairs until it
    translates them; returns the model (on the CPU), its tokenizer and the pairs."""
    import torch

    from seq2seq.config import load_config
    from seq2seq.models.build import build_model
    from seq2seq.tokenizer import Tokenizer

    pairs = toy_pairs(8, seed=5, max_len=5)
    tok = Tokenizer.train([s for p in toy_pairs(300) for s in p], vocab_size=60)
    wider = {"model.d_model": 64, "model.ff_dim": 128} if name == "transformer" else {"model.hidden_dim": 64}
    cfg = load_config(tiny(name), {"model.dropout": 0.0, **wider})
    torch.manual_seed(0)
    model = build_model(cfg.model, tok.vocab_size)
    batch = batch_of(tok, pairs)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out) / batch.n_tokens
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, tok, pairs


def batch_of(tok, pairs: list[tuple[str, str]]):
    """The pairs encoded and collated into one Batch."""
    from seq2seq.batching import collate

    return collate(tok.encode([s for s, _ in pairs]), tok.encode([t for _, t in pairs]))


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a CUDA GPU: skipped where torch sees none."""
    import torch

    if not torch.cuda.is_available():
        for item in items:
            if item.get_closest_marker("cuda"):
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture
def toy_dataset(tmp_path) -> Path:
    return write_jsonl(tmp_path / "toy")


class Ran(NamedTuple):
    """What a command did: its exit code and what it wrote to stdout and to stderr."""

    code: int
    out: str
    err: str


def cli(*args, stdin="", env: dict[str, str] | None = None, cwd: Path | None = None, in_process: bool = False,
        expect: int | None = 0) -> Ran:
    """`seq2seq ARGS` with `stdin` (text, or a file object where in_process), extra environment
    variables and a working directory. In a fresh interpreter by default, as a user runs it (a
    traceback would show on stderr); with in_process, in this one (no interpreter to start, and
    monkeypatches apply; an exception other than SystemExit propagates). With `expect`, the exit
    code must be that one (None: any). Outside pytest (python -m tests.test_faults); tests take
    the run_cli fixture."""
    args = [str(a) for a in args]
    if in_process:
        code, out, err = _in_process(args, stdin, env or {}, cwd)
    else:
        result = subprocess.run([sys.executable, "-m", "seq2seq", *args], input=stdin, capture_output=True,
                                text=True, cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        code, out, err = result.returncode, result.stdout, result.stderr
    if expect is not None:
        assert code == expect, f"seq2seq {' '.join(args)}: exit {code}, not {expect}\n{err}"
    return Ran(code, out, err)


def _in_process(args: list[str], stdin, env: dict[str, str], cwd: Path | None) -> tuple[int, str, str]:
    """seq2seq.cli.main() with sys.argv, stdin, stdout, stderr, the environment and the working
    directory swapped for the call, and all of them put back after it."""
    from seq2seq.cli import main

    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for name in ("out", "err")}
    if isinstance(stdin, str):
        stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8")
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr, os.getcwd(), {name: os.environ.get(name) for name in env}
    sys.argv, sys.stdin, sys.stdout, sys.stderr = ["seq2seq", *args], stdin, streams["out"], streams["err"]
    os.environ.update(env)
    try:
        if cwd is not None:
            os.chdir(cwd)
        try:
            main()
            code = 0
        except SystemExit as e:
            code = 0 if e.code is None else e.code
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved[:4]
        os.chdir(saved[4])
        for name, value in saved[5].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    out, err = (streams[name].buffer.getvalue().decode("utf-8") for name in ("out", "err"))
    return code, out, err


@pytest.fixture(scope="session")
def run_cli():
    """The command line: run_cli(*args, stdin=, env=, cwd=, in_process=, expect=) -> Ran(code, out,
    err); see cli()."""
    return cli
