"""A run's files are read through one schema (seq2seq.runfiles) with one migration: run dirs
written by older versions load, compare, evaluate and resume.

tests/old-run holds the files a run made by the version before runfiles.py wrote (a bahdanau of
4,038 parameters, trained 4 updates on conftest's toy data with `--set model.emb_dim=8 --set
model.hidden_dim=8 --set model.attn_dim=8`, then `eval --concat 1,2 --bootstrap 100`), less its
outputs of training (spm.model and the checkpoints, whose format this change kept): a test that
needs them trains the same config for them. Its run.json has no best_step: the migration reads it
from metrics.jsonl.

tests/pre-mark-run holds the run.json and config.yaml of docs/runs/study-k4/rnn as they were
written, before run.json had this tool's mark (docs/runs/ itself went through the migration)."""

import json
import shutil

import pytest

from seq2seq.errors import UserError
from seq2seq.rundir import RunDir
from seq2seq.runfiles import RunInfo, migrate_config, read_report, read_sentences
from tests.conftest import ROOT, cli, write_jsonl

OLD_RUN = ROOT / "tests" / "old-run"
PRE_MARK_RUN = ROOT / "tests" / "pre-mark-run"
DOCS_RUNS = ROOT / "docs" / "runs"


@pytest.fixture
def old_run(tmp_path):
    return shutil.copytree(OLD_RUN, tmp_path / "old-run")


@pytest.fixture(scope="module")
def old_run_training(tmp_path_factory):
    """A run of old-run's config, trained as it was: the vocabulary and last checkpoint old-run leaves out."""
    root = tmp_path_factory.mktemp("old-run-training")
    cli("train", "--config", OLD_RUN / "config.yaml", "--dataset", write_jsonl(root / "toy"), "--run-dir", root / "run")
    return root / "run"


def test_an_older_run_compares_with_the_figures_its_eval_wrote(old_run, run_cli):
    report = json.loads((old_run / "eval" / "test.json").read_text())
    result = run_cli("compare", old_run, "--format", "json", in_process=True)
    [row] = json.loads(result.out)
    assert result.err == ""  # its best checkpoint is the step eval scored: no warning
    assert RunDir(old_run).read_info().best_step == report["step"] == 2  # the first of the best val BLEU
    assert {key: row[key] for key in ("model", "params", "step", "bleu", "chrf", "nll")} == \
        {key: report[key] for key in ("model", "params", "step", "bleu", "chrf", "nll")}
    assert [c["bleu"] for c in row["concat"]] == [c["bleu"] for c in report["concat"]]


def test_an_older_run_resumes_and_evaluates(old_run, old_run_training, tmp_path, run_cli):
    for name in ("spm.model", "checkpoints/last.pt"):
        (old_run / name).parent.mkdir(exist_ok=True)
        shutil.copy(old_run_training / name, old_run / name)
    toy = write_jsonl(tmp_path / "toy")  # the data it was trained on, at another place
    before = (old_run / "metrics.jsonl").read_text()
    run_cli("train", "--resume", old_run, "--dataset", toy, "--max-steps", 6)
    info = RunDir(old_run).read_info()
    assert info.steps == 6 and len(info.commands) == 2 and info.tool == "seq2seq"
    assert (old_run / "metrics.jsonl").read_text().startswith(before)
    assert [m.step for m in RunDir(old_run).read_metrics()] == [2, 4, 6]
    run_cli("eval", old_run, "--checkpoint", "last", "--concat", "1,2", in_process=True)
    report = read_report(old_run / "eval" / "test.last.json", "")
    assert report.step == 6 and report.checkpoint == "last" and [c.k for c in report.concat] == [1, 2]
    assert len(read_sentences(old_run / "eval" / "test.last.json", old_run)) == 40 + 20


@pytest.mark.parametrize("run", sorted(p.parent for p in DOCS_RUNS.rglob("run.json")), ids=str)
def test_every_run_in_docs_runs_loads(run):
    files = RunDir(run)
    assert files.is_run() and isinstance(files.read_info(), RunInfo)
    assert files.read_config().model.name == files.read_info().model
    assert all(m.step > 0 for m in files.read_metrics())
    for path in files.eval.glob("*.json"):
        assert read_report(path, "").n > 0


def test_the_migration_marks_runs_from_before_the_mark_and_keeps_their_command(tmp_path):
    run = shutil.copytree(PRE_MARK_RUN, tmp_path / "rnn")
    raw = json.loads((run / "run.json").read_text())
    assert "tool" not in raw and "commands" not in raw
    info = RunDir(run).read_info()
    assert (info.tool, info.run_format, info.commands) == ("seq2seq", 1, [raw["command"]])
    (run / "config.yaml").unlink()  # without its config.yaml, such a run.json is no mark of this tool
    assert not RunDir(run).is_run()


def test_a_flat_model_config_keeps_its_own_settings_and_a_user_config_is_not_migrated():
    flat = {"model": {"name": "rnn", "emb_dim": 8, "d_model": 16, "heads": 2, "attn_dim": 4}}
    assert migrate_config(flat) == {"model": {"name": "rnn", "emb_dim": 8}}
    assert migrate_config({"model": {"name": "gru"}}) == {"model": {"name": "gru"}}  # left for the config's error


def test_a_field_of_the_wrong_type_is_one_line_naming_the_file_and_the_field(old_run):
    path = old_run / "eval" / "test.json"
    report = json.loads(path.read_text())
    report["concat"][1]["src_words"] = "seven"
    path.write_text(json.dumps(report))
    with pytest.raises(UserError, match=r"test.json: concat\[1\]: src_words must be a number, got \"seven\""):
        read_report(path, "")
    (old_run / "run.json").write_text(json.dumps({"tool": "seq2seq", "steps": "many"}))
    with pytest.raises(UserError, match=r"run.json: steps must be an integer or null, got \"many\""):
        RunDir(old_run).read_info()
