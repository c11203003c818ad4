"""What users of other NMT toolkits expect: TensorBoard curves, one HTML report of a study,
checkpoint averaging, n-best lists, and progress bars where they wait.

Two tiny runs are trained once for the module and evaluated: bahdanau keeps its 3 best
checkpoints and writes TensorBoard curves; the transformer does neither. Tests that change a
run work on a copy.
"""

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from seq2seq.rundir import RunDir
from tests.conftest import NO_BROWSER, browser, tiny, tiny_trainer, write_jsonl

@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_cli) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toolkit")
    data = write_jsonl(root / "toy")
    extra = {"bahdanau": ["--tensorboard", "--set", "train.keep_best=3", "--set", "train.log_every=2"],
             "transformer": []}
    for model, args in extra.items():
        run_cli("train", "--config", tiny(model), "--model", model, "--dataset", data, "--max-steps", 8, "--epochs", 50,
                "--run-dir", root / model, "--set", "train.eval_every=2", *args)
        run_cli("eval", root / model, "--concat", "1,2", "--bootstrap", 20)
    return {model: root / model for model in extra}


def copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / run.name)
    return tmp_path / run.name


# -- TensorBoard -----------------------------------------------------------------------------------

def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of the event files in log_dir, as TensorBoard itself reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_curves_are_logged_at_their_steps_and_a_resume_continues_them(runs, tmp_path, run_cli):
    run = copy(runs["bahdanau"], tmp_path)
    curves = scalars(run / "tensorboard")
    assert set(curves) == {"train/loss", "train/lr", "train/grad_norm", "train/tgt_tok_per_s", "valid/loss",
                           "valid/bleu"}
    metrics = RunDir(run).read_metrics()
    assert [step for step, _ in curves["train/loss"]] == [2, 4, 6, 8]  # every log_every steps
    for tag, key in (("valid/bleu", "val_bleu"), ("valid/loss", "val_loss")):
        assert [step for step, _ in curves[tag]] == [m.step for m in metrics] == [2, 4, 6, 8]
        assert [value for _, value in curves[tag]] == pytest.approx([getattr(m, key) for m in metrics])
    assert all(value > 0 for tag in ("train/loss", "train/grad_norm", "train/lr") for _, value in curves[tag])
    assert not (runs["transformer"] / "tensorboard").exists()  # only where asked for

    run_cli("train", "--resume", run, "--max-steps", 12)
    resumed = scalars(run / "tensorboard")
    assert [step for step, _ in resumed["train/loss"]] == [2, 4, 6, 8, 10, 12]
    assert [step for step, _ in resumed["valid/bleu"]] == [2, 4, 6, 8, 10, 12]
    assert resumed["train/loss"][:4] == curves["train/loss"]
    commands = json.loads((run / "run.json").read_text())["commands"]  # each command that trained the run
    assert len(commands) == 2 and "--tensorboard" in commands[0] and "--resume" in commands[1]


def test_a_resumed_writer_replaces_what_was_logged_after_the_checkpoint(tmp_path):
    """A run killed at step 5 after its checkpoint at step 3 is resumed from step 3: steps 4 and
    5 are logged again, and TensorBoard shows each step once, with its new value."""
    from seq2seq.tensorboard_writer import TensorBoard

    first = TensorBoard(tmp_path, 0)
    for step in range(1, 6):
        first.add(step, {"train/loss": float(step)})
    first.close()
    resumed = TensorBoard(tmp_path, 3)
    for step in range(4, 7):
        resumed.add(step, {"train/loss": 10.0 * step})
    resumed.close()
    assert scalars(tmp_path)["train/loss"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]


# -- checkpoint averaging --------------------------------------------------------------------------

def test_average_writes_the_mean_of_the_kept_checkpoints_which_eval_uses(runs, tmp_path, run_cli):
    run = copy(runs["bahdanau"], tmp_path)
    kept = RunDir(run).kept_checkpoints()
    best_3 = sorted(RunDir(run).read_metrics(), key=lambda m: -m.val_bleu)[:3]  # of 4 validations; ties: the earlier
    steps = sorted(m.step for m in best_3)
    assert [p.name for p in kept] == [f"best-{step}.pt" for step in steps]
    run_cli("average", run, in_process=True)
    avg = torch.load(run / "checkpoints" / "avg.pt", weights_only=True)
    weights = [torch.load(p, weights_only=True)["model"] for p in kept]
    assert avg["model"].keys() == weights[0].keys()
    for name, value in avg["model"].items():
        torch.testing.assert_close(value, sum(w[name] for w in weights) / 3)
    assert avg["averaged_steps"] == steps and not torch.equal(weights[0]["W_o.weight"], weights[2]["W_o.weight"])

    best = (run / "eval" / "test.json").read_text()
    out = run_cli("eval", run, "--checkpoint", "avg", "--bootstrap", 0, "--json", in_process=True).out
    assert json.loads(out)["checkpoint"] == "avg" and json.loads(out)["step"] == steps[-1]
    # its own report, hypotheses and sentences: the best checkpoint's report stays as it was
    assert json.loads((run / "eval" / "test.avg.json").read_text())["checkpoint"] == "avg"
    assert (run / "eval" / "test.avg.hyp.txt").exists() and (run / "eval" / "test.avg.sentences.jsonl").exists()
    assert (run / "eval" / "test.json").read_text() == best
    out = run_cli("translate", run, "--checkpoint", "avg", stdin="eins zwei\n", in_process=True).out
    assert out.count("\n") == 1

    # its report names the steps averaged; compare and report read it beside the best one's
    said = run_cli("eval", run, "--checkpoint", "avg", "--bootstrap", 0, in_process=True).out
    assert f"avg checkpoint, the mean of steps {', '.join(map(str, steps))}" in said
    rows = json.loads(run_cli("compare", run, "--checkpoint", "avg", "--format", "json", in_process=True).out)
    assert (rows[0]["checkpoint"], rows[0]["averaged_steps"]) == ("avg", steps)
    assert rows[0]["bleu"] == json.loads((run / "eval" / "test.avg.json").read_text())["bleu"]
    said = run_cli("compare", run, "--checkpoint", "avg", in_process=True).out
    assert "mean of " + ", ".join(map(str, steps)) in said
    run_cli("report", run, "--checkpoint", "avg", "-o", tmp_path / "avg.html", in_process=True)
    assert "mean of " + ", ".join(map(str, steps)) in (tmp_path / "avg.html").read_text(encoding="utf-8")


def test_keep_best_keeps_the_checkpoints_of_highest_validation_bleu(tmp_path):
    trainer, _ = tiny_trainer(tmp_path)
    saves = trainer.checkpoints
    saves.cfg = saves.cfg.replace({"train.keep_best": 2})
    trainer.run.checkpoints.mkdir()
    for step, bleu in enumerate([1.0, 3.0, 2.0, 5.0, 3.0], start=1):
        trainer.progress.step = step
        saves.keep(trainer.progress, bleu)
    assert trainer.progress.kept == [[5.0, 4], [3.0, 2]]
    assert [p.name for p in trainer.run.kept_checkpoints()] == ["best-2.pt", "best-4.pt"]


# -- n-best ----------------------------------------------------------------------------------------

def test_nbest_prints_n_scored_hypotheses_per_line_best_first(runs, run_cli):
    run = runs["bahdanau"]
    out = run_cli("translate", run, "--beam", 4, "--nbest", 3, stdin="Ein Hund.\nZwei Katzen.\n", in_process=True).out
    rows = [line.split("\t") for line in out.splitlines()]
    assert [int(i) for i, _, _ in rows] == [0, 0, 0, 1, 1, 1]
    for i in (0, 1):
        scores = [float(score) for _, score, _ in rows[3 * i:3 * i + 3]]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)  # log p / len
    best = run_cli("translate", run, "--beam", 4, stdin="Ein Hund.\n\nZwei Katzen.\n", in_process=True).out.split("\n")
    assert [rows[0][2], rows[3][2]] == [best[0], best[2]]  # the first of the n is the beam's translation
    # an empty line has no hypotheses; the indexes are those of the input lines
    gapped = run_cli("translate", run, "--beam", 2, "--nbest", 2, stdin="Ein Hund.\n\nZwei Katzen.\n",
                     in_process=True).out
    assert [line.split("\t")[0] for line in gapped.splitlines()] == ["0", "0", "2", "2"]


def test_nbest_numbers_the_input_lines_across_translate_chunks(runs, run_cli, monkeypatch):
    """translate streams a chunk of lines at a time: an index is that of the line in the whole input."""
    monkeypatch.setattr("seq2seq.commands.decoding.TRANSLATE_CHUNK", 2)
    out = run_cli("translate", runs["bahdanau"], "--beam", 2, "--nbest", 2,
                  stdin="Ein Hund.\n\nZwei Katzen.\nDrei.\nVier.\n", in_process=True).out
    assert [line.split("\t")[0] for line in out.splitlines()] == ["0", "0", "2", "2", "3", "3", "4", "4"]


# -- progress bars ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["translate"], ["eval", "--bootstrap", "0"]])
def test_a_progress_bar_on_a_terminal_and_nothing_in_a_pipe(runs, tmp_path, run_cli, command):
    run = copy(runs["transformer"], tmp_path)
    stdin = "eins zwei\ndrei\n"
    _, piped, err = run_cli(command[0], run, *command[1:], stdin=stdin, in_process=True)
    assert err == ""
    main, terminal = pty.openpty()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "xterm", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", command[0], str(run), *command[1:]],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=terminal, env=env)
    os.close(terminal)
    shown = []  # read as it comes, so that a full terminal never blocks the process
    reader = threading.Thread(target=lambda: shown.append(read_all(main)))
    reader.start()
    out, _ = proc.communicate(stdin.encode(), timeout=120)
    reader.join(timeout=30)
    os.close(main)
    assert proc.returncode == 0
    shown = shown[0]
    label, total = ("translate", 2) if command[0] == "translate" else ("test", 40)
    assert re.search(rf"{label}.*{total}/{total}", re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", shown.decode())), shown
    assert out.decode() == piped  # the bar never reaches stdout


def read_all(fd: int) -> bytes:
    """Everything written to a terminal until its other end is closed."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other end is closed
            return data
        if not chunk:
            return data
        data += chunk


# -- the HTML report -------------------------------------------------------------------------------

class Page(HTMLParser):
    """The tags of a page, with their attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, name: str) -> list[dict]:
        return [attrs for tag, attrs in self.tags if tag == name]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory, run_cli) -> Path:
    out = tmp_path_factory.mktemp("report") / "r.html"
    run_cli("report", runs["bahdanau"], runs["transformer"], "-o", out)
    return out


def test_report_is_one_self_contained_file(report, runs):
    assert [p.name for p in report.parent.iterdir()] == ["r.html"]  # no temporary, no image beside it
    text = report.read_text(encoding="utf-8")
    page = Page(text)
    assert len(page.all("table")) >= 4  # comparison, examples, signatures, one per run
    images = page.all("img")
    assert len(images) == 5  # length and concatenation figures, curves, two attention maps
    assert all(img["src"].startswith("data:image/svg+xml;base64,") and img.get("alt") for img in images)
    links = [value for _, attrs in page.tags for key, value in attrs.items() if key in ("src", "href")]
    assert not [link for link in links if not link.startswith("data:")]  # nothing to fetch, offline or not
    assert not page.all("script") and "http://" not in text and "https://" not in text
    for run in runs.values():
        assert str(run) in text and json.loads((run / "eval" / "test.json").read_text())["signature"]["bleu"] in text
    assert "config.yaml" in text and "--tensorboard" in text  # each run's config and the command that trained it
    assert text.count('class="ref"') == 1 + 5  # the examples: a header and 5 references


def test_report_with_a_baseline_shows_the_p_values_of_compare(report, runs, tmp_path, run_cli):
    assert "p (test BLEU)" not in report.read_text(encoding="utf-8")
    runs_and_baseline = [runs["bahdanau"], runs["transformer"], "--baseline", runs["bahdanau"]]
    run_cli("report", *runs_and_baseline, "-o", tmp_path / "p.html", in_process=True)
    rows = json.loads(run_cli("compare", *runs_and_baseline, "--format", "json", in_process=True).out)
    text = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert rows[0]["p_value"] is None and rows[1]["p_value"] is not None
    assert "p (test BLEU)" in text and '<td class="num">baseline</td>' in text
    assert f'<td class="num">{rows[1]["p_value"]:.3f}</td>' in text


def render(page: Path, screenshot: Path) -> list[str]:
    """Render a page in headless Chromium with no network; returns the console messages it logged."""
    result = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
                             f"--screenshot={screenshot}", "--window-size=1280,2400", page.as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and screenshot.exists(), result.stderr[-2000:]
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(browser() is None, reason=NO_BROWSER)
def test_report_renders_in_a_browser_without_console_errors(report, tmp_path):
    broken = tmp_path / "broken.html"  # first, that the console is heard: a page with a script error
    broken.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    assert any("undefinedFunction" in line for line in render(broken, tmp_path / "broken.png"))

    screenshot = tmp_path / "report.png"
    assert render(report, screenshot) == []
    pixels = imread(screenshot)[..., :3]  # (H, W, 3) in [0, 1]
    assert pixels.shape[:2] == (2400, 1280)
    drawn = (pixels < 0.9).any(-1).mean()  # the share of pixels that are not (nearly) white
    assert 0.02 < drawn < 0.9 and np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 50
