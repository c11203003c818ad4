"""The GPU path, on a CUDA GPU: `python -m pytest -q -m cuda`. Marked `cuda`, so skipped where
torch sees no GPU (tests/conftest.py). Tiny models, toy data, fixed seeds; fp32 runs in TF32 on
CUDA (pick_device), so the tolerances are those of TF32 and bf16."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from seq2seq.config import EvalConfig
from seq2seq.device import autocast, pick_device, precision_label
from seq2seq.metrics import corpus_scores
from seq2seq.models import MODELS
from seq2seq.search import beam_search, greedy, translate
from tests.conftest import batch_of, overfit_tiny_model, tiny_trainer, tiny_update, toy_pairs
from tests.test_models import random_batch, tiny_model

pytestmark = pytest.mark.cuda


@pytest.fixture
def gpu() -> torch.device:
    return pick_device("cuda")


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm().clamp_min(1e-12))


def test_a_bf16_step_with_the_fused_optimizer_trains_with_the_gru_encoder_in_fp32(tmp_path, gpu):
    update, tok = tiny_update(device=gpu, precision="bf16")
    model = update.model
    assert all(group["fused"] for group in update.optimizer.param_groups)
    assert precision_label(model, update.precision, gpu) == "bf16 (tf32: encoder)"
    dtypes = {}
    for name in ("encoder", "decoder", "readout"):  # nn.GRU, nn.GRUCell, Maxout (nn.Linear)
        def hook(module, inputs, output, name=name):
            out = output[0] if isinstance(output, tuple) else output
            dtypes[name] = (out.data if isinstance(out, PackedSequence) else out).dtype
        getattr(model, name).register_forward_hook(hook)
    batch = batch_of(tok, toy_pairs(16, seed=4)).to(gpu)
    losses = []
    for _ in range(40):  # at step 0 throughout: the learning rate stays train.lr
        stats = update(batch, update.lr(0))
        assert stats.loss_sum.device.type == "cuda"
        loss, tokens, skipped, _ = stats.read()
        assert skipped == 0 and tokens == batch.n_tokens
        losses.append(loss / tokens)
    # cuDNN's GRU outside autocast, in fp32 (under it: fp16); the GRU cell and the readout in bf16
    assert dtypes == {"encoder": torch.float32, "decoder": torch.bfloat16, "readout": torch.bfloat16}
    assert losses[-1] < 0.7 * losses[0], losses
    for p in model.parameters():
        assert p.dtype == torch.float32 and bool(torch.isfinite(p).all())
        step = update.optimizer.state[p]["step"]
        assert (step.device, step.dtype, step.item()) == (p.device, torch.float32, 40.0)


def test_a_non_finite_loss_is_skipped_on_the_gpu_without_touching_the_weights(tmp_path, gpu):
    update, tok = tiny_update(device=gpu, precision="bf16")
    model, optimizer = update.model, update.optimizer
    batch = batch_of(tok, toy_pairs(8, seed=4)).to(gpu)
    assert update(batch, update.lr(0)).read()[2] == 0  # a good step first, so that Adam has moments to keep
    before = copy.deepcopy((model.state_dict(), optimizer.state_dict()["state"]))
    update.replica = lambda *inputs: model(*inputs) * float("nan")
    assert update(batch, update.lr(0)).read() == [0.0, 0.0, 1.0, 0.0]
    weights, moments = model.state_dict(), optimizer.state_dict()["state"]
    assert all(torch.equal(before[0][k], weights[k]) for k in weights)
    assert all(torch.equal(before[1][p][k], moments[p][k]) for p in moments for k in moments[p])
    update.replica = model
    assert update(batch, update.lr(0)).read()[2] == 0
    assert not all(torch.equal(before[0][k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_of_the_earlier_unfused_optimizer_resumes_fused_on_the_gpu(tmp_path, gpu):
    trainer, tok = tiny_trainer(tmp_path, device=gpu)
    batch = batch_of(tok, toy_pairs(8, seed=4)).to(gpu)
    unfused = torch.optim.AdamW(trainer.model.parameters(), lr=1e-3)  # as checkpoints before the fused one
    trainer.model(batch.src, batch.src_mask, batch.tgt_in).sum().backward()
    unfused.step()
    saved = unfused.state_dict()
    assert {state["step"].device.type for state in saved["state"].values()} == {"cpu"}
    saves = trainer.checkpoints
    saves.restore(saves.state(trainer.progress, [saves.rng_state()]) | {"optimizer": saved})
    for p in trainer.model.parameters():
        step = trainer.update.optimizer.state[p]["step"]
        assert (step.device, step.dtype) == (p.device, torch.float32)
    loss, tokens, skipped, _ = trainer.update(batch, trainer.lr()).read()
    assert skipped == 0 and loss > 0 and tokens == batch.n_tokens


@pytest.mark.parametrize("name", ["transformer", "bahdanau"])
def test_the_steps_compiled_by_inductor_give_the_eager_logits_and_gradients(name, gpu):
    torch._dynamo.reset()
    eager, compiled = tiny_model(name).train().to(gpu), tiny_model(name).train().to(gpu)
    compiled.compile_steps()  # inductor, as train.compile does
    for precision, tolerance in (("fp32", 1e-2), ("bf16", 1e-1)):  # fp32 runs in TF32 here
        for B, S, T in ((3, 7, 6), (2, 9, 4), (3, 5, 8)):
            src, mask, tgt_in = (t.to(gpu) for t in random_batch(B, S, T, seed=T))
            results = []
            for model in (eager, compiled):
                model.zero_grad()
                with autocast(gpu, precision):
                    logits = model(src, mask, tgt_in)  # (B, T, V)
                logits.float().square().mean().backward()
                results.append((logits.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
            (want, want_grad), (got, got_grad) = results
            assert relative_error(got, want) < tolerance, (precision, B, S, T)
            assert relative_error(got_grad, want_grad) < tolerance, (precision, B, S, T)


@pytest.mark.parametrize("name", list(MODELS))
def test_greedy_and_beam_search_on_the_gpu_give_the_cpus_translations(name, gpu):
    """A tiny model overfits eight pairs on the CPU; the GPU (TF32) translates them as the CPU does."""
    model, tok, pairs = overfit_tiny_model(name)
    sources, cpu = [s for s, _ in pairs], torch.device("cpu")
    on_cpu = {beam: translate(model, tok, sources, cpu, EvalConfig(beam=beam)) for beam in (1, 4)}
    assert corpus_scores(on_cpu[1], [t for _, t in pairs])["bleu"] > 90, on_cpu[1]
    model.to(gpu)
    for beam in (1, 4):
        assert translate(model, tok, sources, gpu, EvalConfig(beam=beam)) == on_cpu[beam], beam
    batch = batch_of(tok, pairs)
    src, src_mask = batch.src.to(gpu), batch.src_mask.to(gpu)
    max_len = torch.full((len(pairs),), 8, device=gpu)
    model.eval()
    greedy_tokens = [h.tokens for h in greedy(model, src, src_mask, max_len)]
    assert beam_search(model, src, src_mask, max_len, beam=1) == greedy_tokens


def test_under_cuda_autocast_the_nn_rnn_layers_run_in_fp32_not_fp16(gpu):
    """What models.base.run_rnn steps around: under CUDA's autocast, cuDNN's RNN runs in fp16."""
    for name in ("rnn", "lstm", "bahdanau"):
        model = tiny_model(name).to(gpu)
        rnns = [n for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]
        dtypes = {}
        for n in rnns:
            def hook(module, inputs, output, n=n):
                dtypes[n] = (output[0].data if isinstance(output[0], PackedSequence) else output[0]).dtype
            model.get_submodule(n).register_forward_hook(hook)
        with torch.no_grad(), autocast(gpu, "bf16"):
            x = torch.randn(3, 5, model.encoder.input_size, device=gpu)
            assert model.encoder(x)[0].dtype == torch.float16, name  # torch's rule, called directly
            dtypes.clear()
            model(*(t.to(gpu) for t in random_batch()))
        assert dtypes == dict.fromkeys(rnns, torch.float32), name
