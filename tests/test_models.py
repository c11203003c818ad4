"""Behaviour shared by all four translators, through the one interface."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from seq2seq.config import EvalConfig, load_config
from seq2seq.models import MODELS
from seq2seq.models.build import build_model
from seq2seq.models.base import Seq2Seq
from seq2seq.search import beam_hypotheses, beam_search, greedy
from seq2seq.tokenizer import BOS, EOS, PAD, UNK
from tests.conftest import tiny

V = 30


def tiny_model(name: str, **overrides) -> torch.nn.Module:
    cfg = load_config(tiny(name), {"model.dropout": 0.0,
                             **{f"model.{k}": v for k, v in overrides.items()}})
    torch.manual_seed(0)
    return build_model(cfg.model, V).eval()


def random_batch(B=3, S=7, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (B, S), generator=g)
    lens = torch.tensor([S, S - 2, 3])[:B]
    mask = torch.arange(S)[None, :] < lens[:, None]
    src = src.masked_fill(~mask, PAD)
    src[torch.arange(B), lens - 1] = EOS
    tgt_in = torch.randint(4, V, (B, T), generator=g)
    tgt_in[:, 0] = BOS
    return src, mask, tgt_in


ATTENTIONS = [("bahdanau", {"attention": form}) for form in ("none", "mean", "dot", "general", "multihead")]
CASES = [("rnn", {}), ("rnn", {"layers": 2}), ("lstm", {"layers": 2}), ("lstm", {"reverse_source": True}),
         ("bahdanau", {}), *ATTENTIONS, ("transformer", {}),
         ("transformer", {"pre_norm": False, "tie_embeddings": False})]
EVERY_MODEL = [(name, {}) for name in MODELS] + ATTENTIONS


@pytest.mark.parametrize("name,overrides", CASES)
def test_step_by_step_decoding_reproduces_teacher_forced_logits(name, overrides):
    model = tiny_model(name, **overrides)
    src, mask, tgt_in = random_batch()
    with torch.no_grad():
        forced = model(src, mask, tgt_in)  # (B, T, V)
        memory = model.encode(src, mask)
        state = model.init_state(memory)
        steps = []
        for t in range(tgt_in.size(1)):
            logits, state, _ = model.decode_step(memory, state, tgt_in[:, t])
            steps.append(logits)
    assert forced.shape == (3, tgt_in.size(1), V)
    torch.testing.assert_close(torch.stack(steps, 1), forced, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name,overrides", EVERY_MODEL)
def test_source_padding_does_not_change_the_output(name, overrides):
    model = tiny_model(name, **overrides)
    src, mask, tgt_in = random_batch()
    padded = torch.cat([src, torch.full((3, 4), PAD)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded, padded_mask, tgt_in), model(src, mask, tgt_in),
                                   atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name,overrides", EVERY_MODEL)
def test_greedy_equals_beam_of_one(name, overrides):
    model = tiny_model(name, **overrides)
    src, mask, _ = random_batch(seed=1)
    max_len = torch.full((3,), 8)
    g = [h.tokens for h in greedy(model, src, mask, max_len)]
    assert beam_search(model, src, mask, max_len, beam=1) == g


@pytest.mark.parametrize("name", list(MODELS))
def test_beam_search_finds_a_hypothesis_no_worse_than_greedy(name):
    model = tiny_model(name)
    src, mask, _ = random_batch(seed=2)
    max_len = torch.full((3,), 8)

    def logprob(b, tokens):
        tgt = torch.tensor([[BOS] + tokens])
        with torch.no_grad():
            logp = model(src[b:b + 1], mask[b:b + 1], tgt).log_softmax(-1)[0]
        return sum(logp[i, t].item() for i, t in enumerate(tokens + [EOS])) / (len(tokens) + 1)

    g = [h.tokens for h in greedy(model, src, mask, max_len)]
    beams = beam_search(model, src, mask, max_len, beam=4, length_penalty=1.0)
    for b in range(3):
        assert len(beams[b]) <= 8
        assert logprob(b, beams[b]) >= logprob(b, g[b]) - 1e-4


def decoded_step_by_step(model, src, src_mask, tokens: list[int]) -> tuple[list[float], torch.Tensor | None]:
    """One sentence's tokens (EOS appended) fed to decode_step one by one: the log p of each and
    where each step looked (T + 1, S), or None for a model without attention."""
    with torch.no_grad():
        memory = model.encode(src, src_mask)
        state, prev = model.init_state(memory), torch.tensor([BOS])
        logps, weights = [], []
        for token in tokens + [EOS]:
            logits, state, attn = model.decode_step(memory, state, prev, need_weights=True)
            logps.append(torch.log_softmax(logits.float(), -1)[0, token].item())
            weights.append(attn)
            prev = torch.tensor([token])
    return logps, None if weights[0] is None else torch.cat(weights)


SEARCH_CASES = [("rnn", {}), ("lstm", {}), ("bahdanau", {}), ("bahdanau", {"attention": "none"}),
                ("bahdanau", {"attention": "multihead"}), ("transformer", {})]


@pytest.mark.parametrize("name,overrides", SEARCH_CASES)
def test_each_hypothesis_carries_the_log_p_of_its_tokens_and_where_it_looked(name, overrides):
    """What greedy and beam search return besides the tokens (search.Hypothesis) is what decoding
    the tokens step by step computes: each token's log p, their sum over the length as the score,
    and each step's attention over the source's real tokens, EOS's included."""
    model = tiny_model(name, **overrides)
    src, mask, _ = random_batch(seed=3)
    max_len = torch.full((3,), 6)
    found = [[h] for h in greedy(model, src, mask, max_len, need_weights=True)] + \
        beam_hypotheses(model, src, mask, max_len, beam=3, length_penalty=1.0, need_weights=True)
    assert len(found) == 6 and all(len(hyps) == 3 for hyps in found[3:])
    for b, hyps in enumerate(found):
        for h in hyps:
            logps, attention = decoded_step_by_step(model, src[b % 3:b % 3 + 1], mask[b % 3:b % 3 + 1], h.tokens)
            assert h.logprobs == pytest.approx(logps, abs=1e-5)
            assert h.score == pytest.approx(sum(logps) / (len(h.tokens) + 1), abs=1e-5)
            if attention is None:
                assert h.attention is None
            else:  # over the source's real tokens: the padding's weights are 0
                n = int(mask[b % 3].sum())
                torch.testing.assert_close(h.attention, attention[:, :n], atol=1e-5, rtol=1e-4)
                assert h.attention.shape == (len(h.tokens) + 1, n) and attention[:, n:].abs().sum() < 1e-6


def test_the_plain_encoder_decoder_exposes_only_its_final_state():
    model = tiny_model("rnn", layers=2)
    src, mask, _ = random_batch()
    memory = model.encode(src, mask)
    assert set(memory) == {"h_n"} and memory["h_n"].shape == (3, 2, 32)  # (B, layers, H): no per-word states


def test_a_source_longer_than_the_transformer_positions_is_cut_not_a_crash():
    """With 16 positions a source is cut to its first 15 tokens (and EOS): its hypotheses, and
    their scores, are those of its first 15 tokens (not its last), at most 15 tokens long however
    long the source, and the other sources of its batch are translated as they are alone. (The
    scores tell sources apart where an untrained model's words do not.)"""
    from seq2seq.batching import collate
    from seq2seq.search import nbest, output_limit, translate
    from seq2seq.tokenizer import Tokenizer
    from tests.conftest import DE, toy_pairs

    tok = Tokenizer.train([s for p in toy_pairs(200) for s in p], vocab_size=V + 20)
    model = tiny_model("transformer", max_positions=16)
    cpu = torch.device("cpu")
    long = " ".join(DE * 3)  # 30 words, no 15 tokens of them alike
    ids = tok.encode([long])[0]
    head, tail = tok.decode([ids[:15], ids[-15:]])
    assert len(ids) > 15 and tok.encode([head])[0] == ids[:15]  # the text of the first 15 tokens, exactly

    def scored(sources: list[str], beam: int) -> tuple[list[float], list[str]]:
        """The scores and the translations of the sources' `beam` best hypotheses, in a row."""
        found = [hyp for hyps in nbest(model, tok, sources, cpu, EvalConfig(beam=beam, max_len_a=3.0), n=beam) for hyp in hyps]
        return [score for score, _ in found], [text for _, text in found]

    for beam in (1, 3):
        (scores, texts), (head_scores, head_texts), (vier_scores, vier_texts) = (
            scored(sources, beam) for sources in ([long, "vier"], [head], ["vier"]))
        assert texts == head_texts + vier_texts and len(texts) == 2 * beam
        assert scores == pytest.approx(head_scores + vier_scores, abs=1e-5)
        assert head_scores != pytest.approx(scored([tail], beam)[0], abs=1e-3)
    settings = EvalConfig(max_len_a=3.0)
    out = translate(model, tok, [long, "vier"], cpu, settings)
    assert out == translate(model, tok, [head], cpu, settings) + translate(model, tok, ["vier"], cpu, settings)
    b = collate([ids[:15]], [[]])
    max_len = output_limit(b.src_mask.sum(1), 3.0, 10, model.max_positions)
    assert max_len.tolist() == [15]  # 3 * 16 + 10 tokens asked for, 15 the positions leave
    found = [h.tokens for h in greedy(model, b.src, b.src_mask, max_len)]
    assert len(found[0]) <= 15 and tok.decode(found) == out[:1]


@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_steps_give_the_eager_logits_and_gradients_for_every_shape(name):
    """`train.compile` (CUDA) compiles each model's per-batch work in place (Seq2Seq.compile_steps);
    the graphs it captures must compute what the eager model does, and batches of new shapes must
    not keep adding graphs. Captured with the aot_eager backend (no code generation, so no compiler
    on the CPU test path). nn.RNN/LSTM/GRU are left to eager (cuDNN) by torch.compile."""
    from torch._dynamo.backends.registry import lookup_backend

    torch._dynamo.reset()
    graphs = []

    def aot_eager(graph, inputs):
        graphs.append(graph)
        return lookup_backend("aot_eager")(graph, inputs)

    eager, compiled = tiny_model(name).train(), tiny_model(name).train()
    compiled.compile_steps(backend=aot_eager)
    graphs_after = []
    for B, S, T in ((3, 7, 6), (2, 9, 4), (3, 5, 8), (2, 6, 3)):
        src, mask, tgt_in = random_batch(B, S, T, seed=T)
        results = []
        for model in (eager, compiled):
            model.zero_grad()
            logits = model(src, mask, tgt_in)  # (B, T, V)
            logits.square().mean().backward()
            results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
        (want, want_grads), (got, got_grads) = results
        torch.testing.assert_close(got, want)
        for g_got, g_want in zip(got_grads, want_grads):
            torch.testing.assert_close(g_got, g_want)
        graphs_after.append(len(graphs))
    assert graphs_after[0] > 0, "torch.compile captured no graph"
    assert graphs_after[-1] == graphs_after[-2], f"graphs captured after each batch: {graphs_after}"
    if name == "bahdanau":  # the one step graph serves every length from the first batch on
        assert graphs_after[-1] == graphs_after[0], graphs_after


def cpu_compiler_missing() -> str | None:
    """Why inductor cannot compile on the CPU here (seq2seq.device.require_compiler), or None."""
    from seq2seq.device import require_compiler
    from seq2seq.errors import UserError

    try:
        require_compiler(torch.device("cpu"))
    except UserError as e:
        return str(e)
    return None


CPU_COMPILER_MISSING = cpu_compiler_missing()


@pytest.mark.skipif(CPU_COMPILER_MISSING is not None, reason=str(CPU_COMPILER_MISSING))
@pytest.mark.parametrize("name", ["transformer", "bahdanau"])
def test_the_steps_compiled_by_inductor_on_the_cpu_give_the_eager_loss_and_gradients(name):
    """`train.compile=true` on the CPU: inductor generates and compiles C++ for each model's
    per-batch work, which must compute the eager model's training loss and gradients, for
    batches of several shapes: in fp32 within float tolerance; under bf16 autocast, where the
    fused kernels round in other places, the loss within 1% and each gradient at most twice as
    far from fp32's as the eager model's bf16 gradient is, or 3% of its norm."""
    from seq2seq.device import autocast

    torch._dynamo.reset()
    # bahdanau at its shipped sizes: with every dimension symbolic, inductor failed on these
    sizes = {"emb_dim": 256, "hidden_dim": 512, "attn_dim": 512} if name == "bahdanau" else {}
    eager, compiled = tiny_model(name, **sizes).train(), tiny_model(name, **sizes).train()
    compiled.compile_steps()

    def step(model, precision, src, mask, tgt_in):
        model.zero_grad()
        with autocast(torch.device("cpu"), precision):
            loss = model(src, mask, tgt_in, tgt_out=tgt_in, label_smoothing=0.1)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    for B, S, T in ((3, 7, 6), (2, 9, 4), (3, 5, 8)):
        batch = random_batch(B, S, T, seed=T)
        (loss, grads), (loss_c, grads_c) = step(eager, "fp32", *batch), step(compiled, "fp32", *batch)
        torch.testing.assert_close(loss_c, loss)
        for g_c, g in zip(grads_c, grads):
            torch.testing.assert_close(g_c, g)
        (loss16, grads16), (loss16_c, grads16_c) = step(eager, "bf16", *batch), step(compiled, "bf16", *batch)
        torch.testing.assert_close(loss16_c, loss16, atol=0, rtol=1e-2)
        for g16_c, g16, g in zip(grads16_c, grads16, grads):
            assert (g16_c - g).norm() <= max(2 * (g16 - g).norm(), 0.03 * g.norm())


def test_dropout_drops_at_rate_p_and_keeps_the_mean():
    """The CPU dropout's mask: each element dropped with probability p, independently of its
    place in the 64-bit draw, the rest scaled by 1/(1-p); no-op at evaluation; gradient = mask."""
    from seq2seq.dropout import Dropout, drop

    torch.manual_seed(0)
    x = torch.ones(400_000, requires_grad=True)
    y = drop(x, 0.3)
    dropped = (y == 0).float()
    assert abs(dropped.mean().item() - 0.3) < 0.005
    for lane in range(4):  # the four 16-bit uniforms taken from each 64-bit random number
        assert abs(dropped[lane::4].mean().item() - 0.3) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7), rtol=1e-4)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask)/dx = mask
    assert drop(x, 0.3, training=False) is x and drop(x, 0.0) is x
    assert torch.equal(Dropout(0.5).eval()(x), x)
    x_bf16 = torch.randn(3, 5, 7, dtype=torch.bfloat16)
    assert drop(x_bf16, 0.5).shape == x_bf16.shape and drop(x_bf16, 0.5).dtype == torch.bfloat16


@pytest.mark.parametrize("name", list(MODELS))
def test_nn_rnn_layers_run_outside_cuda_autocast_and_under_the_cpus(name):
    """Under the training step's bf16 autocast, with CUDA's autocast switched on too (a flag; the
    tensors stay on the CPU): nn.RNN/LSTM/GRU run with CUDA's off, which would put cuDNN's RNN in
    fp16, and the CPU's on, so their products run in bf16 there (close to fp32, not equal).
    Every other layer, bahdanau's GRUCell included, runs under both."""
    from seq2seq.device import autocast, precision_label

    model = tiny_model(name, layers=2) if name in ("rnn", "lstm") else tiny_model(name)
    cuda_autocast, outputs = {}, {}

    def record(module_name):
        def pre_hook(module, inputs):
            cuda_autocast[module_name] = torch.is_autocast_enabled("cuda")

        def hook(module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output  # (output, final state) of an RNN
            outputs[module_name] = (out.data if isinstance(out, PackedSequence) else out).float()
        return pre_hook, hook

    for module_name, module in model.named_modules():
        if isinstance(module, (nn.RNNBase, nn.RNNCellBase, nn.Linear)):
            pre_hook, hook = record(module_name)
            module.register_forward_pre_hook(pre_hook)
            module.register_forward_hook(hook)
    src, mask, tgt_in = random_batch()
    with torch.no_grad():
        model(src, mask, tgt_in)
        fp32 = dict(outputs)
        torch.set_autocast_dtype("cuda", torch.bfloat16)
        torch.set_autocast_enabled("cuda", True)
        try:
            with autocast(torch.device("cpu"), "bf16"):
                model(src, mask, tgt_in)
        finally:
            torch.set_autocast_enabled("cuda", False)
    rnns = [n for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    assert rnns == {"rnn": ["encoder", "decoder"], "lstm": ["encoder", "decoder"],
                    "bahdanau": ["encoder"], "transformer": []}[name]
    assert cuda_autocast == {n: n not in rnns for n in outputs}
    for n in rnns:
        assert not torch.equal(outputs[n], fp32[n]), f"{n}: no product in bf16"
        torch.testing.assert_close(outputs[n], fp32[n], atol=0.05, rtol=0.05)
    assert precision_label(model, "bf16", torch.device("cpu")) == "bf16"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_the_compiled_bahdanau_step_builds_at_most_six_graphs_across_training_and_search(device):
    """One graph per grad mode and autocast state the step runs under (training in bf16; the
    validation loss in bf16 without gradients; search in fp32 or bf16), and one more each for
    batches of one sentence: within dynamo's recompile limit, past which it would fall back to
    eager. Built by aot_eager on the CPU (no compiler needed), by inductor on CUDA."""
    from torch._dynamo.backends.registry import lookup_backend

    from seq2seq.device import autocast, pick_device

    device = pick_device(device)
    torch._dynamo.reset()
    graphs = []

    def counted(graph, inputs):
        graphs.append(graph)
        return lookup_backend("inductor" if device.type == "cuda" else "aot_eager")(graph, inputs)

    model = tiny_model("bahdanau").to(device)
    model.compile_steps(backend=counted)
    model.train()
    for B, S, T in ((3, 7, 6), (2, 9, 4), (1, 5, 3)):
        src, mask, tgt_in = (t.to(device) for t in random_batch(B, S, T, seed=T))
        with autocast(device, "bf16"):
            model(src, mask, tgt_in).float().square().mean().backward()
    model.eval()
    with torch.no_grad():
        for B in (3, 1):
            src, mask, tgt_in = (t.to(device) for t in random_batch(B))
            max_len = torch.full((B,), 6, device=device)
            with autocast(device, "bf16"):
                model(src, mask, tgt_in)  # the validation loss
            for precision in ("fp32", "bf16"):
                with autocast(device, precision):
                    greedy(model, src, mask, max_len)
                    beam_search(model, src, mask, max_len, beam=3)
    assert 0 < len(graphs) <= 6 < torch._dynamo.config.recompile_limit, len(graphs)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_beam_cut_at_the_length_limit_pays_the_models_log_p_of_eos(name):
    """An untrained model's hypotheses run to the limit, where EOS is forced: each finished score
    is log p(tokens, EOS) / (length + 1) as forced decoding computes it, EOS's price included."""
    from seq2seq.search import beam_hypotheses

    model = tiny_model(name)
    src, mask, _ = random_batch()
    limit = 3
    found = beam_hypotheses(model, src, mask, torch.full((3,), limit), beam=3, length_penalty=1.0)
    for b, hyps in enumerate(found):
        assert len(hyps) == 3
        for score, tokens, *_ in hyps:
            tgt_in = torch.tensor([[BOS, *tokens]])
            tgt_out = torch.tensor([[*tokens, EOS]])
            with torch.no_grad():
                logp = torch.log_softmax(model(src[b:b + 1], mask[b:b + 1], tgt_in).float(), -1)  # (1, T, V)
            want = logp.gather(-1, tgt_out.unsqueeze(-1)).sum().item() / (len(tokens) + 1)
            assert score == pytest.approx(want, abs=1e-4), (tokens, score, want)


def test_the_lstm_reads_each_source_backwards_and_its_padding_not_at_all():
    """reverse_source: the encoder reads a source's real tokens (EOS included) last to first. In
    a padded batch each source is encoded as it is alone, and as the same weights encode its
    tokens put in reverse order by hand and read forwards."""
    backwards = tiny_model("lstm", layers=2, reverse_source=True)
    forwards = tiny_model("lstm", layers=2)
    forwards.load_state_dict(backwards.state_dict())
    src, mask, _ = random_batch()  # (3, 7): 7, 5 and 3 real tokens, so two rows end in padding
    with torch.no_grad():
        batch = backwards.encode(src, mask)  # h_n, c_n (B, L, H)
        for b in range(3):
            n = int(mask[b].sum())
            alone = backwards.encode(src[b:b + 1, :n], mask[b:b + 1, :n])
            by_hand = forwards.encode(src[b:b + 1, :n].flip(1), mask[b:b + 1, :n])
            for key in ("h_n", "c_n"):
                torch.testing.assert_close(batch[key][b], alone[key][0], atol=1e-6, rtol=1e-5)
                torch.testing.assert_close(batch[key][b], by_hand[key][0], atol=1e-6, rtol=1e-5)
            unreversed = forwards.encode(src[b:b + 1, :n], mask[b:b + 1, :n])
            assert not torch.allclose(batch["h_n"][b], unreversed["h_n"][0], atol=1e-3)  # the order tells


class StepScripted(Seq2Seq):
    """A decoder whose next-token probabilities depend on the step alone (rows of `table`, the
    last repeated; what a row leaves goes to UNK), whatever the source and the prefix:
    hypotheses with known log-probabilities."""

    def __init__(self, table: list[dict[int, float]]):
        super().__init__()
        logp = torch.full((len(table), V), -50.0)  # (steps, V): the tokens not named are all but impossible
        for t, probs in enumerate(table):
            for token, p in (probs | {UNK: 1 - sum(probs.values())}).items():
                logp[t, token] = math.log(p)
        self.register_buffer("logp", logp)

    def encode(self, src, src_mask):
        return {"src_mask": src_mask}

    def init_state(self, memory):
        return {"t": torch.zeros(memory["src_mask"].size(0), dtype=torch.long)}  # (B,) steps taken

    def decode_step(self, memory, state, prev, need_weights=False, layer=-1):
        t = state["t"]
        return self.logp[t.clamp(max=self.logp.size(0) - 1)], {"t": t + 1}, None  # (B, V)

    def features(self, src, src_mask, tgt_in):
        raise NotImplementedError

    output_layer = None  # search reads decode_step's logits only


def test_the_length_penalty_decides_between_a_short_and_a_long_hypothesis():
    """Beam search scores a finished hypothesis log p / (length + 1)^alpha (EOS counted). Here
    "A" (log p = log .97 + log .5) against "A B B" (log .97 + log .48 + 2 log .96): by total
    log-probability (alpha 0) the short one wins, per token (alpha 1) the long one."""
    A, B = 4, 5
    model = StepScripted([{A: 0.97, B: 0.02, EOS: 0.001},  # no EOS before A: two beams, "A" and "B"
                          {EOS: 0.5, B: 0.48, A: 0.01},
                          {B: 0.96, A: 0.02, EOS: 0.001},  # "A B EOS" must not fill the second place
                          {EOS: 0.96, B: 0.02}])
    src, mask = torch.tensor([[6, EOS]]), torch.ones(1, 2, dtype=torch.bool)
    max_len = torch.tensor([10])
    short = math.log(0.97) + math.log(0.5)
    long = math.log(0.97) + math.log(0.48) + 2 * math.log(0.96)
    assert [h.tokens for h in greedy(model, src, mask, max_len)] == [[A]]  # EOS's .5 beats B's .48
    assert beam_search(model, src, mask, max_len, beam=2, length_penalty=0.0) == [[A]]
    assert beam_search(model, src, mask, max_len, beam=2, length_penalty=1.0) == [[A, B, B]]
    [found] = beam_hypotheses(model, src, mask, max_len, beam=2, length_penalty=0.6)
    assert [h.tokens for h in found] == [[A, B, B], [A]]
    assert [h.score for h in found] == pytest.approx([long / 4 ** 0.6, short / 2 ** 0.6], rel=1e-4)


@pytest.mark.parametrize("form", ["none", "mean"])
def test_a_fixed_context_is_the_same_at_every_decoder_step(form):
    model = tiny_model("bahdanau", attention=form)
    src, mask, _ = random_batch()
    with torch.no_grad():
        memory = model.encode(src, mask)
        c1, _ = model.context(memory, torch.zeros(3, 32))
        c2, _ = model.context(memory, torch.randn(3, 32))
    torch.testing.assert_close(c1, c2)
    attending = tiny_model("bahdanau", attention="dot")
    with torch.no_grad():
        memory = attending.encode(src, mask)
        assert not torch.allclose(attending.context(memory, torch.zeros(3, 32))[0],
                                  attending.context(memory, torch.randn(3, 32))[0])


@pytest.mark.parametrize("form", ["mean", "dot", "general", "multihead", "additive"])
def test_attention_weights_are_a_distribution_over_the_real_source_tokens(form):
    model = tiny_model("bahdanau", attention=form)
    src, mask, tgt_in = random_batch()
    with torch.no_grad():
        memory = model.encode(src, mask)
        _, _, alpha = model.decode_step(memory, model.init_state(memory), tgt_in[:, 0], need_weights=True)
    assert alpha.shape == mask.shape
    assert (alpha[~mask] == 0).all()
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3))
    if form == "mean":
        torch.testing.assert_close(alpha[mask], (1 / mask.sum(1, keepdim=True).expand_as(mask))[mask])


def test_without_attention_there_are_no_weights_and_dot_adds_no_parameters():
    none, dot = tiny_model("bahdanau", attention="none"), tiny_model("bahdanau", attention="dot")
    src, mask, tgt_in = random_batch()
    with torch.no_grad():
        memory = none.encode(src, mask)
        assert none.decode_step(memory, none.init_state(memory), tgt_in[:, 0], need_weights=True)[2] is None
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(none) == count(dot) == count(tiny_model("bahdanau", attention="mean"))
    assert count(tiny_model("bahdanau", attention="general")) == count(tiny_model("bahdanau", attention="multihead"))


@pytest.mark.parametrize("study", ["ladder-laptop", "ladder"])
def test_the_ladders_variants_are_within_five_percent_of_each_others_size(study):
    from pathlib import Path

    from seq2seq.study import load_study

    counts = {}
    for variant in load_study(Path(__file__).parents[1] / "configs" / "studies" / f"{study}.yaml").variants:
        cfg = load_config(None, {"model.name": variant.model, **variant.overrides}, model=variant.model)
        counts[variant.name] = sum(p.numel() for p in build_model(cfg.model, cfg.data.vocab_size).parameters())
    assert set(counts) == {"none", "mean", "dot", "general", "multihead", "additive"}
    assert max(counts.values()) <= 1.05 * min(counts.values()), counts


def test_multihead_needs_heads_that_divide_its_size():
    from seq2seq.errors import UserError

    with pytest.raises(UserError, match="model.attn_dim .30. must be a multiple of model.heads .4."):
        load_config(tiny("bahdanau"), {"model.attention": "multihead", "model.attn_dim": 30})
    with pytest.raises(UserError, match="model.attention"):
        load_config(tiny("bahdanau"), {"model.attention": "sparse"})


@pytest.mark.parametrize("causal", [True, False])
def test_the_causal_mask_hides_later_target_tokens_from_earlier_positions(causal):
    model = tiny_model("transformer", causal=causal)
    src, mask, tgt_in = random_batch()
    changed = tgt_in.clone()
    changed[:, -1] = (tgt_in[:, -1] + 1 - 4) % (V - 4) + 4  # another real token at the last position only
    with torch.no_grad():
        before, after = model(src, mask, tgt_in)[:, :-1], model(src, mask, changed)[:, :-1]
    assert torch.equal(before, after) == causal
