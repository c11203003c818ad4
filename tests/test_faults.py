"""Fault tolerance and hostile input: exact resume after SIGKILL, Ctrl-C, atomic files, and one
clear line (exit 2, no traceback, nothing written) for every bad input we could think of.

`python -m tests.test_faults` prints the table of bad inputs and their messages that
docs/errors.md holds; test_bad_input_gets_one_clear_line checks that the docs say what the tool says.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY, cli, tiny, wait_for_step, write_jsonl

DOCS = ROOT / "docs" / "errors.md"


def train_args(dataset, run, *extra):
    """Train a tiny model (bahdanau unless --model names another) on `dataset` into `run`."""
    model = extra[extra.index("--model") + 1] if "--model" in extra else "bahdanau"
    return ["train", "--config", tiny(model), "--dataset", dataset, "--run-dir", run, *extra]


# -- exact resume ----------------------------------------------------------------------------------

RESUME_ARGS = ["--max-steps", 60, "--epochs", 100, "--set", "train.checkpoint_every=1", "--set", "train.eval_every=20"]


def final_weights(run: Path) -> dict:
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["progress"]["step"] == 60
    return ckpt["model"]


def test_sigkill_mid_run_then_resume_gives_the_same_weights(toy_dataset, tmp_path, run_cli):
    run_cli(*train_args(toy_dataset, tmp_path / "straight", *RESUME_ARGS))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", *map(str, train_args(toy_dataset, killed, *RESUME_ARGS))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_step(killed, 13, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"] < 60
    lines_before = (killed / "metrics.jsonl").read_text().splitlines() if (killed / "metrics.jsonl").exists() else []
    run_cli("train", "--resume", killed)
    a, b = final_weights(tmp_path / "straight"), final_weights(killed)
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0)
    lines_after = (killed / "metrics.jsonl").read_text().splitlines()
    assert lines_after[:len(lines_before)] == lines_before  # appended, never truncated
    assert json.loads(lines_after[-1])["step"] == 60


def test_a_run_resumed_where_it_stopped_at_the_end_of_an_epoch_validates_once_per_step(toy_dataset, tmp_path,
                                                                                         run_cli):
    """Stopped by max_steps on an epoch's last batch (validated there), then resumed: the epoch's
    end is not validated a second time with nothing trained (an empty window: loss 0, 0 tok/s)."""
    run_cli(*train_args(toy_dataset, tmp_path / "epoch", "--epochs", 1))
    per_epoch = json.loads((tmp_path / "epoch" / "run.json").read_text())["steps"]
    run = tmp_path / "run"
    run_cli(*train_args(toy_dataset, run, "--epochs", 3, "--max-steps", per_epoch))
    run_cli("train", "--resume", run, "--max-steps", 3 * per_epoch)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert all(r["train_loss"] > 0 and r["tgt_tok_per_s"] > 0 for r in records)


def test_ctrl_c_saves_last_and_exits_cleanly(toy_dataset, tmp_path, run_cli):
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
    run_cli("train", "--resume", run, "--max-steps", step + 3)
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"] == step + 3


def test_time_budget_stops_with_a_checkpoint_and_a_validation(toy_dataset, tmp_path, run_cli):
    run = tmp_path / "run"
    run_cli(*train_args(toy_dataset, run, "--time-budget", 2, "--epochs", 100000, "--set", "train.patience=100000",
                        "--set", "train.eval_every=100000", "--set", "train.checkpoint_seconds=0"))
    info = json.loads((run / "run.json").read_text())
    assert info["stopped"].startswith("time budget") and info["steps"] > 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # neither validations nor checkpoints fall due in 2 s: the ones there are the budget's own
    assert [m["step"] for m in metrics] == [info["steps"]]
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["progress"]["step"] == info["steps"] and "optimizer" in last  # resumable from where it stopped


# -- hostile input ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, run_cli) -> Path:
    """A tiny trained run (and its dataset) that the cases below misuse."""
    root = tmp_path_factory.mktemp("trained")
    data = write_jsonl(root / "data")
    run_cli(*train_args(data, root / "run", "--max-steps", 2))
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
    cli(*train_args(data, tmp / "other", "--max-steps", 1, "--set", "data.vocab_size=150"))
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
    cli(*train_args(trained.parent / "data", tmp / "rnn", "--model", "rnn", "--max-steps", 1))
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


def case_overwrite_config_but_not_a_run(tmp, trained):
    (tmp / "P" / "src").mkdir(parents=True)
    (tmp / "P" / "config.yaml").write_text("x\n")
    (tmp / "P" / "notes.txt").write_text("notes\n")
    return train_args(trained.parent / "data", tmp / "P", "--overwrite")


def case_overwrite_current_directory(tmp, trained):  # run_case runs it in tmp
    (tmp / "thesis.tex").write_text("months of work")
    return train_args(trained.parent / "data", ".", "--overwrite")


def case_overwrite_a_symbolic_link(tmp, trained):
    shutil.copytree(trained, tmp / "real")
    (tmp / "link").symlink_to(tmp / "real")
    return train_args(trained.parent / "data", tmp / "link", "--overwrite")


HELD: list[int] = []  # locks the cases below hold while their command runs


def case_resume_while_another_process_trains(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    fd = os.open(tmp / "run" / "train.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the trainer holds it, with what it writes there
    os.ftruncate(fd, 0)
    os.write(fd, b"4242 on trainer-host\n")
    HELD.append(fd)
    return ["train", "--resume", tmp / "run"]


def case_resume_on_changed_data(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    data = shutil.copytree(trained.parent / "data", tmp / "data")
    rows = (data / "train.jsonl").read_text().splitlines()
    (data / "train.jsonl").write_text("\n".join(rows[1:]) + "\n")  # one pair fewer
    return ["train", "--resume", tmp / "run", "--dataset", data]


def case_sentence_is_a_number(tmp, trained):
    rows = _good_jsonl() + _jsonl([{"en": 12345, "de": 67890}])
    return train_args(_dataset(tmp, {"train.jsonl": rows, "val.jsonl": _good_jsonl(), "test.jsonl": _good_jsonl()}),
                      tmp / "run")


def case_line_not_json(tmp, trained):
    rows = _good_jsonl(7) + "{bad\n" + _good_jsonl(7)
    return train_args(_dataset(tmp, {"train.jsonl": rows, "val.jsonl": _good_jsonl(), "test.jsonl": _good_jsonl()}),
                      tmp / "run")


def case_row_is_an_array(tmp, trained):
    rows = _good_jsonl(7) + '["wort", "word"]\n' + _good_jsonl(7)
    return train_args(_dataset(tmp, {"train.jsonl": rows, "val.jsonl": _good_jsonl(), "test.jsonl": _good_jsonl()}),
                      tmp / "run")


def case_validation_split_twice(tmp, trained):
    splits = {f"{s}.jsonl": _good_jsonl() for s in ("train", "val", "validation", "test")}
    return train_args(_dataset(tmp, splits), tmp / "run")


def case_train_text_beside_jsonl(tmp, trained):
    splits = {f"{s}.jsonl": _good_jsonl() for s in ("train", "val", "test")}
    return train_args(_dataset(tmp, splits | {"train.de": "wort\n", "train.en": "word\n"}), tmp / "run")


def case_validation_text_beside_jsonl(tmp, trained):
    splits = {f"{s}.jsonl": _good_jsonl() for s in ("train", "val", "test")}
    return train_args(_dataset(tmp, splits | {"val.de": "wort\n", "val.en": "word\n"}), tmp / "run")


def case_test_row_of_a_number_and_a_list(tmp, trained):
    rows = _good_jsonl() + _jsonl([{"de": 12, "en": [1]}])
    return ["eval", trained, "--dataset", _dataset(tmp, {"train.jsonl": _good_jsonl(), "val.jsonl": _good_jsonl(),
                                                         "test.jsonl": rows})]


def _evaluated(tmp, trained, **report) -> Path:
    """A copy of the trained run with an eval report of its best checkpoint, changed by `report`."""
    run = shutil.copytree(trained, tmp / "evaluated")
    step = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["progress"]["step"]
    (run / "eval").mkdir()
    (run / "eval" / "test.json").write_text(json.dumps(
        {"model": "bahdanau", "params": 10, "checkpoint": "best", "step": step, "beam": 1, "n": 40, "bleu": 1.0,
         "ci_low": None, "ci_high": None, "chrf": 9.0, "buckets": [], "concat": []} | report))
    return run


def case_compare_report_with_null_buckets(tmp, trained):
    return ["compare", _evaluated(tmp, trained, buckets=None)]


def case_compare_report_with_text_for_bleu(tmp, trained):
    return ["compare", _evaluated(tmp, trained, bleu="high")]


def case_compare_metrics_with_null_elapsed(tmp, trained):
    run = _evaluated(tmp, trained)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 9, "val_bleu": 1.0, "elapsed": None}) + "\n")
    return ["compare", run, "--curves", tmp / "curves.png"]


def case_resume_with_an_alias_bomb_in_config(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    levels = "abcdefghij"  # each list holds nine of the one before: 9**10 values once written out
    bomb = f"a: &a [{', '.join(['x'] * 9)}]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip(levels, levels[1:]))
    (tmp / "run" / "config.yaml").write_text(bomb)
    return ["train", "--resume", tmp / "run"]


def case_bootstrap_too_many(tmp, trained):
    return ["eval", trained, "--bootstrap", 100_000_000]


def case_concat_k_too_large(tmp, trained):
    return train_args(trained.parent / "data", tmp / "run", "--set", "data.concat_k=1000")


def case_resume_with_a_truncated_last(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    last = tmp / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    return ["train", "--resume", tmp / "run"]


def case_resume_with_a_checkpoint_of_another_model(tmp, trained):
    cli(*train_args(trained.parent / "data", tmp / "rnn", "--model", "rnn", "--max-steps", 1))
    shutil.copytree(trained, tmp / "run")
    shutil.copy(tmp / "rnn" / "checkpoints" / "last.pt", tmp / "run" / "checkpoints" / "last.pt")
    return ["train", "--resume", tmp / "run"]


def case_vocab_size_too_small(tmp, trained):
    return train_args(trained.parent / "data", tmp / "run", "--set", "data.vocab_size=10")


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


def case_report_onto_a_checkpoint(tmp, trained):
    return ["report", trained, "-o", trained / "checkpoints" / "best.pt"]


def case_curves_into_a_run_dir(tmp, trained):
    return ["compare", trained, "--curves", trained / "curves.png"]


def case_attention_plot_into_a_run_dir(tmp, trained):
    return ["translate", trained, "--attention-plot", trained / "eval" / "attention.png"]


def case_min_lr_above_lr(tmp, trained):
    return train_args(trained.parent / "data", tmp / "run", "--set", "train.schedule=cosine", "--set", "train.min_lr=1")


def case_dropout_next_to_one(tmp, trained):
    return train_args(trained.parent / "data", tmp / "run", "--set", "model.dropout=0.999999")


def case_dropout_below_the_masks_step(tmp, trained):
    return train_args(trained.parent / "data", tmp / "run", "--set", "model.dropout=0.000001")


def _with_sentences(tmp, trained, bleu_stats) -> Path:
    """An evaluated copy of the trained run whose test.sentences.jsonl holds `bleu_stats`."""
    run = _evaluated(tmp, trained)
    (run / "eval" / "test.sentences.jsonl").write_text(json.dumps({"k": 1, "range": "1-10", "bleu_stats": bleu_stats}))
    return run


def case_compare_sentences_with_empty_bleu_stats(tmp, trained):
    run = _with_sentences(tmp, trained, [])
    return ["compare", run, run, "--baseline", run]


def case_compare_sentences_with_a_number_for_bleu_stats(tmp, trained):
    run = _with_sentences(tmp, trained, 5)
    return ["compare", run, run, "--baseline", run]


def case_compare_curves_of_a_metrics_line_without_step(tmp, trained):
    run = _evaluated(tmp, trained)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"val_bleu": 1.0, "elapsed": 3.0}) + "\n")
    return ["compare", run, "--curves", tmp / "curves.png"]


def case_resume_with_tensorboard_a_file(tmp, trained):
    shutil.copytree(trained, tmp / "run")
    (tmp / "run" / "tensorboard").write_text("notes\n")
    return ["train", "--resume", tmp / "run", "--tensorboard"]


def _kept(tmp, trained, n: int) -> Path:
    """A copy of the trained run with its best checkpoint kept n times as train.keep_best keeps them."""
    run = shutil.copytree(trained, tmp / "kept")
    for step in range(1, n + 1):
        shutil.copy(run / "checkpoints" / "best.pt", run / "checkpoints" / f"best-{step}.pt")
    return run


def case_average_a_tensor_of_another_shape(tmp, trained):
    run = _kept(tmp, trained, 2)
    ckpt = torch.load(run / "checkpoints" / "best-2.pt", weights_only=True)
    name = next(iter(ckpt["model"]))
    ckpt["model"][name] = ckpt["model"][name][:1]
    torch.save(ckpt, run / "checkpoints" / "best-2.pt")
    return ["average", run]


def case_average_before_two_are_kept(tmp, trained):
    run = _kept(tmp, trained, 1)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("keep_best: 1", "keep_best: 3"))
    return ["average", run]


def case_malloc_unknown(tmp, trained):
    return ["--version"], {"SEQ2SEQ_MALLOC": "garbage"}


def case_serve_extra_missing(tmp, trained):
    hidden = tmp / "hide" / "starlette"  # a starlette package that fails to import, found first
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not installed')\n")
    path = os.pathsep.join(filter(None, [str(tmp / "hide"), os.environ.get("PYTHONPATH")]))
    return ["serve", trained], {"PYTHONPATH": path}


def case_serve_port_out_of_range(tmp, trained):
    return ["serve", trained, "--port", "70000"]


def case_serve_max_batch_zero(tmp, trained):
    return ["serve", trained, "--max-batch", "0"]


def case_serve_a_run_twice(tmp, trained):
    return ["serve", trained, trained]


def case_export_not_a_transformer(tmp, trained):
    return ["export", trained, "--to", "ctranslate2", "-o", tmp / "model"]


def case_export_to_onnx(tmp, trained):
    return ["export", trained, "--to", "onnx", "-o", tmp / "model"]


def case_export_into_a_used_directory(tmp, trained):
    (tmp / "model").mkdir()
    (tmp / "model" / "notes.txt").write_text("mine\n")
    return ["export", trained, "--to", "ctranslate2", "-o", tmp / "model"]


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
    "no_pair_fits": ("`--model transformer --set model.max_positions=2`: no training pair fits", case_no_pair_fits),
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
    "overwrite_config_but_not_a_run": ("`--overwrite` on a directory with a config.yaml, notes and sources",
                                       case_overwrite_config_but_not_a_run),
    "overwrite_current_directory": ("`--run-dir . --overwrite` (or `--run-dir \"\"`)", case_overwrite_current_directory),
    "overwrite_a_symbolic_link": ("`--overwrite` on a run dir that is a symbolic link", case_overwrite_a_symbolic_link),
    "resume_while_another_process_trains": ("`--resume` of a run another process is training",
                                            case_resume_while_another_process_trains),
    "resume_on_changed_data": ("`--resume RUN --dataset D` where D is not the run's data", case_resume_on_changed_data),
    "sentence_is_a_number": ('a JSONL row `{"en": 12345, "de": 67890}`', case_sentence_is_a_number),
    "line_not_json": ("a JSONL line that is not JSON", case_line_not_json),
    "row_is_an_array": ("a JSONL row that is an array", case_row_is_an_array),
    "validation_split_twice": ("val.jsonl beside validation.jsonl", case_validation_split_twice),
    "train_text_beside_jsonl": ("train.de and train.en beside train.jsonl", case_train_text_beside_jsonl),
    "validation_text_beside_jsonl": ("val.de and val.en beside val.jsonl", case_validation_text_beside_jsonl),
    "test_row_of_a_number_and_a_list": ('`eval --dataset D`, a test.jsonl row `{"de": 12, "en": [1]}` in D',
                                        case_test_row_of_a_number_and_a_list),
    "compare_report_with_null_buckets": ('`compare` on an eval report with `"buckets": null`',
                                         case_compare_report_with_null_buckets),
    "compare_report_with_text_for_bleu": ('`compare` on an eval report with `"bleu": "high"`',
                                          case_compare_report_with_text_for_bleu),
    "compare_metrics_with_null_elapsed": ('`compare --curves` on a metrics.jsonl line with `"elapsed": null`',
                                          case_compare_metrics_with_null_elapsed),
    "resume_with_an_alias_bomb_in_config": ("`--resume` of a run whose config.yaml is a YAML alias bomb",
                                            case_resume_with_an_alias_bomb_in_config),
    "bootstrap_too_many": ("`eval --bootstrap 100000000`", case_bootstrap_too_many),
    "concat_k_too_large": ("`--set data.concat_k=1000`", case_concat_k_too_large),
    "resume_with_a_truncated_last": ("`--resume` of a run whose last checkpoint is truncated",
                                     case_resume_with_a_truncated_last),
    "resume_with_a_checkpoint_of_another_model": ("`--resume` of a run whose last checkpoint is of another model",
                                                  case_resume_with_a_checkpoint_of_another_model),
    "vocab_size_too_small": ("`--set data.vocab_size=10`: fewer pieces than the text has characters",
                             case_vocab_size_too_small),
    "score_bad_concat": ("`score --concat 0`", case_score_bad_concat),
    "baseline_not_compared": ("`compare A --baseline B`, B not among the runs", case_baseline_not_compared),
    "examples_as_json": ("`compare --examples 3 --format json`", case_examples_as_json),
    "tensorboard_missing": ("`--tensorboard` without the tensorboard package", case_tensorboard_missing),
    "average_without_kept_checkpoints": ("`average` on a run trained without train.keep_best",
                                         case_average_without_kept_checkpoints),
    "eval_avg_before_average": ("`eval --checkpoint avg` before `average`", case_eval_avg_before_average),
    "nbest_beyond_the_beam": ("`translate --beam 4 --nbest 5`", case_nbest_beyond_the_beam),
    "report_of_a_run_not_evaluated": ("`report` on a run not evaluated", case_report_of_a_run_not_evaluated),
    "report_onto_a_checkpoint": ("`report RUN -o RUN/checkpoints/best.pt`", case_report_onto_a_checkpoint),
    "curves_into_a_run_dir": ("`compare RUN --curves RUN/curves.png`", case_curves_into_a_run_dir),
    "attention_plot_into_a_run_dir": ("`translate RUN --attention-plot RUN/eval/attention.png`",
                                      case_attention_plot_into_a_run_dir),
    "min_lr_above_lr": ("`--set train.schedule=cosine --set train.min_lr=1`, above train.lr", case_min_lr_above_lr),
    "dropout_next_to_one": ("`--set model.dropout=0.999999`", case_dropout_next_to_one),
    "dropout_below_the_masks_step": ("`--set model.dropout=0.000001`, below 2^-16", case_dropout_below_the_masks_step),
    "compare_sentences_with_empty_bleu_stats": ('`compare --baseline` on a test.sentences.jsonl row with '
                                                '`"bleu_stats": []`', case_compare_sentences_with_empty_bleu_stats),
    "compare_sentences_with_a_number_for_bleu_stats": ('`compare --baseline` on a test.sentences.jsonl row with '
                                                       '`"bleu_stats": 5`',
                                                       case_compare_sentences_with_a_number_for_bleu_stats),
    "compare_curves_of_a_metrics_line_without_step": ("`compare --curves` on a metrics.jsonl line without `step`",
                                                      case_compare_curves_of_a_metrics_line_without_step),
    "resume_with_tensorboard_a_file": ("`--resume RUN --tensorboard` where RUN/tensorboard is a file",
                                       case_resume_with_tensorboard_a_file),
    "average_a_tensor_of_another_shape": ("`average` where one kept checkpoint has a tensor of another shape",
                                          case_average_a_tensor_of_another_shape),
    "average_before_two_are_kept": ("`average` of a `train.keep_best=3` run that has kept one so far",
                                    case_average_before_two_are_kept),
    "malloc_unknown": ("`SEQ2SEQ_MALLOC=garbage seq2seq ...`", case_malloc_unknown),
    "serve_extra_missing": ("`serve` without the serve extra (starlette, uvicorn)", case_serve_extra_missing),
    "serve_port_out_of_range": ("`serve --port 70000`", case_serve_port_out_of_range),
    "serve_max_batch_zero": ("`serve --max-batch 0`", case_serve_max_batch_zero),
    "serve_a_run_twice": ("`serve RUN RUN`", case_serve_a_run_twice),
    "export_not_a_transformer": ("`export` of a bahdanau run (CTranslate2 runs Transformers)",
                                 case_export_not_a_transformer),
    "export_to_onnx": ("`export --to onnx`", case_export_to_onnx),
    "export_into_a_used_directory": ("`export -o DIR` where DIR holds files", case_export_into_a_used_directory),
}


def run_case(case: str, tmp: Path, trained: Path) -> str:
    """Run one bad input; check exit 2, one line, no traceback, nothing written; return the line."""
    args = CASES[case][1](tmp, trained)
    args, env = args if isinstance(args, tuple) else (args, {})
    before = snapshot(trained)
    try:
        result = cli(*args, cwd=tmp, env=env, expect=2)
    finally:
        while HELD:
            os.close(HELD.pop())
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert not (tmp / "run" / "config.yaml").exists() or case.startswith(("eval", "truncated", "checkpoint", "resume"))
    assert not (tmp / "run" / "eval").exists() and not (tmp / "run" / "report.html").exists()
    assert snapshot(trained) == before  # the trained run is untouched
    return lines[0].replace(str(tmp), "TMP").replace(str(trained.parent), "TRAINED")


def snapshot(run: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(run.rglob("*"))}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_clear_line(case, tmp_path, trained):
    message = run_case(case, tmp_path, trained)
    documented = [line for line in DOCS.read_text().splitlines() if line.startswith(f"| {case} | ")]
    assert documented == [docs_table_row(case, message)], \
        "docs/errors.md is out of date: run `python -m tests.test_faults > docs/errors.md`"


def test_the_docs_table_lists_each_case_once_in_order():
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| ")][2:]  # below the header
    assert [row.split(" | ")[0][2:] for row in rows] == list(CASES)


def docs_table_row(case: str, message: str) -> str:
    return f"| {case} | {CASES[case][0]} | `{message}` |"


def test_ctrl_c_outside_training_exits_130(trained, run_cli):
    """Ctrl-C while translate reads its input (or eval decodes): exit 130, one line, no traceback."""

    class Interrupted:
        buffer = property(lambda self: (_ for _ in ()).throw(KeyboardInterrupt))

    err = run_cli("translate", trained, stdin=Interrupted(), in_process=True, expect=130).err
    assert err.strip().splitlines()[-1] == "error: interrupted"


def test_running_out_of_memory_is_one_line(trained, monkeypatch, run_cli):
    """A beam too wide for the memory: the allocator's failure becomes one line and exit 1; any
    other RuntimeError is a bug and keeps its traceback."""
    from seq2seq import search

    def too_wide(*args, **kwargs):
        torch.empty(2**48)  # 1 PiB, beyond any address space: the CPU allocator refuses it

    monkeypatch.setattr(search, "beam_hypotheses", too_wide)
    args = ["eval", trained, "--beam", 100000]
    before = snapshot(trained)
    [line] = run_cli(*args, in_process=True, expect=1).err.strip().splitlines()
    assert line.startswith("error: out of memory (") and "can't allocate memory" in line
    assert line.endswith("); use a smaller --beam, eval.batch_tokens or train.batch_tokens")
    assert snapshot(trained) == before

    def python_out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(search, "beam_hypotheses", python_out_of_memory)
    assert run_cli(*args, in_process=True, expect=1).err == ("error: out of memory (MemoryError); use a smaller "
                                                             "--beam, eval.batch_tokens or train.batch_tokens\n")

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(search, "beam_hypotheses", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_cli(*args, in_process=True)


# -- nothing lost, nothing mixed up ----------------------------------------------------------------

def files(root: Path) -> dict[str, bytes]:
    """Every file under root by its relative path, with its bytes; the lock (rewritten by whoever
    takes it) aside."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "train.lock"}


def metric_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case, kept", [
    ("overwrite_config_but_not_a_run", ["P/config.yaml", "P/notes.txt", "P/src"]),
    ("overwrite_current_directory", ["thesis.tex"]),
    ("overwrite_a_symbolic_link", ["link", "real/checkpoints/last.pt", "real/config.yaml"]),
])
def test_a_refused_overwrite_deletes_nothing(case, kept, tmp_path, trained):
    run_case(case, tmp_path, trained)
    assert all((tmp_path / name).exists() for name in kept)


def test_overwrite_refuses_the_directories_that_hold_more_than_a_run(tmp_path, monkeypatch):
    from seq2seq.errors import UserError
    from seq2seq.rundir import CHECKOUT, RunDir

    (tmp_path / "home" / "work").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "home" / "work")
    for place in (Path(""), Path("."), Path(".."), tmp_path / "home", tmp_path, CHECKOUT, CHECKOUT.parent):
        with pytest.raises(UserError, match="refusing --overwrite"):
            RunDir(place).create(overwrite=True)


def test_overwrite_replaces_only_the_runs_own_files(trained, tmp_path, run_cli):
    run = shutil.copytree(trained, tmp_path / "run")
    (run / "notes.txt").write_text("keep")
    (run / "src").mkdir()
    (run / "src" / "model.py").write_text("mine")
    result = run_cli(*train_args(trained.parent / "data", run, "--overwrite", "--max-steps", 1))
    assert (run / "notes.txt").read_text() == "keep" and (run / "src" / "model.py").read_text() == "mine"
    assert json.loads((run / "run.json").read_text())["steps"] == 1 and not (run / ".replaced").exists()
    assert "fewer than data.vocab_size=200" in result.err  # the toy text holds fewer pieces: said


def test_overwrite_keeps_the_old_run_when_the_new_one_fails_before_its_first_checkpoint(trained, tmp_path,
                                                                                          monkeypatch, run_cli):
    from seq2seq import update

    run = shutil.copytree(trained, tmp_path / "run")
    (run / "notes.txt").write_text("keep")
    before = files(run)

    def out_of_memory(self, batch, lr):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(update.Update, "__call__", out_of_memory)
    err = run_cli(*train_args(trained.parent / "data", run, "--overwrite"), in_process=True, expect=1).err
    assert err.strip().splitlines()[-1].startswith("error: out of memory (CUDA out of memory")
    assert files(run) == before and not (run / ".replaced").exists()


def test_a_replacement_killed_before_its_first_checkpoint_leaves_the_old_run_where_it_said(trained, tmp_path,
                                                                                               run_cli):
    run = shutil.copytree(trained, tmp_path / "run")
    before = files(run)
    args = train_args(trained.parent / "data", run, "--overwrite", "--epochs", 1000, "--set", "train.eval_every=100000",
                      "--set", "train.checkpoint_seconds=0")  # no checkpoint for a long while
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", *map(str, args)], stderr=subprocess.PIPE, text=True)
    said = next(line for line in proc.stderr if "kept in" in line)
    proc.kill()
    proc.wait()
    assert said == f"the run replaced is kept in {run / '.replaced'} until this one saves its first checkpoint\n"
    assert files(run / ".replaced") == before and not (run / "checkpoints" / "last.pt").exists()
    run_cli(*train_args(trained.parent / "data", run, "--overwrite", "--max-steps", 1))
    assert not (run / ".replaced").exists() and json.loads((run / "run.json").read_text())["steps"] == 1


def test_two_trainers_of_one_run_started_together_one_trains(trained, tmp_path, run_cli):
    """The other is refused with the holder's PID; eval and translate go on beside the trainer."""
    run = shutil.copytree(trained, tmp_path / "run")
    args = [sys.executable, "-m", "seq2seq", "train", "--resume", str(run), "--epochs", "100000", "--max-steps",
            "100000", "--set", "train.eval_every=5", "--set", "train.patience=100000"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120
    while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    if all(p.poll() is None for p in procs):
        for p in procs:
            p.kill()
        pytest.fail("both trainers ran")
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    err = loser.communicate()[1]
    assert loser.returncode == 2, err
    assert err == (f"error: run {run} is being trained by process {winner.pid} on {socket.gethostname()}: "
                   "one trainer per run; wait for it to end or stop it\n")
    wait_for_step(run, 12, winner)
    run_cli("eval", run, "--bootstrap", 0)
    run_cli("translate", run, stdin="eins zwei\n")
    winner.send_signal(signal.SIGINT)
    winner.communicate(timeout=120)
    assert winner.returncode == 130
    steps = metric_steps(run)
    assert len(steps) == len(set(steps)) > 2


DIE_AT = """
import os, signal, sys
from seq2seq import rundir, train

def dying(cls, name, step=None):
    method = getattr(cls, name)

    def die_first(self, *args):
        if step is None or self.progress.step == step:
            os.kill(os.getpid(), signal.{signal})
        return method(self, *args)

    setattr(cls, name, die_first)

dying({where})
from seq2seq.cli import main
main()
"""


def killed_at(signal_name: str, where: str, args) -> subprocess.CompletedProcess:
    """The CLI with args, killed by the signal as it enters the method `where` names."""
    code = DIE_AT.replace("{signal}", signal_name).replace("{where}", where)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_a_kill_between_a_validation_record_and_its_checkpoint_leaves_no_duplicate(toy_dataset, tmp_path, run_cli):
    run = tmp_path / "run"
    args = train_args(toy_dataset, run, "--max-steps", 30, "--epochs", 100, "--set", "train.eval_every=10")
    killed = killed_at("SIGKILL", 'train.Trainer, "save_last", 20', args)
    assert killed.returncode == -signal.SIGKILL
    assert metric_steps(run) == [10, 20]  # the record of step 20 is written, its checkpoint is not
    resumed = run_cli("train", "--resume", run)
    assert metric_steps(run) == [10, 20, 30]
    assert "1 metrics.jsonl records past step 10 dropped" in resumed.err


def test_a_run_killed_while_being_set_up_is_replaced_by_overwrite(toy_dataset, tmp_path, run_cli):
    run = tmp_path / "run"
    killed = killed_at("SIGKILL", 'rundir.RunDir, "write_config"', train_args(toy_dataset, run, "--max-steps", 1))
    assert killed.returncode == -signal.SIGKILL
    assert (run / "run.json").exists() and (run / "checkpoints").is_dir() and not (run / "config.yaml").exists()
    for args, says in ((train_args(toy_dataset, run, "--max-steps", 1), "use --resume to continue it or --overwrite"),
                       (["train", "--resume", run], "stopped while it was being set up (no config.yaml): train it "
                                                    "again with --overwrite")):
        refused = run_cli(*args, expect=2)
        assert says in refused.err and refused.err.count("\n") == 1
    run_cli(*train_args(toy_dataset, run, "--max-steps", 1, "--overwrite"))
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"] == 1


def one_trainer_line(run: Path, pid: int) -> str:
    return (f"error: run {run} is being trained by process {pid} on {socket.gethostname()}: one trainer per run; "
            "wait for it to end or stop it\n")


def test_a_second_trainer_refused_by_the_lock_touches_nothing(trained, tmp_path, run_cli):
    """A run being trained, before its first save and after it, meets a second `train --overwrite`,
    a plain `train` into its dir and a `--resume`: each is refused in one line (the one-trainer line,
    or for a plain train after the first save, that the run exists) and leaves every file as the
    trainer wrote it; the trainer's run stays whole."""
    data, run = trained.parent / "data", shutil.copytree(trained, tmp_path / "run")
    quiet = ["--epochs", 1000, "--set", "train.eval_every=100000", "--set", "train.checkpoint_seconds=0"]
    seconds = [train_args(data, run, "--overwrite", "--set", "model.hidden_dim=48", "--max-steps", 1),
               train_args(data, run, "--max-steps", 1), ["train", "--resume", run, "--max-steps", 1]]
    exists = f"error: run dir {run} already exists: use --resume to continue it or --overwrite to replace it\n"

    def meet(first_args: list, saved: bool) -> str:
        first = subprocess.Popen([sys.executable, "-m", "seq2seq", *map(str, first_args)], stderr=subprocess.PIPE,
                                 text=True)
        next(line for line in first.stderr if ": loss " in line)  # the first log line: it trains
        for args in seconds:
            before = {name: data for name, data in files(run).items() if name != "train.log"}
            refused = run_cli(*args, expect=2)
            plain = "--overwrite" not in args and "--resume" not in args
            assert refused.err == (exists if plain and saved else one_trainer_line(run, first.pid))
            assert {name: data for name, data in files(run).items() if name != "train.log"} == before
        first.send_signal(signal.SIGINT)
        err = first.communicate(timeout=120)[1]
        assert first.returncode == 130, err
        return err

    # before its first save: the replacement of a run, with the replaced one in .replaced/
    err = meet(train_args(data, run, "--overwrite", "--set", "model.hidden_dim=48", *quiet), saved=False)
    info = json.loads((run / "run.json").read_text())
    assert len(info["commands"]) == 1 and "model.hidden_dim=48" in info["command"] and not (run / ".replaced").exists()
    assert info["best_val_bleu"] is None and "no validation yet; run dir" in err  # stopped before it validated
    # after it: the same run resumed
    meet(["train", "--resume", run], saved=True)
    assert len(json.loads((run / "run.json").read_text())["commands"]) == 2
    assert "hidden_dim: 48" in (run / "config.yaml").read_text()
    run_cli("eval", run, "--checkpoint", "last", "--bootstrap", 0)
    run_cli("train", "--resume", run, "--max-steps", json.loads((run / "run.json").read_text())["steps"] + 1)


def test_a_signal_while_an_overwrite_is_set_up_puts_the_old_run_back(trained, tmp_path):
    """SIGTERM after the old run is set aside and before the new one saves: exit 130, one line that
    says so, the old run back as it was and no temporary file; a second SIGTERM while that is
    undone changes nothing."""
    run = shutil.copytree(trained, tmp_path / "run")
    before = files(run)
    args = train_args(trained.parent / "data", run, "--overwrite")
    for where in ('rundir.RunDir, "write_config"', 'rundir.RunDir, "write_config")\ndying(rundir.RunDir, "abandon"'):
        killed = killed_at("SIGTERM", where, args)
        assert killed.returncode == 130, killed.stderr
        assert killed.stderr.splitlines()[-1] == ("error: training interrupted (SIGTERM); it had no checkpoint yet: "
                                                  f"the run it replaced is back in {run}")
        assert files(run) == before and not (run / ".replaced").exists()


def test_a_signal_while_a_new_run_is_set_up_leaves_nothing(toy_dataset, tmp_path):
    """SIGTERM in the middle of the first file a new run writes: exit 130, no run dir, no .tmp file."""
    run = tmp_path / "run"
    killed = killed_at("SIGTERM", 'os, "fsync"', train_args(toy_dataset, run, "--max-steps", 1))
    assert killed.returncode == 130, killed.stderr
    assert killed.stderr.splitlines()[-1] == ("error: training interrupted (SIGTERM); it had no checkpoint yet: "
                                              "nothing of it was kept")
    assert not run.exists() and not list(tmp_path.rglob("*.tmp"))


def test_an_overwrite_killed_outright_during_its_setup_leaves_the_old_run_to_the_next_command(trained, tmp_path,
                                                                                                 run_cli):
    """SIGKILL, which no process can handle, strands the old run in .replaced/: the next command
    that meets the run dir puts it back (a plain train, then refused as the run exists; eval)."""
    run = shutil.copytree(trained, tmp_path / "run")
    before = files(run)
    args = train_args(trained.parent / "data", run, "--overwrite")
    note = f"note: {run} holds again the run that an --overwrite stopped during its setup had set aside in {run}/.replaced"
    assert killed_at("SIGKILL", 'rundir.RunDir, "write_config"', args).returncode == -signal.SIGKILL
    assert (run / ".replaced").is_dir() and not (run / "config.yaml").exists()
    refused = run_cli(*train_args(trained.parent / "data", run, "--max-steps", 1), expect=2)
    assert refused.err.splitlines() == [note, f"error: run dir {run} already exists: use --resume to continue it "
                                              "or --overwrite to replace it"]
    assert files(run) == before
    assert killed_at("SIGKILL", 'rundir.RunDir, "write_config"', args).returncode == -signal.SIGKILL
    evaluated = run_cli("eval", run, "--bootstrap", 0)
    assert evaluated.err.splitlines()[0] == note
    assert {name: data for name, data in files(run).items() if not name.startswith("eval")} == before


def test_a_run_resumes_on_a_moved_copy_of_its_data_and_keeps_every_command(trained, tmp_path, run_cli):
    run = shutil.copytree(trained, tmp_path / "run")
    moved = shutil.copytree(trained.parent / "data", tmp_path / "moved")
    first = json.loads((run / "run.json").read_text())["commands"]
    run_cli("train", "--resume", run, "--dataset", moved, "--max-steps", 3)
    assert f"dataset: {moved}\n" in (run / "config.yaml").read_text()
    commands = json.loads((run / "run.json").read_text())["commands"]
    assert len(first) == 1 and commands[0] == first[0] and commands[1].endswith("--max-steps 3")
    # a run from before fingerprints, and before run.json kept every command, resumes as it did
    last = run / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    del ckpt["data"]
    torch.save(ckpt, last)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({k: v for k, v in info.items() if k not in ("tool", "run_format",
                                                                                          "commands")} |
                                             {"command": "seq2seq train --model bahdanau"}))
    result = run_cli("train", "--resume", run, "--max-steps", 4)
    assert "the run predates data fingerprints: that its data is unchanged cannot be checked" in result.err
    info = json.loads((run / "run.json").read_text())
    assert info["commands"][0] == "seq2seq train --model bahdanau" and len(info["commands"]) == 2
    assert info["tool"] == "seq2seq" and info["steps"] == 4


def test_a_run_whose_data_moved_is_evaluated_and_compared_where_resume_was_told_it_is(trained, tmp_path, run_cli):
    """`train --resume R --dataset NEW` (here with nothing left to train) is where the run's data
    lives from then on: `eval R` reads it there (its best checkpoint still names the old place) and
    writes the run's own report, which `compare` reads."""
    run = shutil.copytree(trained, tmp_path / "run")
    old = shutil.copytree(trained.parent / "data", tmp_path / "old")
    config = run / "config.yaml"  # the run as trained on `old`
    config.write_text(config.read_text().replace(str(trained.parent / "data"), str(old)))
    for name in ("best", "last"):
        ckpt = torch.load(run / "checkpoints" / f"{name}.pt", weights_only=True)
        ckpt["config"]["data"]["dataset"] = str(old)
        torch.save(ckpt, run / "checkpoints" / f"{name}.pt")
    new = tmp_path / "new"
    old.rename(new)
    assert "dataset directory not found" in run_cli("eval", run, expect=2).err
    run_cli("train", "--resume", run, "--dataset", new, "--max-steps", 2)
    assert torch.load(run / "checkpoints" / "best.pt", weights_only=True)["config"]["data"]["dataset"] == str(old)
    for extra in ([], ["--dataset", new]):
        run_cli("eval", run, "--bootstrap", 0, *extra)
        assert json.loads((run / "eval" / "test.json").read_text())["dataset"] == str(new)
        assert sorted(p.name for p in (run / "eval").iterdir() if p.is_dir()) == []
    run_cli("compare", run)


def test_no_arguments_print_the_help_and_the_version_is_known(run_cli):
    from seq2seq import __version__

    bare = run_cli(expect=None)
    assert "Usage: seq2seq" in bare.out and bare.err == ""
    assert run_cli("--version").out == f"seq2seq {__version__}\n"


def test_a_relative_dataset_path_is_stored_absolute(tmp_path, run_cli):
    """The run's config must find its data from any working directory (eval, --resume)."""
    write_jsonl(tmp_path / "data")
    run_cli("train", "--config", TINY, "--dataset", "data", "--run-dir", "run", "--max-steps", 1, cwd=tmp_path)
    assert f"dataset: {tmp_path.resolve() / 'data'}" in (tmp_path / "run" / "config.yaml").read_text()
    run_cli("eval", tmp_path / "run", "--bootstrap", 0, cwd=ROOT)


def test_validation_pairs_longer_than_the_positions_do_not_stop_training(tmp_path, run_cli):
    data = write_jsonl(tmp_path / "data")
    result = run_cli(*train_args(data, tmp_path / "run", "--model", "transformer", "--max-steps", 2,
                                 "--set", "model.max_positions=6"))
    assert "dropped as longer than 5 tokens" in result.err


def test_a_metrics_line_cut_short_is_skipped_and_the_next_starts_anew(tmp_path):
    from seq2seq.files import append_line
    from seq2seq.rundir import RunDir

    run = RunDir(tmp_path)
    append_line(run.metrics, json.dumps({"step": 1, "elapsed": 1.0}))
    with open(run.metrics, "a") as f:
        f.write('{"step": 2, "ep')  # the process was killed here
    append_line(run.metrics, json.dumps({"step": 3, "elapsed": 3.0}))
    assert run.metrics.read_text().splitlines()[-1] == '{"step": 3, "elapsed": 3.0}'
    assert [(m.step, m.elapsed) for m in run.read_metrics()] == [(1, 1.0), (3, 3.0)]


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


def test_a_10000_word_line_is_dropped_and_counted(tmp_path, run_cli):
    data = write_jsonl(tmp_path / "data")
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"de": "wort " * 10_000, "en": "word"}) + "\n")
    result = run_cli(*train_args(data, tmp_path / "run", "--max-steps", 1))
    assert "1 longer than 100 words" in result.err


def test_a_checkpoint_cut_short_by_the_disk_is_one_line_and_the_old_ones_stay(trained, tmp_path):
    """The kernel refuses a checkpoint's bytes part way (here a file size limit, EFBIG, as a full disk
    refuses them with ENOSPC): torch's writer raises a RuntimeError from the OSError; it is one line,
    exit 2, and the checkpoints there before are unchanged, with no temporary file beside them."""
    import resource

    run = shutil.copytree(trained, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    limit = min(len(data) for data in before.values()) // 2

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    result = subprocess.run([sys.executable, "-m", "seq2seq", "train", "--resume", str(run), "--max-steps", "3"],
                            capture_output=True, text=True, preexec_fn=small_files)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: cannot write {run}/checkpoints/") and line.endswith(".pt: File too large")
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before


def test_a_sentence_of_one_word_of_a_megabyte_is_dropped_by_its_tokens(tmp_path, run_cli):
    """max_words counts it as one word; data.max_tokens counts its pieces, and training goes on."""
    data = write_jsonl(tmp_path / "data")
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"de": "eins" * 250_000, "en": "one" * 333_333}) + "\n")
    result = run_cli(*train_args(data, tmp_path / "run", "--max-steps", 1))
    assert "train: 1 pairs dropped as longer than data.max_tokens=400 tokens" in result.err


@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_loses_nothing(trained, tmp_path, monkeypatch, run_cli, failure):
    """The disk fails at the first write: one line, exit 2, no temporary or partial file left."""
    import seq2seq.files

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = snapshot(run)

    def broken_fsync(fd):
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr(seq2seq.files.os, "fsync", broken_fsync)
    for args in (["eval", run, "--bootstrap", 0],
                 ["train", "--resume", run, "--max-steps", 3],
                 ["train", "--config", TINY, "--dataset", trained.parent / "data", "--run-dir", tmp_path / "new"]):
        err = run_cli(*args, in_process=True, expect=2).err.strip().splitlines()
        assert err[-1].startswith("error: cannot write") and os.strerror(failure) in err[-1]
        assert not list(run.rglob("*.tmp")) and not list(run.rglob(".*"))
        assert not (tmp_path / "new").exists()
    after = snapshot(run)
    kept = (".log", "metrics.jsonl", "eval", "train.lock")  # appended to, or rewritten by whoever locks
    assert {p: t for p, t in after.items() if not p.endswith(kept)} == \
        {p: t for p, t in before.items() if not p.endswith(kept)}


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
        cli(*train_args(data, root / "trained" / "run", "--max-steps", 2))
        for case in CASES:
            tmp = root / case
            tmp.mkdir()
            print(docs_table_row(case, run_case(case, tmp, root / "trained" / "run")))


if __name__ == "__main__":
    main()
