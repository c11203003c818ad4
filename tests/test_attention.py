"""The attention ladder against hand computations on tiny tensors."""

import math

import torch

from seq2seq.attention import (AdditiveAttention, CausalAttention, MultiHeadAttention, SelfAttention,
                               causal_mask, simplified_self_attention)


def test_simplified_self_attention_by_hand():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, 2)
    out, w = simplified_self_attention(x)
    a = math.e / (math.e + 1)  # softmax([1, 0])
    torch.testing.assert_close(w, torch.tensor([[[a, 1 - a], [1 - a, a]]]))
    torch.testing.assert_close(out, torch.tensor([[[a, 1 - a], [1 - a, a]]]))


def _identity(attn):
    with torch.no_grad():
        for W in (attn.W_q, attn.W_k, attn.W_v):
            W.weight.copy_(torch.eye(2))


def test_trainable_self_attention_scales_by_sqrt_dk():
    attn = SelfAttention(2, 2)
    _identity(attn)
    x = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])
    out, w = attn(x)
    a = torch.softmax(torch.tensor([4.0, 0.0]) / math.sqrt(2), 0)
    torch.testing.assert_close(w[0, 0], a)
    torch.testing.assert_close(out[0, 0], a[0] * x[0, 0] + a[1] * x[0, 1])


def test_causal_weights_are_zero_above_the_diagonal_and_rows_sum_to_one():
    attn = CausalAttention(4, 3, dropout=0.5).eval()
    _, w = attn(torch.randn(2, 5, 4))
    assert torch.all(w.triu(1) == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5))
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))


def test_padded_keys_get_zero_weight():
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    _, w = mha(x, x, x, mask[:, None, None, :], need_weights=True)  # (B, nh, T, S)
    assert torch.all(w[0, :, :, 2:] == 0)
    add = AdditiveAttention(3, 8, 5)
    c, alpha = add(torch.randn(2, 3), add.project_keys(x), x, mask)
    assert torch.all(alpha[0, 2:] == 0)
    torch.testing.assert_close(c[0], (alpha[0, :2, None] * x[0, :2]).sum(0))


def test_additive_attention_by_hand():
    add = AdditiveAttention(1, 1, 1)
    with torch.no_grad():
        add.W_a.weight.fill_(1.0)
        add.U_a.weight.fill_(1.0)
        add.U_a.bias.zero_()
        add.v_a.weight.fill_(2.0)
    h = torch.tensor([[[0.5], [-1.0]]])  # (1, S=2, 1)
    s = torch.tensor([[0.25]])
    c, alpha = add(s, add.project_keys(h), h, torch.ones(1, 2, dtype=torch.bool))
    e = 2 * torch.tanh(torch.tensor([0.25 + 0.5, 0.25 - 1.0]))
    torch.testing.assert_close(alpha[0], torch.softmax(e, 0))
    torch.testing.assert_close(c[0, 0], (torch.softmax(e, 0) * torch.tensor([0.5, -1.0])).sum())


def test_multi_head_paths_agree_and_equal_torch_sdpa_with_copied_weights():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).eval()
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[0, ..., 4] = False
    fused, _ = mha(q, kv, kv, mask)
    explicit, w = mha(q, kv, kv, mask, need_weights=True)
    torch.testing.assert_close(fused, explicit)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.W_q.weight, mha.W_k.weight, mha.W_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.W_q.bias, mha.W_k.bias, mha.W_v.bias]))
        ref.out_proj.weight.copy_(mha.W_o.weight)
        ref.out_proj.bias.copy_(mha.W_o.bias)
    out, ref_w = ref(q, kv, kv, key_padding_mask=~mask[:, 0, 0], average_attn_weights=False)
    torch.testing.assert_close(fused, out, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=1e-4)
