"""`seq2seq study`: a study file trained, evaluated and compared by one command; the attention
forms of the bahdanau network, each trained and evaluated for real."""

import json
import re
import shutil

import pytest

from tests.conftest import MULTI30K, ROOT, tiny

TINY_STUDY = ROOT / "tests" / "tiny-study.yaml"  # 2 variants x 2 seeds x 20 updates on 2,000 pairs
DATA = {"SEQ2SEQ_DATASET": str(MULTI30K)}


def without_wall_time(table: str) -> str:
    """A markdown table without its column of training wall time, the one figure a rerun changes."""
    rows = [line.split(" | ") for line in table.splitlines()]
    at = rows[0].index("train")
    return "\n".join(" | ".join(cells[:at] + cells[at + 1:]) for cells in rows)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from tests.conftest import cli

    out = tmp_path_factory.mktemp("study") / "tiny"
    ran = cli("study", TINY_STUDY, "--out", out, "--jobs", "2", env=DATA)
    return out, ran


def test_a_study_trains_every_variant_and_seed_evaluates_and_compares_them(tiny_study):
    out, ran = tiny_study
    for variant in ("none", "additive"):
        for seed in (1, 2):
            run = out / variant / f"seed{seed}"
            info = json.loads((run / "run.json").read_text())
            assert info["steps"] == 20 and info["variant"] == variant
            assert f"--seed {seed}" in info["command"] and f"model.attention={variant}" in info["command"]
            assert (run / "eval" / "test.json").exists() and (run / "eval" / "test.concat2.hyp.txt").exists()
    for name in ("table.md", "table.json", "concat.png", "length.png", "position.png", "curves.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert re.search(r"training and evaluation took \d+m\d\ds, the comparison \d+m\d\ds", ran.err)
    assert "training none seed 1 took" in ran.err and "evaluating additive seed 2 took" in ran.err


def test_the_study_table_has_one_row_per_variant_with_its_seeds(tiny_study, run_cli):
    out, _ = tiny_study
    rows = json.loads((out / "table.json").read_text())
    assert [(r["variant"], r["seeds"]) for r in rows] == [("none", 2), ("additive", 2)]
    none = rows[0]
    assert none["runs"] == [str(out / "none" / "seed1"), str(out / "none" / "seed2")]
    assert len(none["p_values"]) == 2 and rows[1].get("p_values") is None  # additive is the baseline
    # compare groups the same runs given in any order, from the shell
    runs = [out / v / f"seed{s}" for s in (2, 1) for v in ("additive", "none")]
    shown = json.loads(run_cli("compare", *runs, "--baseline", runs[0], "--format", "json").out)
    assert [(r["variant"], r["seeds"]) for r in shown] == [("additive", 2), ("none", 2)]
    assert shown[1]["bleu"] == rows[0]["bleu"] and shown[1]["nll"] == rows[0]["nll"]


def test_a_study_run_again_trains_nothing_and_writes_the_same_table(tiny_study, run_cli):
    out, _ = tiny_study
    before = (out / "table.md").read_text()
    again = run_cli("study", TINY_STUDY, "--out", out, env=DATA)
    assert "training" not in again.err.replace("training and evaluation took", "")
    assert "evaluating" not in again.err
    assert (out / "table.md").read_text() == before


def test_the_same_study_on_the_cpu_gives_the_same_numbers(tiny_study, run_cli, tmp_path):
    out, _ = tiny_study
    other = tmp_path / "again"
    run_cli("study", TINY_STUDY, "--out", other, "--jobs", "1", env=DATA)  # another order, other threads
    mine = without_wall_time((out / "table.md").read_text())
    assert without_wall_time((other / "table.md").read_text()).replace(str(other), str(out)) == mine


def test_an_unfinished_study_resumes_its_runs_and_compares_only_when_all_finished(tiny_study, run_cli, tmp_path):
    out, _ = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    for name in ("table.md", "table.json"):
        (copy / name).unlink()
    shutil.rmtree(copy / "additive" / "seed2" / "eval")  # trained, not evaluated
    shutil.rmtree(copy / "none" / "seed1")  # never started
    broken = tmp_path / "broken.yaml"
    broken.write_text(TINY_STUDY.read_text().replace("{model.attention: none}",
                                                     "{model.attention: none, data.dataset: /nonexistent}"))
    failed = run_cli("study", broken, "--out", copy, expect=1, env=DATA)
    assert re.search(r"1 of 4 runs did not finish .*; run `seq2seq study .*broken.yaml` again", failed.err)
    assert "evaluating additive seed 2 took" in failed.err and "training additive" not in failed.err
    assert not (copy / "table.md").exists()
    run_cli("study", TINY_STUDY, "--out", copy, env=DATA)
    assert without_wall_time((copy / "table.md").read_text()).replace(str(copy), str(out)) == \
        without_wall_time((out / "table.md").read_text())


@pytest.mark.parametrize("text,message", [
    ("variants: {a: {}}\nsteps: 5\n", "no 'seeds'"),
    ("variants: {a: {}}\nseeds: [1]\nsteps: 5\nbudget: 3\n", "unknown key 'budget'"),
    ("variants: {a: {}}\nseeds: [1, 1]\nsteps: 5\n", "seeds must be a list of different"),
    ("variants: {a: {}}\nseeds: [1]\n", "variants.a: steps must be a positive integer"),
    ("variants: {a: {set: {model.attention: sparse}}}\nseeds: [1]\nsteps: 5\n", "model.attention must be one of"),
    ("variants: {a: {set: {train.seed: 3}}}\nseeds: [1]\nsteps: 5\n", "train.seed is the study's"),
    ("variants: {a: {}}\nseeds: [1]\nsteps: 5\nbaseline: b\n", "baseline 'b' is not one of the variants"),
    ("variants: {a: {modle: rnn}}\nseeds: [1]\nsteps: 5\n", "variants.a has model, set and steps, not 'modle'"),
])
def test_a_bad_study_file_is_one_line_before_anything_trains(run_cli, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    ran = run_cli("study", path, "--out", tmp_path / "out", expect=2)
    assert message in ran.err and len(ran.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("form", ["none", "mean", "dot", "general", "multihead", "additive"])
def test_every_attention_form_trains_and_evaluates_by_length_and_concatenation(run_cli, tmp_path, form):
    run = tmp_path / form
    run_cli("train", "--config", tiny("bahdanau"), "--dataset", MULTI30K, "--max-train-pairs", "500", "--max-steps", "5",
            "--set", f"model.attention={form}", "--run-dir", run)
    info = json.loads((run / "run.json").read_text())
    assert info["params"] > 0
    ran = run_cli("eval", run, "--concat", "1,2,4", "--bootstrap", "0", "--json")
    report = json.loads(ran.out)
    assert [c["k"] for c in report["concat"]] == [1, 2, 4] and report["concat"][2]["n"] == 250
