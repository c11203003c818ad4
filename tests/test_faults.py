"""Fault tolerance and hostile input: exact resume after SIGKILL, Ctrl-C, atomic files, and one
clear line (exit 2, no traceback, nothing written) for every bad input we could think of.

`python -m tests.test_faults` prints the table of bad inputs and their messages that
docs/errors.md holds; test_docs_table_is_current checks that the docs say what the tool says.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY, write_jsonl

DOCS = ROOT / "docs" / "errors.md"


def seq2seq(*args, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seq2seq", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, **kwargs)


def train_args(dataset, run, *extra):
    return ["train", "--config", TINY, "--dataset", dataset, "--run-dir", run, *extra]


# -- exact resume ----------------------------------------------------------------------------------

RESUME_ARGS = ["--max-steps", 60, "--epochs", 100, "--set", "train.checkpoint_every=1", "--set", "train.eval_every=20"]


def wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
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


def final_weights(run: Path) -> dict:
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["progress"]["step"] == 60
    return ckpt["model"]


def test_sigkill_mid_run_then_resume_gives_the_same_weights(toy_dataset, tmp_path):
    assert seq2seq(*train_args(toy_dataset, tmp_path / "straight", *RESUME_ARGS)).returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", *map(str, train_args(toy_dataset, killed, *RESUME_ARGS))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_step(killed, 13, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"] < 60
    lines_before = (killed / "metrics.jsonl").read_text().splitlines() if (killed / "metrics.jsonl").exists() else []
    resumed = seq2seq("train", "--resume", killed)
    assert resumed.returncode == 0, resumed.stderr
    a, b = final_weights(tmp_path / "straight"), final_weights(killed)
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0)
    lines_after = (killed / "metrics.jsonl").read_text().splitlines()
    assert lines_after[:len(lines_before)] == lines_before  # appended, never truncated
    assert json.loads(lines_after[-1])["step"] == 60


def test_ctrl_c_saves_last_and_exits_cleanly(toy_dataset, tmp_path):
    run = tmp_path / "run"
    args = train_args(toy_dataset, run, "--max-steps", 100000, "--epochs", 1000)
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_step(run, 1, proc)  # the first validation's checkpoint: training is under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("error: training interrupted (SIGINT); resume with")
    assert "Traceback" not in err
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"]
    assert step > 0
    resumed = seq2seq("train", "--resume", run, "--max-steps", step + 3)
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"] == step + 3


def test_time_budget_stops_with_a_checkpoint_and_a_validation(toy_dataset, tmp_path):
    run = tmp_path / "run"
    result = seq2seq(*train_args(toy_dataset, run, "--time-budget", 2, "--epochs", 100000,
                                 "--set", "train.patience=100000"))
    assert result.returncode == 0, result.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["stopped"].startswith("time budget")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == info["steps"]


# -- hostile input ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny trained run (and its dataset) that the cases below misuse."""
    root = tmp_path_factory.mktemp("trained")
    data = write_jsonl(root / "data")
    result = seq2seq(*train_args(data, root / "run", "--max-steps", 2))
    assert result.returncode == 0, result.stderr
    return root / "run"


def _jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _dataset(tmp: Path, files: dict[str, str | bytes]) -> Path:
    root = tmp / "data"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def _good_jsonl(n=20) -> str:
    return _jsonl({"de": f"wort {i}", "en": f"word {i}"} for i in range(n))


def case_missing_split(tmp, trained):
    return train_args(_dataset(tmp, {"train.jsonl": _good_jsonl()}), tmp / "run")


def case_missing_language_column(tmp, trained):
    rows = _jsonl({"de": "ja", "fr": "oui"} for _ in range(5))
    return train_args(_dataset(tmp, {f"{s}.jsonl": rows for s in ("train", "val", "test")}), tmp / "run")


def case_translation_column_lacks_language(tmp, trained):
    rows = _jsonl({"translation": {"de": "ja", "fr": "oui"}} for _ in range(5))
    return train_args(_dataset(tmp, {f"{s}.jsonl": rows for s in ("train", "val", "test")}), tmp / "run")


def case_line_counts_differ(tmp, trained):
    return train_args(_dataset(tmp, {"train.de": "a\nb\nc\n", "train.en": "A\nB\n"}), tmp / "run")


def case_empty_after_filtering(tmp, trained):
    rows = _jsonl({"de": "  ", "en": "word"} for _ in range(5))
    return train_args(_dataset(tmp, {f"{s}.jsonl": rows for s in ("train", "val", "test")}), tmp / "run")


def case_empty_data_file(tmp, trained):
    return train_args(_dataset(tmp, {"train.jsonl": "", "val.jsonl": _good_jsonl(), "test.jsonl": _good_jsonl()}),
                      tmp / "run")


def case_invalid_utf8(tmp, trained):
    bad = b'{"de": "\xff\xfe kaputt", "en": "broken"}\n'
    return train_args(_dataset(tmp, {f"{s}.jsonl": bad for s in ("train", "val", "test")}), tmp / "run")


def case_dataset_not_found(tmp, trained):
    return ["train", "--model", "bahdanau", "--dataset", "/nonexistent", "--run-dir", tmp / "run"]


def case_hub_unreachable(tmp, trained):
    return ["train", "--dataset", "no-such-user/no-such-dataset", "--run-dir", tmp / "run"]


def case_unknown_model(tmp, trained):
    return ["train", "--model", "gpt", "--run-dir", tmp / "run"]


def case_malformed_yaml(tmp, trained):
    (tmp / "bad.yaml").write_text("model:\n  name: [bahdanau\n")
    return ["train", "--config", tmp / "bad.yaml", "--run-dir", tmp / "run"]


def case_unknown_config_key(tmp, trained):
    (tmp / "typo.yaml").write_text("train:\n  learning_rate: 0.1\n")
    return ["train", "--config", tmp / "typo.yaml", "--run-dir", tmp / "run"]


def case_wrong_type(tmp, trained):
    return ["train", "--config", TINY, "--set", "train.lr=fast", "--run-dir", tmp / "run"]


def case_zero_size(tmp, trained):
    return ["train", "--config", TINY, "--set", "model.hidden_dim=0", "--run-dir", tmp / "run"]


def case_negative_size(tmp, trained):
    return ["train", "--config", TINY, "--set", "train.batch_tokens=-4096", "--run-dir", tmp / "run"]


def case_bad_option_value(tmp, trained):
    return ["train", "--epochs", "many", "--run-dir", tmp / "run"]


def case_cuda_without_gpu(tmp, trained):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return train_args(trained.parent / "data", tmp / "run", "--device", "cuda")


def case_run_dir_exists(tmp, trained):
    return train_args(trained.parent / "data", trained)


def case_overwrite_not_a_run_dir(tmp, trained):
    (tmp / "notes").mkdir()
    (tmp / "notes" / "thesis.tex").write_text("months of work")
    return train_args(trained.parent / "data", tmp / "notes", "--overwrite")


def case_eval_without_checkpoint(tmp, trained):
    (tmp / "run").mkdir()
    shutil.copy(trained / "config.yaml", tmp / "run")
    return ["eval", tmp / "run"]


def case_eval_not_a_run_dir(tmp, trained):
    return ["eval", tmp]


def case_truncated_checkpoint(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    last = tmp / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    return ["eval", tmp / "run", "--checkpoint", "last"]


def case_checkpoint_from_another_run(tmp, trained):
    data = write_jsonl(tmp / "other-data", sizes=(200, 20, 20))
    assert seq2seq(*train_args(data, tmp / "other", "--max-steps", 1, "--set", "data.vocab_size=150")).returncode == 0
    shutil.copytree(trained, tmp / "run")
    shutil.copy(tmp / "other" / "checkpoints" / "best.pt", tmp / "run" / "checkpoints" / "best.pt")
    return ["eval", tmp / "run"]


def case_resume_with_another_model(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    return ["train", "--resume", tmp / "run", "--model", "transformer"]


def case_resume_with_another_vocabulary(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    return ["train", "--resume", tmp / "run", "--set", "data.vocab_size=300"]


def case_bad_concat(tmp, trained):
    return ["eval", trained, "--concat", "1,two"]


def case_not_a_number(tmp, trained):
    return ["train", "--config", TINY, "--set", "train.lr=nan", "--run-dir", tmp / "run"]


def case_no_pair_fits(tmp, trained):
    return train_args(trained.parent / "data", tmp / "run", "--model", "transformer",
                      "--set", "model.max_positions=2")


def case_eval_unknown_device(tmp, trained):
    return ["eval", trained, "--device", "tpu"]


def case_checkpoint_not_a_pickle(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    (tmp / "run" / "checkpoints" / "best.pt").write_text("hello\n")
    return ["eval", tmp / "run"]


def case_checkpoint_of_another_model(tmp, trained):
    assert seq2seq(*train_args(trained.parent / "data", tmp / "rnn", "--model", "rnn", "--max-steps", 1)).returncode == 0
    shutil.copytree(trained, tmp / "run")
    shutil.copy(tmp / "rnn" / "checkpoints" / "best.pt", tmp / "run" / "checkpoints" / "best.pt")
    return ["eval", tmp / "run"]


def case_resume_without_checkpoint(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    shutil.rmtree(tmp / "run" / "checkpoints")
    return ["train", "--resume", tmp / "run"]


def case_resume_after_editing_the_config(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    config = tmp / "run" / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.003", "lr: 0.5"))
    return ["train", "--resume", tmp / "run"]


def case_resume_with_malformed_run_json(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    (tmp / "run" / "run.json").write_text("{bad")
    return ["train", "--resume", tmp / "run"]


def case_score_bad_concat(tmp, trained):
    return ["score", trained, "--concat", "0"]


def case_baseline_not_compared(tmp, trained):
    return ["compare", trained, "--baseline", tmp / "other"]


def case_examples_as_json(tmp, trained):
    return ["compare", trained, "--examples", "3", "--format", "json"]


def case_tensorboard_missing(tmp, trained):
    hidden = tmp / "hide" / "tensorboard"  # a tensorboard package that fails to import, found first
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not installed')\n")
    path = os.pathsep.join(filter(None, [str(tmp / "hide"), os.environ.get("PYTHONPATH")]))
    return train_args(trained.parent / "data", tmp / "run", "--tensorboard"), {"PYTHONPATH": path}


def case_average_without_kept_checkpoints(tmp, trained):
    return ["average", trained]


def case_eval_avg_before_average(tmp, trained):
    return ["eval", trained, "--checkpoint", "avg"]


def case_nbest_beyond_the_beam(tmp, trained):
    return ["translate", trained, "--beam", "4", "--nbest", "5"]


def case_report_of_a_run_not_evaluated(tmp, trained):
    return ["report", trained, "-o", tmp / "run" / "report.html"]


CASES = {  # id: (what the user did, the command's arguments[, and environment variables])
    "missing_split": ("a dataset without a validation split", case_missing_split),
    "missing_language_column": ("a dataset without the source language's column", case_missing_language_column),
    "translation_column_lacks_language": ("a `translation` column without the target language",
                                          case_translation_column_lacks_language),
    "line_counts_differ": ("parallel text files of different lengths", case_line_counts_differ),
    "empty_after_filtering": ("a dataset with no pair left after cleaning", case_empty_after_filtering),
    "empty_data_file": ("an empty train.jsonl", case_empty_data_file),
    "invalid_utf8": ("a dataset file that is not UTF-8", case_invalid_utf8),
    "dataset_not_found": ("`--dataset /nonexistent`", case_dataset_not_found),
    "hub_unreachable": ("a hub dataset with no network and no cache", case_hub_unreachable),
    "unknown_model": ("`--model gpt`", case_unknown_model),
    "malformed_yaml": ("a config file that is not YAML", case_malformed_yaml),
    "unknown_config_key": ("a misspelt config key", case_unknown_config_key),
    "wrong_type": ("`--set train.lr=fast`", case_wrong_type),
    "zero_size": ("`--set model.hidden_dim=0`", case_zero_size),
    "negative_size": ("`--set train.batch_tokens=-4096`", case_negative_size),
    "bad_option_value": ("`--epochs many`", case_bad_option_value),
    "cuda_without_gpu": ("`--device cuda` on a machine without one", case_cuda_without_gpu),
    "run_dir_exists": ("training into an existing run dir", case_run_dir_exists),
    "overwrite_not_a_run_dir": ("`--overwrite` on a directory that is not a run", case_overwrite_not_a_run_dir),
    "eval_without_checkpoint": ("`eval` on a run dir with no checkpoint", case_eval_without_checkpoint),
    "eval_not_a_run_dir": ("`eval` on a directory that is not a run", case_eval_not_a_run_dir),
    "truncated_checkpoint": ("a truncated checkpoint", case_truncated_checkpoint),
    "checkpoint_from_another_run": ("a checkpoint copied from another run", case_checkpoint_from_another_run),
    "resume_with_another_model": ("`--resume RUN --model transformer` on a bahdanau run",
                                  case_resume_with_another_model),
    "resume_with_another_vocabulary": ("`--resume` with another vocabulary size",
                                       case_resume_with_another_vocabulary),
    "bad_concat": ("`eval --concat 1,two`", case_bad_concat),
    "not_a_number": ("`--set train.lr=nan`", case_not_a_number),
    "no_pair_fits": ("`--set model.max_positions=2`: no training pair fits", case_no_pair_fits),
    "eval_unknown_device": ("`eval --device tpu`", case_eval_unknown_device),
    "checkpoint_not_a_pickle": ("a checkpoint overwritten with text", case_checkpoint_not_a_pickle),
    "checkpoint_of_another_model": ("a checkpoint copied from a run of another model, same vocabulary",
                                    case_checkpoint_of_another_model),
    "resume_without_checkpoint": ("`--resume` on a run stopped before its first checkpoint",
                                  case_resume_without_checkpoint),
    "resume_after_editing_the_config": ("`--resume` after editing the run's config.yaml by hand",
                                        case_resume_after_editing_the_config),
    "resume_with_malformed_run_json": ("`--resume` on a run whose run.json is not JSON",
                                       case_resume_with_malformed_run_json),
    "score_bad_concat": ("`score --concat 0`", case_score_bad_concat),
    "baseline_not_compared": ("`compare A --baseline B`, B not among the runs", case_baseline_not_compared),
    "examples_as_json": ("`compare --examples 3 --format json`", case_examples_as_json),
    "tensorboard_missing": ("`--tensorboard` without the tensorboard package", case_tensorboard_missing),
    "average_without_kept_checkpoints": ("`average` on a run trained without train.keep_best",
                                         case_average_without_kept_checkpoints),
    "eval_avg_before_average": ("`eval --checkpoint avg` before `average`", case_eval_avg_before_average),
    "nbest_beyond_the_beam": ("`translate --beam 4 --nbest 5`", case_nbest_beyond_the_beam),
    "report_of_a_run_not_evaluated": ("`report` on a run not evaluated", case_report_of_a_run_not_evaluated),
}


def run_case(case: str, tmp: Path, trained: Path) -> str:
    """Run one bad input; check exit 2, one line, no traceback, nothing written; return the line."""
    args = CASES[case][1](tmp, trained)
    args, env = args if isinstance(args, tuple) else (args, {})
    before = snapshot(trained)
    result = seq2seq(*args, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp / "run" / "config.yaml").exists() or case.startswith(("eval", "truncated", "checkpoint", "resume"))
    assert not (tmp / "run" / "eval").exists() and not (tmp / "run" / "report.html").exists()
    assert snapshot(trained) == before  # the trained run is untouched
    return lines[0].replace(str(tmp), "TMP").replace(str(trained.parent), "TRAINED")


def snapshot(run: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(run.rglob("*"))}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_clear_line(case, tmp_path, trained):
    message = run_case(case, tmp_path, trained)
    assert f"| {case} |" in docs_table_row(case, message) and docs_table_row(case, message) in DOCS.read_text(), \
        "docs/errors.md is out of date: run `python -m tests.test_faults > docs/errors.md`"


def docs_table_row(case: str, message: str) -> str:
    return f"| {case} | {CASES[case][0]} | `{message}` |"


def test_ctrl_c_outside_training_exits_130(trained, monkeypatch, capsys):
    """Ctrl-C while translate reads its input (or eval decodes): exit 130, one line, no traceback."""
    from seq2seq.cli import main

    class Interrupted:
        buffer = property(lambda self: (_ for _ in ()).throw(KeyboardInterrupt))

    monkeypatch.setattr(sys, "stdin", Interrupted())
    monkeypatch.setattr(sys, "argv", ["seq2seq", "translate", str(trained)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: interrupted"


def test_running_out_of_memory_is_one_line(trained, monkeypatch, capsys):
    """A beam too wide for the memory: the allocator's failure becomes one line and exit 1; any
    other RuntimeError is a bug and keeps its traceback."""
    from seq2seq import search
    from seq2seq.cli import main

    def too_wide(*args, **kwargs):
        torch.empty(2**48)  # 1 PiB, beyond any address space: the CPU allocator refuses it

    monkeypatch.setattr(search, "beam_search", too_wide)
    monkeypatch.setattr(sys, "argv", ["seq2seq", "eval", str(trained), "--beam", "100000"])
    before = snapshot(trained)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: out of memory (") and "can't allocate memory" in line
    assert line.endswith("); use a smaller --beam, eval.batch_tokens or train.batch_tokens")
    assert snapshot(trained) == before

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(search, "beam_search", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main()


def test_a_relative_dataset_path_is_stored_absolute(tmp_path):
    """The run's config must find its data from any working directory (eval, --resume)."""
    write_jsonl(tmp_path / "data")
    result = seq2seq("train", "--config", TINY, "--dataset", "data", "--run-dir", "run", "--max-steps", 1,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"dataset: {tmp_path.resolve() / 'data'}" in (tmp_path / "run" / "config.yaml").read_text()
    result = seq2seq("eval", tmp_path / "run", "--bootstrap", 0, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_validation_pairs_longer_than_the_positions_do_not_stop_training(tmp_path):
    data = write_jsonl(tmp_path / "data")
    result = seq2seq(*train_args(data, tmp_path / "run", "--model", "transformer", "--max-steps", 2,
                                 "--set", "model.max_positions=6"))
    assert result.returncode == 0, result.stderr
    assert "dropped as longer than 5 tokens" in result.stderr


def test_a_metrics_line_cut_short_is_skipped_and_the_next_starts_anew(tmp_path):
    from seq2seq.files import append_line
    from seq2seq.rundir import RunDir

    run = RunDir(tmp_path)
    append_line(run.metrics, json.dumps({"step": 1}))
    with open(run.metrics, "a") as f:
        f.write('{"step": 2, "ep')  # the process was killed here
    append_line(run.metrics, json.dumps({"step": 3}))
    assert run.metrics.read_text().splitlines()[-1] == '{"step": 3}'
    assert run.read_metrics() == [{"step": 1}, {"step": 3}]


def test_unreadable_or_malformed_run_files_get_one_clear_error(tmp_path):
    from seq2seq.errors import UserError
    from seq2seq.files import read_json_object
    from seq2seq.tokenizer import Tokenizer

    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "cut.json").write_text('{"bleu": 3')
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "spm.model").mkdir()
    for name, says in (("list.json", "not an object"), ("cut.json", "not valid JSON"), ("dir.json", "cannot read")):
        with pytest.raises(UserError, match=says):
            read_json_object(tmp_path / name)
    with pytest.raises(UserError, match="cannot read"):
        Tokenizer.load(tmp_path / "spm.model")


def test_a_10000_word_line_is_dropped_and_counted(tmp_path):
    data = write_jsonl(tmp_path / "data")
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"de": "wort " * 10_000, "en": "word"}) + "\n")
    result = seq2seq(*train_args(data, tmp_path / "run", "--max-steps", 1))
    assert result.returncode == 0, result.stderr
    assert "1 longer than 100 words" in result.stderr


@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_loses_nothing(trained, tmp_path, monkeypatch, capsys, failure):
    """The disk fails at the first write: one line, exit 2, no temporary or partial file left."""
    import seq2seq.files
    from seq2seq.cli import main

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = snapshot(run)

    def broken_fsync(fd):
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr(seq2seq.files.os, "fsync", broken_fsync)
    for argv in (["eval", str(run), "--bootstrap", "0"],
                 ["train", "--resume", str(run), "--max-steps", "3"],
                 ["train", "--config", str(TINY), "--dataset", str(trained.parent / "data"),
                  "--run-dir", str(tmp_path / "new")]):
        monkeypatch.setattr(sys, "argv", ["seq2seq", *argv])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: cannot write") and os.strerror(failure) in err[-1]
        assert not list(run.rglob("*.tmp")) and not list(run.rglob(".*"))
        assert not (tmp_path / "new").exists()
    after = snapshot(run)
    assert {p: t for p, t in after.items() if not p.endswith((".log", "metrics.jsonl", "eval"))} == \
        {p: t for p, t in before.items() if not p.endswith((".log", "metrics.jsonl", "eval"))}


def main() -> None:
    """Print docs/errors.md: every bad input tried and the line it gets."""
    import tempfile

    print("# Bad input and what the tool says\n")
    print("Generated by `python -m tests.test_faults > docs/errors.md`; the tests check that the tool")
    print("still says exactly this. Each ends with exit code 2, this one line on stderr, no traceback,")
    print("and nothing written or overwritten. TMP and TRAINED stand for the paths of the case.\n")
    print("| case | what the user did | what the tool says |")
    print("| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        data = write_jsonl(root / "trained" / "data")
        assert seq2seq(*train_args(data, root / "trained" / "run", "--max-steps", 2)).returncode == 0
        for case in CASES:
            tmp = root / case
            tmp.mkdir()
            print(docs_table_row(case, run_case(case, tmp, root / "trained" / "run")))


if __name__ == "__main__":
    main()
