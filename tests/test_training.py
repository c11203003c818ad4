"""Training behaviour: every model overfits a handful of pairs; the CLI trains and evaluates end to end."""

import copy
import json
import math

import pytest
import torch

from seq2seq.config import EvalConfig, load_config
from seq2seq.likelihood import reference_nll
from seq2seq.loss import token_loss
from seq2seq.metrics import corpus_scores
from seq2seq.models import MODELS
from seq2seq.models.build import build_model
from seq2seq.search import translate
from seq2seq.tokenizer import PAD, Tokenizer
from tests.conftest import MULTI30K, TINY, batch_of, overfit_tiny_model, tiny, tiny_trainer, tiny_update, toy_pairs


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_overfits_a_handful_of_pairs(name):
    model, tok, pairs = overfit_tiny_model(name)
    hyps = translate(model, tok, [s for s, _ in pairs], torch.device("cpu"), EvalConfig())
    assert corpus_scores(hyps, [t for _, t in pairs])["bleu"] > 90, hyps


@pytest.mark.parametrize("name", list(MODELS))
def test_scores_nll_is_the_training_loss_without_label_smoothing(name):
    """Forced decoding, batched by length, gives each reference the loss training sums for it."""
    pairs = toy_pairs(12, seed=7)
    tok = Tokenizer.train([s for p in toy_pairs(300) for s in p], vocab_size=60)
    cfg = load_config(tiny(name))
    torch.manual_seed(0)
    model = build_model(cfg.model, tok.vocab_size)
    token_nlls = reference_nll(model, tok, pairs, torch.device("cpu"), batch_tokens=40)  # several batches
    assert model.training  # left as it was found
    model.eval()
    with torch.no_grad():
        for pair, nlls in zip(pairs, token_nlls):
            b = batch_of(tok, [pair])
            assert len(nlls) == b.n_tokens == len(tok.encode([pair[1]])[0]) + 1
            assert sum(nlls) == pytest.approx(model(b.src, b.src_mask, b.tgt_in, b.tgt_out).item(), rel=1e-5)
        b = batch_of(tok, pairs)
        assert sum(map(sum, token_nlls)) == pytest.approx(
            model(b.src, b.src_mask, b.tgt_in, b.tgt_out).item(), rel=1e-5)


def test_score_cuts_what_exceeds_the_positions_as_translate_does():
    tok = Tokenizer.train([s for p in toy_pairs(300) for s in p], vocab_size=60)
    cfg = load_config(tiny("transformer"), {"model.max_positions": 6})
    model = build_model(cfg.model, tok.vocab_size)
    long = " ".join(["eins zwei drei vier"] * 3), " ".join(["One two three four."] * 3)
    short = "eins", "One."
    nlls = reference_nll(model, tok, [long, short], torch.device("cpu"))
    assert [len(x) for x in nlls] == [6, len(tok.encode(["One."])[0]) + 1]  # 5 tokens and EOS; all of it


def test_train_then_eval_end_to_end(toy_dataset, tmp_path, run_cli):
    run = tmp_path / "run"
    run_cli("train", "--config", TINY, "--dataset", toy_dataset, "--max-steps", 12, "--epochs", 50, "--run-dir", run,
            "--set", "train.eval_every=6")
    for name in ("config.yaml", "spm.model", "run.json", "metrics.jsonl", "train.log",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).exists(), name
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [6, 12]
    assert set(metrics[0]) >= {"step", "epoch", "train_loss", "val_loss", "val_bleu", "tgt_tok_per_s", "elapsed"}
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "bahdanau" and info["params"] > 0 and info["steps"] == 12

    out = run_cli("eval", run, "--concat", "1,2,3")
    report = json.loads((run / "eval" / "test.json").read_text())
    assert {"bleu", "chrf", "signature", "buckets", "concat"} <= set(report)
    assert report["signature"]["bleu"].startswith("nrefs:1|case:mixed")
    assert [b["range"] for b in report["buckets"]] == ["1-10", "11-15", "16-20", "21+"]
    assert sum(b["n"] for b in report["buckets"]) == 40 == report["n"]
    # 40 pairs in threes: 13 joins of three and a last one of the pair left over, counted as one
    sources = [s for s, _ in toy_pairs(40, 3)]
    assert [(c["k"], c["n"]) for c in report["concat"]] == [(1, 40), (2, 20), (3, 14)]
    assert report["concat"][2]["src_words"] == round(sum(len(s.split()) for s in sources) / 14, 1)
    joined = (run / "eval" / "test.concat3.hyp.txt").read_text().splitlines()
    assert len(joined) == 14 and len((run / "eval" / "test.hyp.txt").read_text().splitlines()) == 40
    # the table on stdout, with the signatures; stderr holds nothing
    assert f"BLEU {report['bleu']:.2f}" in out.out and f"  {report['signature']['bleu']}\n" in out.out
    assert out.err == ""


@pytest.mark.parametrize("poisoned", ["loss", "gradient"])
def test_a_batch_with_a_non_finite_loss_or_gradient_is_skipped_without_touching_the_weights(tmp_path, poisoned):
    update, tok = tiny_update()
    batch = batch_of(tok, toy_pairs(8, seed=4))
    model, optimizer = update.model, update.optimizer
    good = update(batch, update.lr(0)).read()  # a good step first, so that Adam has moments to keep
    assert good[1] == batch.n_tokens and good[0] > 0 and good[2] == 0 and good[3] > 0
    before = copy.deepcopy((model.state_dict(), optimizer.state_dict()["state"]))

    if poisoned == "loss":
        update.replica = lambda *inputs: model(*inputs) * float("nan")
    else:  # a finite loss whose backward overflows
        hook = model.W_o.bias.register_hook(lambda grad: grad * float("inf"))
    assert update(batch, update.lr(0)).read() == [0.0, 0.0, 1.0, 0.0]
    weights, moments = model.state_dict(), optimizer.state_dict()["state"]
    assert all(torch.equal(before[0][k], weights[k]) for k in weights)
    assert all(torch.equal(before[1][p][k], moments[p][k]) for p in moments for k in moments[p])

    update.replica = model
    if poisoned == "gradient":
        hook.remove()
    update(batch, update.lr(0))
    assert not all(torch.equal(before[0][k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_of_the_earlier_unfused_optimizer_resumes_with_steps_where_fused_adamw_reads_them(tmp_path):
    """The unfused AdamW keeps each `step` as it was saved; the fused kernel reads it as a float32
    tensor on the param's device (on CUDA, as a device pointer). The saved steps are made float64
    here, so that on the CPU too a `step` left as saved shows."""
    trainer, tok = tiny_trainer(tmp_path)
    batch = batch_of(tok, toy_pairs(8, seed=4))
    unfused = torch.optim.AdamW(trainer.model.parameters(), lr=1e-3)  # as checkpoints before the fused one
    trainer.model(batch.src, batch.src_mask, batch.tgt_in).sum().backward()
    unfused.step()
    saved = unfused.state_dict()
    assert saved["param_groups"][0]["fused"] is None
    for state in saved["state"].values():
        state["step"] = state["step"].double()
    saves = trainer.checkpoints
    saves.restore(saves.state(trainer.progress, [saves.rng_state()]) | {"optimizer": saved})
    optimizer = trainer.update.optimizer
    assert all(group["fused"] for group in optimizer.param_groups)
    for p in trainer.model.parameters():
        step = optimizer.state[p]["step"]
        assert (step.dtype, step.device, step.item()) == (torch.float32, p.device, 1.0)
    assert trainer.update(batch, trainer.lr()).read()[2] == 0


def test_training_stops_when_more_batches_than_allowed_are_non_finite(toy_dataset, tmp_path, run_cli):
    # A learning rate of 1e30 makes the weights infinite after the first update; every later loss is NaN.
    args = ["train", "--config", TINY, "--dataset", toy_dataset, "--max-steps", 20, "--epochs", 50,
            "--set", "train.lr=1e30", "--set", "train.warmup_steps=0", "--set", "train.log_every=5",
            "--set", "train.eval_every=20"]
    failed = run_cli(*args, "--run-dir", tmp_path / "a", expect=1)
    assert failed.err.strip().splitlines()[-1] == ("error: non-finite loss or gradient in 4 batches by step 5 "
                                                   "(more than train.max_nonfinite=0); no checkpoint was saved yet")

    run_cli(*args, "--set", "train.max_nonfinite=19", "--run-dir", tmp_path / "b")
    log = (tmp_path / "b" / "train.log").read_text()
    assert "step 5: 4 batches with a non-finite loss or gradient skipped (4/19)" in log
    assert "step 20: 5 batches with a non-finite loss or gradient skipped (19/19)" in log
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["progress"]["nonfinite"] == 19


def test_compiling_on_the_cpu_without_a_compiler_is_one_line_before_anything_is_written(toy_dataset, tmp_path,
                                                                                       run_cli, monkeypatch):
    from torch._inductor import config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", (None, "no-such-c++"))
    run = tmp_path / "run"
    failed = run_cli("train", "--config", TINY, "--dataset", toy_dataset, "--max-steps", 2, "--run-dir", run,
                     "--device", "cpu", "--set", "train.compile=true", in_process=True, expect=2)
    assert failed.err == ("error: train.compile=true on the CPU needs the C++ compiler inductor calls (no-such-c++, "
                          "not found): install it (apt install g++) or leave train.compile false\n")
    assert not run.exists()


def test_same_seed_same_cpu_run(toy_dataset, tmp_path, run_cli):
    weights = []
    for name in ("a", "b"):
        run_cli("train", "--config", TINY, "--dataset", toy_dataset, "--max-steps", 5, "--run-dir", tmp_path / name)
        weights.append(torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["model"])
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


@pytest.mark.skipif(not MULTI30K.exists(), reason="needs ../shared/data/multi30k")
def test_real_multi30k_flows_through(tmp_path, run_cli):
    run = tmp_path / "real"
    run_cli("train", "--config", TINY, "--dataset", MULTI30K, "--max-train-pairs", 2000, "--max-steps", 10,
            "--run-dir", run, "--set", "data.vocab_size=1000")
    log = (run / "train.log").read_text()
    assert "train: 2000 pairs kept" in log and "validation: 1014 pairs" in log
    run_cli("eval", run, "--bootstrap", 0)
    report = json.loads((run / "eval" / "test.json").read_text())
    rows = [json.loads(line) for line in (MULTI30K / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    hyps = (run / "eval" / "test.hyp.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert report["n"] == len(hyps) == len(rows) == 1000
    # ten updates take the references' NLL below a uniform guess over the 1,000 pieces (ln 1000 = 6.9)
    assert report["nll"] < math.log(1000) - 0.1
    words = [len(row["de"].split()) for row in rows]
    assert [b["n"] for b in report["buckets"]] == [sum(lo <= n <= hi for n in words)
                                                   for lo, hi in ((1, 10), (11, 15), (16, 20), (21, 10**9))]


def test_cosine_schedule_anneals_by_whichever_of_steps_and_time_budget_ends_the_run():
    from seq2seq.schedule import lr_at

    cfg = load_config(TINY, {"train.schedule": "cosine", "train.warmup_steps": 10, "train.lr": 1e-3,
                             "train.min_lr": 1e-5, "train.time_budget": 100.0})
    total = 1000
    assert lr_at(10, cfg.train, total, elapsed=0.0) == pytest.approx(1e-3)
    assert lr_at(505, cfg.train, total, elapsed=1.0) == pytest.approx((1e-3 + 1e-5) / 2)  # halfway by steps
    assert lr_at(20, cfg.train, total, elapsed=50.0) == pytest.approx((1e-3 + 1e-5) / 2)  # halfway by time
    assert lr_at(20, cfg.train, total, elapsed=100.0) == pytest.approx(1e-5)  # the budget is spent: the floor
    assert lr_at(total, cfg.train, total, elapsed=1.0) == pytest.approx(1e-5)  # the steps are done: the floor
    no_budget = cfg.replace({"train.time_budget": None})
    assert lr_at(20, no_budget.train, total, elapsed=1e6) > 9e-4  # without a budget time does not count
    # warmup took half the budget: both fractions count from its end, so the rate goes on from its
    # peak (1e-3, where counting the warmup's time in would drop it to 5.05e-4 in one step)
    assert lr_at(9, cfg.train, total, elapsed=49.9) == pytest.approx(1e-3)
    assert lr_at(10, cfg.train, total, elapsed=50.0, warmup_elapsed=50.0) == pytest.approx(1e-3)
    assert lr_at(20, cfg.train, total, elapsed=75.0, warmup_elapsed=50.0) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(20, cfg.train, total, elapsed=120.0, warmup_elapsed=120.0) == pytest.approx(1e-5)  # warmup ate it


def test_a_time_budgeted_run_keeps_when_its_warmup_ended(toy_dataset, tmp_path, run_cli):
    run = tmp_path / "run"
    run_cli("train", "--config", TINY, "--dataset", toy_dataset, "--run-dir", run, "--time-budget", 1000,
            "--max-steps", 12, "--set", "train.schedule=cosine", "--set", "train.warmup_steps=5")
    progress = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]
    assert 0 < progress["warmup_elapsed"] < progress["elapsed"]


def test_a_time_budgeted_cosine_run_ends_at_the_schedules_floor(toy_dataset, tmp_path, run_cli):
    run_cli("train", "--config", TINY, "--dataset", toy_dataset, "--run-dir", tmp_path / "run",
            "--time-budget", 4, "--epochs", 1000, "--set", "train.schedule=cosine",
            "--set", "train.warmup_steps=0", "--set", "train.min_lr=1e-5", "--set", "train.patience=100000",
            "--set", "train.eval_every=1")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "time budget" in json.loads((tmp_path / "run" / "run.json").read_text())["stopped"]
    peak, floor = load_config(TINY).train.lr, 1e-5
    # the last record is written as the budget runs out (its validation may end past it): the
    # rate is within 2% of its range above the floor, where a schedule blind to time stays at its peak
    assert records[-1]["lr"] < floor + 0.02 * (peak - floor), records[-1]
    assert len(records) >= 2 and records[0]["lr"] > 0.1 * peak  # it was annealing, not at the floor from the start


@pytest.mark.parametrize("name", list(MODELS))
def test_a_bf16_training_step_on_the_cpu_is_close_to_fp32_and_finite(name, tmp_path):
    """train.precision=bf16: the step runs under bf16 autocast; logits within bf16's tolerance of
    fp32 and a finite loss and gradient, master weights still fp32."""
    from seq2seq.device import autocast

    pairs = toy_pairs(6, seed=3)
    tok = Tokenizer.train([s for p in toy_pairs(300) for s in p], vocab_size=60)
    cfg = load_config(tiny(name), {"model.dropout": 0.0})
    torch.manual_seed(0)
    model = build_model(cfg.model, tok.vocab_size).train()
    batch = batch_of(tok, pairs)
    want = model(batch.src, batch.src_mask, batch.tgt_in)
    with autocast(torch.device("cpu"), "bf16"):
        got = model(batch.src, batch.src_mask, batch.tgt_in)
        loss = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out, 0.1)  # the training step's loss
    loss.backward()
    torch.testing.assert_close(got.float(), want, atol=0.1, rtol=0.05)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(token_loss(want, batch.tgt_out, 0.1).item(), rel=0.02)
    assert all(p.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters()
               if p.grad is not None)


def test_learning_rate_schedules_at_known_steps():
    """Linear warmup over train.warmup_steps to train.lr, then inverse square root of the step,
    cosine down to train.min_lr at the last step, or constant."""
    from seq2seq.schedule import lr_at

    cfg = load_config(TINY, {"train.lr": 1e-3, "train.warmup_steps": 4, "train.min_lr": 1e-5})
    total = 104  # 100 steps after the warmup
    for schedule in ("inverse_sqrt", "cosine", "constant"):
        at = cfg.replace({"train.schedule": schedule})
        # warmup: step s (0-based) runs at lr * (s + 1) / warmup_steps, whatever comes after
        assert [lr_at(s, at.train, total) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    inverse_sqrt = cfg.replace({"train.schedule": "inverse_sqrt"})
    assert lr_at(4, inverse_sqrt.train, total) == pytest.approx(1e-3 * (4 / 5) ** 0.5)
    assert lr_at(15, inverse_sqrt.train, total) == pytest.approx(5e-4)  # lr * sqrt(4 / 16)
    assert lr_at(399, inverse_sqrt.train, total) == pytest.approx(1e-4)  # lr * sqrt(4 / 400)
    assert lr_at(10**6, inverse_sqrt.train, total) == pytest.approx(1e-3 * (4 / (10**6 + 1)) ** 0.5)  # no floor, no end
    no_warmup = inverse_sqrt.replace({"train.warmup_steps": 0})
    assert [lr_at(s, no_warmup.train, total) for s in (0, 3, 99)] == pytest.approx([1e-3, 5e-4, 1e-4])  # lr / sqrt(s + 1)
    cosine = cfg.replace({"train.schedule": "cosine"})
    quarter = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi / 4))
    assert [lr_at(s, cosine.train, total) for s in (4, 29, 54, 104, 500)] == \
        pytest.approx([1e-3, quarter, (1e-3 + 1e-5) / 2, 1e-5, 1e-5])  # the floor from the last step on
    constant = cfg.replace({"train.schedule": "constant"})
    assert [lr_at(s, constant.train, total, elapsed=1e6) for s in (4, 104, 10**6)] == [1e-3] * 3


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_padding_costs_nothing_with_or_without_label_smoothing(smoothing):
    """token_loss sums over real target tokens only: PAD positions, whatever their logits, add no
    loss and get no gradient; each real token costs (1 - eps) * -log p(y) + eps * mean_v -log p(v)."""
    g = torch.Generator().manual_seed(0)
    V = 7
    logits = torch.randn(2, 3, V, generator=g)  # (B, T, V)
    tgt_out = torch.tensor([[4, 5, 3], [6, 3, PAD]])  # the second target is one token shorter
    loss = token_loss(logits, tgt_out, smoothing)
    logp = logits.log_softmax(-1)
    real = [(b, t) for b in range(2) for t in range(3) if tgt_out[b, t] != PAD]
    want = sum((1 - smoothing) * -logp[b, t, tgt_out[b, t]] - smoothing * logp[b, t].mean() for b, t in real)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)

    # two more PAD positions, with large random logits
    extra = 50 * torch.randn(2, 2, V, generator=g)
    padded_logits = torch.cat([logits, extra], dim=1).requires_grad_()  # (B, T + 2, V)
    padded = torch.cat([tgt_out, torch.full((2, 2), PAD)], dim=1)
    padded_loss = token_loss(padded_logits, padded, smoothing)
    assert padded_loss.item() == pytest.approx(loss.item(), rel=1e-6)
    padded_loss.backward()
    assert torch.equal(padded_logits.grad[:, 3:], torch.zeros(2, 2, V)) and torch.equal(padded_logits.grad[1, 2],
                                                                                         torch.zeros(V))
    assert padded_logits.grad[0, 2].abs().sum() > 0


def test_best_is_the_checkpoint_of_highest_validation_bleu_and_patience_stops_the_run(toy_dataset, tmp_path,
                                                                                     run_cli, monkeypatch):
    """Validation BLEU scripted, one validation per step, train.patience=2: a tie is no
    improvement, a new best starts the count again, and the third validation in a row without a
    better BLEU stops the run; best.pt holds the step of the highest BLEU, its first if repeated."""
    from seq2seq import validation

    script = [10.0, 5.0, 5.0, 20.0, 20.0, 15.0, 15.0] + [50.0] * 20  # 50: never reached
    validated = []

    def scripted(hyps, refs):
        validated.append(len(hyps))
        return {"bleu": script[len(validated) - 1]}

    monkeypatch.setattr(validation, "corpus_scores", scripted)
    run = tmp_path / "run"
    run_cli("train", "--config", TINY, "--dataset", toy_dataset, "--run-dir", run, "--epochs", 100,
            "--max-steps", 27, "--set", "train.eval_every=1", "--set", "train.patience=2", in_process=True)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["step"], m["val_bleu"]) for m in metrics] == list(zip(range(1, 8), script))
    assert validated == [40] * 7  # the 40 validation pairs, at each of steps 1 to 7
    info = json.loads((run / "run.json").read_text())
    assert (info["steps"], info["best_val_bleu"]) == (7, 20.0)
    assert info["stopped"] == "no better validation BLEU in 3 validations"
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert (best["progress"]["step"], best["progress"]["best_bleu"]) == (4, 20.0)
    assert (last["progress"]["step"], last["progress"]["bad_validations"]) == (7, 3)
    assert not torch.equal(best["model"]["W_o.weight"], last["model"]["W_o.weight"])  # trained on after step 4


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_output_loss_is_token_loss_of_the_output_layer_block_by_block(smoothing, monkeypatch):
    """output_loss, the training loss worked out a block of rows at a time with its gradient,
    equals token_loss of the whole logits, in value and in the gradients of what the output
    layer reads, its weight and its bias; PAD rows get no gradient; under no_grad it only adds up."""
    import seq2seq.loss

    g = torch.Generator().manual_seed(0)
    V, d = 11, 5
    monkeypatch.setattr(seq2seq.loss, "BLOCK_ELEMENTS", 3 * V)  # blocks of 3 rows: 8 rows make 3 blocks
    output = torch.nn.Linear(d, V)
    h = torch.randn(2, 4, d, generator=g, requires_grad=True)  # (B, T, d)
    tgt_out = torch.tensor([[4, 5, 3, 9], [6, 3, PAD, PAD]])
    want = token_loss(output(h), tgt_out, smoothing)
    want_grads = torch.autograd.grad(want, [h, output.weight, output.bias])
    got = seq2seq.loss.output_loss(h, output, tgt_out, smoothing)
    got_grads = torch.autograd.grad(2 * got, [h, output.weight, output.bias])  # the upstream gradient scales
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    for w, gg in zip(want_grads, got_grads):
        torch.testing.assert_close(gg, 2 * w, rtol=1e-5, atol=1e-6)
    assert torch.equal(got_grads[0][1, 2:], torch.zeros(2, d))
    with torch.no_grad():
        assert seq2seq.loss.output_loss(h, output, tgt_out, smoothing).item() == pytest.approx(want.item(), rel=1e-6)


def test_output_loss_under_bf16_autocast_is_close_to_fp32():
    """Under bf16 autocast the blocks' matrix products run in bf16 and their softmax in fp32:
    the loss and the gradients stay within bf16's tolerance, in the inputs' own dtypes."""
    from seq2seq.device import autocast
    from seq2seq.loss import output_loss

    g = torch.Generator().manual_seed(1)
    output = torch.nn.Linear(16, 50)
    h = torch.randn(3, 7, 16, generator=g, requires_grad=True)
    tgt_out = torch.randint(1, 50, (3, 7), generator=g)
    want = token_loss(output(h), tgt_out, 0.1)
    want_grads = torch.autograd.grad(want, [h, output.weight])
    with autocast(torch.device("cpu"), "bf16"):
        got = output_loss(h, output, tgt_out, 0.1)
    got_grads = torch.autograd.grad(got, [h, output.weight])
    assert got.dtype == torch.float32 and got.item() == pytest.approx(want.item(), rel=0.01)
    for w, gg in zip(want_grads, got_grads):
        assert gg.dtype == torch.float32
        torch.testing.assert_close(gg, w, rtol=0.05, atol=0.02)
