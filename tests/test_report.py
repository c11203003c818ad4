"""The length study's tools: `compare` (table, csv, json, markdown and figures), `translate`
(stdin to stdout, and the attention plot).

Three tiny runs are trained once for the module: bahdanau and transformer are evaluated, rnn is
not (it is the run without an eval report, and the model without attention). The CLI runs in
this process where it can, to spare an interpreter start per call; the two failure cases run
in a subprocess, where "one line on stderr, no traceback" is what a user would see.
"""

import csv
import io
import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from seq2seq.commands.decoding import TRANSLATE_CHUNK
from seq2seq.data import concatenate
from seq2seq.compare import load_comparison
from seq2seq.evaluate import attention_map, load_run
from seq2seq.metrics import bleu_from_stats, sentence_bleu, sentence_stats
from seq2seq.plots import curves_figure, length_figure, position_figure
from seq2seq.tables import render_comparison, run_labels
from seq2seq.rundir import RunDir
from tests.conftest import tiny, write_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVALUATED = ("bahdanau", "transformer")
ADDED = ("nll", "nll_ci_low", "nll_ci_high", "len_ratio")  # figures of each part of a report since the NLL


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_cli) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("study")
    data = write_jsonl(root / "toy")
    made = {}
    for model in ("rnn", *EVALUATED):
        run = root / model
        run_cli("train", "--config", tiny(model), "--model", model, "--dataset", data, "--max-steps", 4, "--run-dir", run,
                "--set", "train.eval_every=2")
        if model in EVALUATED:
            run_cli("eval", run, "--concat", "1,2", "--bootstrap", 50)
        made[model] = run
    return made


def evaluated(runs) -> list[Path]:
    return [runs[m] for m in EVALUATED]


def toy_test_set(run: Path, k: int) -> tuple[list[str], list[str]]:
    """The sources and references of a run's toy test set, k consecutive pairs joined."""
    lines = (Path(RunDir(run).read_config().data.dataset) / "test.jsonl").read_text().splitlines()
    joined = concatenate([(row["de"], row["en"]) for row in map(json.loads, lines)], k)
    return [s for s, _ in joined], [t for _, t in joined]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width, channels = imread(path).shape
    assert height > 100 and width > 100 and channels in (3, 4)


# -- compare ---------------------------------------------------------------------------------------

def test_compare_table_has_one_row_per_run(runs, run_cli):
    out = run_cli("compare", *evaluated(runs), in_process=True).out
    header, rule, *rows = out.splitlines()
    assert header.split()[:3] == ["run", "model", "params"] and set(rule) <= {"-", " "}
    assert [row.split()[:2] for row in rows] == [[str(runs[m]), m] for m in EVALUATED]
    assert "1-10 words" in header and "k=2" in header


def test_compare_json_carries_every_figure_of_the_table(runs, run_cli):
    rows = json.loads(run_cli("compare", *evaluated(runs), "--format", "json", in_process=True).out)
    assert [row["model"] for row in rows] == list(EVALUATED)
    for row, run in zip(rows, evaluated(runs)):
        report = json.loads((run / "eval" / "test.json").read_text())
        info = json.loads((run / "run.json").read_text())
        assert row["run"] == str(run) and row["params"] == info["params"] > 0
        assert (row["bleu"], row["chrf"]) == (report["bleu"], report["chrf"])
        assert row["steps"] == info["steps"] == 4
        assert (row["train_seconds"], row["val_bleu"]) == (info["train_seconds"], info["best_val_bleu"])
        assert [row[key] for key in ADDED] == [report[key] for key in ADDED]
        assert [set(b) for b in row["buckets"]] == [{"range", "n", "bleu", "ci_low", "ci_high", *ADDED}] * 4
        assert [b["range"] for b in row["buckets"]] == ["1-10", "11-15", "16-20", "21+"]
        assert [set(c) for c in row["concat"]] == [{"k", "n", "src_words", "bleu", "ci_low", "ci_high", *ADDED,
                                                    "position_nll"}] * 2
        assert [(c["k"], c["n"]) for c in row["concat"]] == [(1, 40), (2, 20)]
        assert row["concat"][0]["ci_low"] <= row["concat"][0]["bleu"] <= row["concat"][0]["ci_high"]


def test_compare_csv_and_markdown(runs, run_cli):
    out = run_cli("compare", *evaluated(runs), "--format", "csv", in_process=True).out
    records = list(csv.DictReader(io.StringIO(out)))
    assert [r["model"] for r in records] == list(EVALUATED)
    assert {"bleu", "chrf", "train_seconds", "bleu 1-10", "ci_low 1-10", "bleu k=2", "src_words k=2"} <= set(records[0])
    lines = run_cli("compare", *evaluated(runs), "--format", "markdown", in_process=True).out.splitlines()
    assert len(lines) == 2 + len(EVALUATED) and all(line.startswith("| ") and line.endswith(" |") for line in lines)
    assert set(lines[1].replace("|", "").split()) <= {"---", "---:"}


def test_compare_plots_one_line_per_run(runs, run_cli, tmp_path):
    run_cli("compare", *evaluated(runs), "--plot", tmp_path / "study.png", "--curves", tmp_path / "curves.png",
            in_process=True)
    assert_png(tmp_path / "study.png")
    assert_png(tmp_path / "curves.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "study.png"]  # no temporary left

    rows = load_comparison(evaluated(runs))
    by_length, by_concat = length_figure(rows).axes
    for ax in (by_length, by_concat):
        assert [line.get_label() for line in ax.get_lines()] == list(EVALUATED)
    assert len(by_concat.collections) == len(EVALUATED)  # one shaded 95% band per run
    by_step, by_time = curves_figure(rows, [RunDir(r).read_metrics() for r in evaluated(runs)]).axes
    assert [list(line.get_xdata()) for line in by_step.get_lines()] == [[2, 4]] * len(EVALUATED)
    assert len(by_time.get_lines()) == len(EVALUATED)


def test_compare_svg(runs, run_cli, tmp_path):
    run_cli("compare", runs["bahdanau"], "--plot", tmp_path / "study.svg", in_process=True)
    assert b"<svg" in (tmp_path / "study.svg").read_bytes()[:1000]


def test_compare_needs_an_eval_report(runs, run_cli):
    result = run_cli("compare", runs["bahdanau"], runs["rnn"], expect=2)
    assert result.out == ""
    assert result.err == f"error: run {runs['rnn']} has no eval/test.json: run `seq2seq eval {runs['rnn']}` first\n"


def test_an_eval_on_another_dataset_keeps_the_report_on_the_runs_own(runs, run_cli, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["bahdanau"], run)
    own = (run / "eval" / "test.json").read_text()
    other, namesake = write_jsonl(tmp_path / "a" / "x"), write_jsonl(tmp_path / "b" / "x", sizes=(10, 10, 7))
    for dataset in (other, namesake):  # two datasets of the same name, each in a folder of its own
        run_cli("eval", run, "--dataset", dataset, "--bootstrap", 0, in_process=True)
    reports = sorted((run / "eval").glob("x-*/test.json"))
    assert len(reports) == 2 and {json.loads(r.read_text())["n"] for r in reports} == {40, 7}
    assert json.loads(RunDir(run).report(dataset=str(other)).read_text())["dataset"] == str(other)
    assert (run / "eval" / "test.json").read_text() == own
    # a report that says it scored another dataset (as older versions wrote them) is refused
    (run / "eval" / "test.json").write_text(json.dumps(json.loads(own) | {"dataset": str(other)}))
    _, out, err = run_cli("compare", run, in_process=True, expect=2)
    assert out == "" and err.count("\n") == 1
    assert f"scores dataset {other}, not the run's own" in err


def test_reports_are_kept_per_checkpoint_and_compare_says_which_step_it_scores(runs, run_cli, tmp_path):
    run = shutil.copytree(runs["bahdanau"], tmp_path / "run")
    best = (run / "eval" / "test.json").read_text()
    run_cli("eval", run, "--checkpoint", "last", "--bootstrap", 0, in_process=True)
    assert json.loads((run / "eval" / "test.last.json").read_text())["checkpoint"] == "last"
    assert (run / "eval" / "test.last.hyp.txt").exists() and (run / "eval" / "test.json").read_text() == best
    assert (run / "eval" / "test.last.sentences.jsonl").exists()
    _, out, err = run_cli("compare", run, in_process=True)
    header, _, row = out.splitlines()
    assert err == "" and "eval step" in header
    # the run trains on and its best checkpoint moves past the step the report scored (run.json says where)
    step = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["progress"]["step"]
    assert json.loads((run / "run.json").read_text())["best_step"] == step
    RunDir(run).update_info(best_step=144)
    _, out, err = run_cli("compare", run, "--format", "json", in_process=True)
    assert json.loads(out)[0]["step"] == step == json.loads(best)["step"]
    assert err == (f"warning: {run}/eval/test.json scores the checkpoint of step {step}, but the run's best "
                   f"checkpoint is now of step 144: run `seq2seq eval {run}` again\n")


@pytest.mark.parametrize("args, message", [
    (["--format", "html"], "--format must be one of table, csv, json, markdown, got 'html'"),
    (["--beam", "5"], "has no eval/test.beam5.json: run `seq2seq eval"),
    (["--plot", "study.jpg"], "a plot file must end in .png or .svg"),
])
def test_compare_mistakes_are_one_line(runs, run_cli, tmp_path, args, message):
    _, out, err = run_cli("compare", runs["bahdanau"], *args, in_process=True, expect=2)
    assert out == "" and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


# -- the reference's likelihood, significance, examples ---------------------------------------------

def parts(row: dict) -> list[dict]:
    """A report's or a row's figures: overall, each bucket, each k."""
    return [row, *row["buckets"], *row["concat"]]


def test_eval_reports_nll_and_length_ratio_overall_by_bucket_and_by_k(runs):
    for model in EVALUATED:
        report = json.loads((runs[model] / "eval" / "test.json").read_text())
        for part in parts(report):
            assert set(ADDED) <= set(part)
            assert part["n"] == 0 or part["nll_ci_low"] <= part["nll"] <= part["nll_ci_high"] and part["len_ratio"] > 0
        assert report["nll"] == report["concat"][0]["nll"] and report["len_ratio"] == report["concat"][0]["len_ratio"]
        hyps = (runs[model] / "eval" / "test.hyp.txt").read_text().split("\n")[:-1]
        corpus = BLEU().corpus_score(hyps, [toy_test_set(runs[model], 1)[1]])
        assert report["len_ratio"] == round(corpus.sys_len / corpus.ref_len, 3)
        assert [len(c["position_nll"]) for c in report["concat"]] == [10, 10]
        assert report["position_nll"] == report["concat"][1]["position_nll"]  # the largest k's
        assert all(isinstance(x, float) for x in report["position_nll"])


def test_score_prints_each_references_nll_and_token_count_in_order(runs, run_cli):
    run = runs["bahdanau"]
    report = json.loads((run / "eval" / "test.json").read_text())
    tok = load_run(run).tok
    for k, part in [(1, report), (2, report["concat"][1])]:
        out = run_cli("score", run, "--concat", k, in_process=True).out
        lines = [line.split("\t") for line in out.splitlines()]
        assert [int(n) for _, n in lines] == [len(ids) + 1 for ids in tok.encode(toy_test_set(run, k)[1])]
        assert sum(float(nll) for nll, _ in lines) / sum(int(n) for _, n in lines) == \
            pytest.approx(part["nll"], abs=1e-3)


def test_compare_gives_each_run_its_p_value_against_the_baseline(runs, run_cli):
    base, other = runs["bahdanau"], runs["transformer"]
    _, out, err = run_cli("compare", other, base, base, "--baseline", base, "--format", "json", in_process=True)
    assert err == ""
    rows = json.loads(out)
    assert all(part["p_value"] is None for part in parts(rows[1]))  # the baseline
    assert all((part["p_value"] is None) == (part["n"] == 0) for part in parts(rows[0]))
    assert all(part["p_value"] == 1.0 for part in parts(rows[2]) if part["n"])  # the baseline against itself
    # the whole test set: what sacreBLEU's own paired bootstrap test says of the two runs' hypotheses
    hyps = [(run / "eval" / "test.hyp.txt").read_text().split("\n")[:-1] for run in (base, other)]
    _, scores = PairedTest([("base", hyps[0]), ("other", hyps[1])], {"BLEU": BLEU()}, [toy_test_set(base, 1)[1]],
                           test_type="bs")()
    assert rows[0]["p_value"] == round(scores["BLEU"][1].p_value, 4)

    for fmt in ("table", "markdown"):
        lines = run_cli("compare", other, base, "--baseline", base, "--format", fmt, in_process=True).out.splitlines()
        assert lines[-2].count(" p=") == 1 + 1 + 2 and " p=" not in lines[-1]  # all, 1-10, k=1,2
    out = run_cli("compare", other, base, "--baseline", base, "--format", "csv", in_process=True).out
    records = list(csv.DictReader(io.StringIO(out)))
    assert float(records[0]["p_value k=2"]) == rows[0]["concat"][1]["p_value"] and records[1]["p_value k=2"] == ""


def trained_on(dataset: Path, run: Path, run_cli) -> Path:
    """A tiny transformer run trained and evaluated on `dataset`."""
    run_cli("train", "--config", tiny("transformer"), "--model", "transformer", "--dataset", dataset, "--max-steps", 4,
            "--run-dir", run, in_process=True)
    run_cli("eval", run, "--concat", "1,2", "--bootstrap", 0, in_process=True)
    return run


def test_compare_pairs_runs_by_their_test_sentences_not_by_where_they_were_read(runs, run_cli, tmp_path):
    base = runs["bahdanau"]
    data = Path(RunDir(base).read_config().data.dataset)
    same = trained_on(shutil.copytree(data, tmp_path / "copy"), tmp_path / "same", run_cli)
    rows = json.loads(run_cli("compare", same, base, "--baseline", base, "--format", "json", in_process=True).out)
    assert all(isinstance(part["p_value"], float) for part in parts(rows[0]) if part["n"])
    # the same sentences in another order cannot be paired
    shuffled = shutil.copytree(data, tmp_path / "shuffled")
    lines = (shuffled / "test.jsonl").read_text().splitlines()
    (shuffled / "test.jsonl").write_text("\n".join(lines[::-1]) + "\n")
    other = trained_on(shuffled, tmp_path / "other", run_cli)
    for option in (["--baseline", base], ["--examples", 1]):
        _, out, err = run_cli("compare", other, base, *option, in_process=True, expect=2)
        assert out == "" and err.count("\n") == 1
        assert f"{option[0]} pairs the runs' test sentences, but {other} and {base} were evaluated on different ones" in err
        assert "test sentence 1: references of " in err
    # a report without its sentences' statistics (an older version's) pairs by the dataset it names
    (same / "eval" / "test.sentences.jsonl").unlink()
    _, out, err = run_cli("compare", same, base, "--baseline", base, in_process=True, expect=2)
    assert out == "" and err.count("\n") == 1 and f"({tmp_path / 'copy'}, {data})" in err


def with_scores(run: Path, dest: Path, dropped: dict[int, int], bootstrap: int) -> dict:
    """A copy of an evaluated run whose outputs at each k are its references without their last
    `dropped[k]` words: its sentences' statistics and its report's BLEU made to match (a toy run's
    BLEU is too close to 0 for a ratio). Returns the report."""
    shutil.copytree(run, dest)
    report = json.loads((dest / "eval" / "test.json").read_text())
    records = []
    for c in report["concat"]:
        refs = toy_test_set(dest, c["k"])[1]
        stats = sentence_stats([" ".join(r.split()[:-dropped[c["k"]]]) for r in refs], refs)
        c["bleu"] = round(bleu_from_stats(stats), 2)
        records += [{"k": c["k"], "bleu_stats": s} | ({"range": "1-10"} if c["k"] == 1 else {}) for s in stats]
    report |= {"bleu": report["concat"][0]["bleu"], "bootstrap": bootstrap}
    (dest / "eval" / "test.json").write_text(json.dumps(report))
    (dest / "eval" / "test.sentences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return report


def test_compare_gives_the_ratio_of_bleu_at_the_largest_k_to_k1(runs, run_cli, tmp_path):
    reports = [with_scores(runs["bahdanau"], tmp_path / f"b{n}", {1: 1, 2: 3}, n) for n in (200, 0)]
    rows = json.loads(run_cli("compare", tmp_path / "b200", tmp_path / "b0", "--format", "json", in_process=True).out)
    for row, report in zip(rows, reports):
        k1, k2 = report["concat"]
        assert row["k_ratio"]["k"] == 2 and row["k_ratio"]["ratio"] == round(100 * k2["bleu"] / k1["bleu"], 1) < 100
    assert rows[0]["k_ratio"]["ci_low"] < rows[0]["k_ratio"]["ratio"] < rows[0]["k_ratio"]["ci_high"]
    assert rows[1]["k_ratio"]["ci_low"] is rows[1]["k_ratio"]["ci_high"] is None  # --bootstrap 0
    ratio = rows[0]["k_ratio"]
    for fmt in ("table", "markdown"):
        out = run_cli("compare", tmp_path / "b200", tmp_path / "b0", "--format", fmt, in_process=True).out
        header, _, with_interval, without = out.splitlines()
        assert "k=2 / k=1" in header
        assert f"{ratio['ratio']:.1f}% [{ratio['ci_low']:.1f}, {ratio['ci_high']:.1f}]" in with_interval
        assert f"{rows[1]['k_ratio']['ratio']:.1f}%" in without and "%  [" not in without
    out = run_cli("compare", tmp_path / "b200", "--format", "csv", in_process=True).out
    record, = csv.DictReader(io.StringIO(out))
    assert [float(record[key]) for key in ("k_ratio k", "k_ratio", "k_ratio ci_low", "k_ratio ci_high")] == \
        [ratio["k"], ratio["ratio"], ratio["ci_low"], ratio["ci_high"]]


def test_compare_reads_reports_of_older_versions(runs, run_cli, tmp_path):
    """A report without the NLL and without the sentences' statistics: blanks, and no p-values."""
    old = tmp_path / "old"
    shutil.copytree(runs["bahdanau"], old)
    report = json.loads((old / "eval" / "test.json").read_text())
    for part in parts(report):
        for key in (*ADDED, "position_nll"):
            part.pop(key, None)
    (old / "eval" / "test.json").write_text(json.dumps(report))
    (old / "eval" / "test.sentences.jsonl").unlink()
    _, out, err = run_cli("compare", runs["transformer"], old, "--baseline", old, "--format", "json", in_process=True)
    assert err.startswith(f"warning: {old} has no test.sentences.jsonl") and err.count("\n") == 1
    rows = json.loads(out)
    assert all(part["p_value"] is None for row in rows for part in parts(row))
    assert all(part[key] is None for part in parts(rows[1]) for key in ADDED)
    assert rows[1]["k_ratio"] is None
    out = run_cli("compare", old, in_process=True).out
    assert out.splitlines()[-1].split()[11:13] == ["-", "-"]  # test NLL, length ratio
    with_scores(runs["bahdanau"], tmp_path / "new", {1: 1, 2: 3}, 50)
    out = run_cli("compare", tmp_path / "new", old, "--format", "markdown", in_process=True).out
    header, _, new, older = [line.split(" | ") for line in out.splitlines()]
    assert new[header.index("k=2 / k=1")].endswith("]") and older[header.index("k=2 / k=1")] == "-"


def test_position_plot_draws_one_curve_per_run(runs, run_cli, tmp_path):
    run_cli("compare", *evaluated(runs), "--plot-position", tmp_path / "position.png", in_process=True)
    assert_png(tmp_path / "position.png")
    ax, = position_figure(load_comparison(evaluated(runs))).axes
    assert [line.get_label() for line in ax.get_lines()] == list(EVALUATED)
    for line, run in zip(ax.get_lines(), evaluated(runs)):
        report = json.loads((run / "eval" / "test.json").read_text())
        assert list(line.get_xdata()) == [5 + 10 * b for b in range(10)]
        assert list(line.get_ydata()) == report["concat"][1]["position_nll"]  # k=2, the largest


def test_examples_are_where_the_runs_sentence_bleu_differs_most(runs, run_cli):
    out = run_cli("compare", *evaluated(runs), "--examples", 3, in_process=True).out
    blocks = out.split("\n\n")[1:]
    assert len(blocks) == 3
    sources, refs = toy_test_set(runs["bahdanau"], 2)
    hyps = [(runs[m] / "eval" / "test.concat2.hyp.txt").read_text().split("\n")[:-1] for m in EVALUATED]
    spread = [abs(a - b) for a, b in zip(*(sentence_bleu(h, refs) for h in hyps))]
    shown = [int(block.split("joined pair ")[1].split()[0]) - 1 for block in blocks]
    assert [spread[i] for i in shown] == sorted(spread, reverse=True)[:3]
    for block, i in zip(blocks, shown):
        lines = block.splitlines()
        assert lines[1].split(None, 1)[1] == sources[i] and lines[2].split(None, 1)[1] == refs[i]
        assert [line.split()[0] for line in lines[3:]] == list(EVALUATED)
        assert [line.split(None, 2)[2:] for line in lines[3:]] == [[h[i]] if h[i] else [] for h in hyps]


def test_run_labels_name_the_dir_only_where_models_repeat():
    rows = [{"model": "lstm", "run": "runs/a"}, {"model": "bahdanau", "run": "runs/b"},
            {"model": "lstm", "run": "runs/c"}]
    assert run_labels(rows) == ["lstm (a)", "bahdanau", "lstm (c)"]


def test_table_marks_what_a_run_did_not_measure():
    def row(model, buckets, concat):
        return {"run": model, "model": model, "params": 1_234_567, "steps": 100, "train_seconds": 3725.0,
                "val_bleu": None, "checkpoint": "best", "step": 80, "beam": 1, "n": 10, "bleu": 20.0,
                "ci_low": None, "ci_high": None, "chrf": 45.0, "buckets": buckets, "concat": concat}

    bucket = {"range": "1-10", "n": 10, "bleu": 20.0, "ci_low": 18.0, "ci_high": 22.04}
    empty = {"range": "11+", "n": 0, "bleu": 0.0, "ci_low": None, "ci_high": None}
    tested = {"k": 2, "src_words": 14.0, **bucket, "nll": 2.5, "nll_ci_low": 2.4, "nll_ci_high": 2.61,
              "p_value": 0.0123}
    rows = [row("a", [bucket, empty], []), row("b", [bucket], [tested])]  # a: a report without the NLL
    header, _, a, b = render_comparison(rows, "table").splitlines()
    assert header.split() == ["run", "model", "params", "steps", "eval", "step", "train", "val", "BLEU", "test",
                              "BLEU", "chrF", "test", "NLL", "len", "ratio", "1-10", "words", "11+", "words", "k=2",
                              "NLL", "k=2"]
    assert a.split() == ["a", "a", "1.2M", "100", "80", "1h02m", "-", "20.0", "45.0", "-", "-", "20.0", "[18.0,",
                         "22.0]", "-", "-", "-"]
    assert b.split()[-8:] == ["-", "20.0", "[18.0,", "22.0]", "p=0.012", "2.50", "[2.40,", "2.61]"]
    assert a.index("1.2M") + len("1.2M") == header.index("params") + len("params")  # figures align right
    flat = list(csv.DictReader(io.StringIO(render_comparison(rows, "csv"))))
    assert flat[0]["bleu k=2"] == "" and flat[1]["bleu k=2"] == "20.0"
    assert (flat[0]["nll"], flat[1]["nll k=2"]) == ("", "2.5")


# -- translate -------------------------------------------------------------------------------------

def test_translate_writes_one_line_per_input_line_in_order(runs, run_cli):
    """The test sources, with an empty line among them, come back as eval's own hypotheses."""
    run = runs["bahdanau"]
    test_set = Path(RunDir(run).read_config().data.dataset) / "test.jsonl"
    sources = [json.loads(line)["de"] for line in test_set.read_text().splitlines()]
    out = run_cli("translate", run, stdin="\n".join(sources[:5] + [""] + sources[5:]) + "\n", in_process=True).out
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == len(sources) + 1 and lines[5] == ""
    hyps = (run / "eval" / "test.hyp.txt").read_text().split("\n")[:-1]
    assert lines[:5] + lines[6:-1] == hyps


def test_translate_prints_as_it_reads(runs):
    """A pipe of many lines is translated a chunk at a time: the first lines come back while
    stdin is still open, and every line gets one, in order."""
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", "translate", runs["bahdanau"]], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    proc.stdin.write("eins zwei\n" * TRANSLATE_CHUNK)
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    assert ready, "nothing printed before stdin closed"
    first = proc.stdout.readline()
    proc.stdin.write("\ndrei\n")
    proc.stdin.close()
    out = [first, *proc.stdout.readlines()]
    assert proc.wait() == 0
    assert len(out) == TRANSLATE_CHUNK + 2 and out[:TRANSLATE_CHUNK] == [first] * TRANSLATE_CHUNK and out[-2] == "\n"


def test_sources_longer_than_the_positions_are_cut_and_said_so(runs, run_cli, tmp_path):
    run = tmp_path / "short"
    data = Path(RunDir(runs["transformer"]).read_config().data.dataset)
    run_cli("train", "--config", tiny("transformer"), "--model", "transformer", "--dataset", data, "--max-steps", 1,
            "--run-dir", run, "--set", "model.max_positions=6")
    _, out, err = run_cli("translate", run, stdin="eins\n" + "eins zwei drei vier fünf sechs sieben\n" * 2,
                          in_process=True)
    assert len(out.splitlines()) == 3
    assert err == ("warning: 2 sources longer than the model's 5 tokens were cut to fit; their translation covers "
                   "the beginning only\n")
    err = run_cli("eval", run, "--bootstrap", 0, "--concat", "1,2", in_process=True).err.splitlines()
    assert len(err) == 2 and "sources longer than the model's 5 tokens were cut" in err[0]
    assert err[1].startswith("warning: ") and err[1].endswith("references longer than the model's 5 tokens were cut "
                                                             "to fit; their NLL covers the beginning only")
    # score --concat 7: every joined reference is longer than 5 tokens, and each joined source
    scored = run_cli("score", run, "--concat", 7, in_process=True)
    n = len(scored.out.splitlines())
    assert all(int(line.split("\t")[1]) == 6 for line in scored.out.splitlines())  # 5 tokens and EOS
    assert scored.err.splitlines() == [f"warning: {n} sources longer than the model's 5 tokens were cut to fit; "
                                       "their reference's NLL is conditioned on the beginning only",
                                       f"warning: {n} references longer than the model's 5 tokens were cut to fit; "
                                       "their NLL covers the beginning only"]


def test_translate_of_nothing_is_nothing(runs, run_cli):
    assert run_cli("translate", runs["transformer"], stdin="", in_process=True) == (0, "", "")
    assert run_cli("translate", runs["transformer"], stdin="\n\n", in_process=True) == (0, "\n\n", "")


@pytest.mark.parametrize("model, layer", [("bahdanau", None), ("transformer", None), ("transformer", 0)])
def test_attention_plot(runs, run_cli, tmp_path, model, layer):
    sentence = "eins zwei drei vier"
    plot = tmp_path / "attention.png"
    pick = ["--layer", layer] if layer is not None else []
    out = run_cli("translate", runs[model], "--attention-plot", plot, *pick, stdin=sentence + "\n", in_process=True).out
    assert_png(plot)
    loaded = load_run(runs[model])
    amap = attention_map(loaded, sentence, layer)
    assert out == amap.translation + "\n"
    assert amap.source == loaded.tok.pieces(loaded.tok.encode([sentence])[0]) + ["</s>"] and amap.target[-1] == "</s>"
    assert amap.weights.shape == (len(amap.target), len(amap.source))
    np.testing.assert_allclose(amap.weights.sum(1), 1.0, atol=1e-5)  # each output step's weights sum to 1


def test_attention_plot_needs_a_model_with_attention(runs, run_cli, tmp_path):
    plot = tmp_path / "attention.png"
    result = run_cli("translate", runs["rnn"], "--attention-plot", plot, stdin="eins zwei\n", expect=2)
    assert result.out == "" and not plot.exists()
    assert result.err.startswith("error: model rnn has no attention") and result.err.count("\n") == 1
    assert "Traceback" not in result.err


@pytest.mark.parametrize("model, args, stdin, message", [
    ("bahdanau", ["--attention-plot", "a.png"], "eins\nzwei\n", "exactly one non-empty line on stdin, got 2 lines"),
    ("bahdanau", ["--attention-plot", "a.png"], "\n", "exactly one non-empty line on stdin, got 1 line"),
    ("bahdanau", ["--attention-plot", "a.png", "--beam", "3"], "eins\n", "drop --beam"),
    ("bahdanau", ["--attention-plot", "a.png", "--layer", "0"], "eins\n", "--layer picks a Transformer decoder layer; model bahdanau has no layers of attention"),
    ("transformer", ["--attention-plot", "a.png", "--layer", "1"], "eins\n", "--layer must be between -1 and 0"),
    ("transformer", ["--layer", "0"], "eins\n", "it needs --attention-plot"),
    ("transformer", ["--attention-plot", "a.pdf"], "eins\n", "a plot file must end in .png or .svg"),
])
def test_translate_mistakes_are_one_line(runs, run_cli, tmp_path, monkeypatch, model, args, stdin, message):
    monkeypatch.chdir(tmp_path)
    _, out, err = run_cli("translate", runs[model], *args, stdin=stdin, in_process=True, expect=2)
    assert out == "" and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
