"""Precision: what each model runs in on each device, and the benchmark's lines saying so."""

import json
import subprocess
import sys

import torch

from seq2seq.device import pick_device, precision_label
from tests.conftest import ROOT, write_jsonl
from tests.test_models import tiny_model


def test_cuda_runs_fp32_matrix_products_on_the_tensor_cores_in_tf32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        assert pick_device("cuda") == torch.device("cuda")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_on_cuda_fp32_is_labelled_tf32_and_bf16_names_the_rnn_layers_outside_autocast():
    cuda, before = torch.device("cuda"), torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True  # as pick_device("cuda") sets it
    try:
        assert precision_label(tiny_model("transformer"), "bf16", cuda) == "bf16"
        assert precision_label(tiny_model("bahdanau"), "bf16", cuda) == "bf16 (tf32: encoder)"
        assert precision_label(tiny_model("lstm"), "bf16", cuda) == "bf16 (tf32: encoder, decoder)"
        assert precision_label(tiny_model("rnn"), "fp32", cuda) == "tf32"
        assert precision_label(tiny_model("rnn"), "fp32", torch.device("cpu")) == "fp32"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_the_benchmark_labels_training_and_decoding_each_with_the_precision_it_ran_in(tmp_path):
    data = write_jsonl(tmp_path / "data")
    args = [sys.executable, ROOT / "scripts" / "bench.py", "--model", "bahdanau", "--updates", "2",
            "--warmup", "0", "--dataset", data, "--device", "cpu", "--decode", "5", "--set", "data.vocab_size=60",
            "--set", "train.precision=bf16"]
    for name in ("emb_dim", "hidden_dim", "attn_dim"):
        args += ["--set", f"model.{name}=16"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["what"], r["dtype"]) for r in lines] == [("train", "bf16"), ("greedy", "fp32"), ("beam5", "fp32")]
