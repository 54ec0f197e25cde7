"""Transformer layers: written-out attention == F.scaled_dot_product_attention, masks, positions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from zoo.core.contract.errors import ZooError
from zoo.plugins.transformer.layers import (
    Decoder,
    Encoder,
    LearnedPositions,
    MultiHeadAttention,
    SinusoidalPositions,
    causal_mask,
    local_mask,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_table,
)

B, H, T, D = 3, 2, 7, 8
LENGTHS = torch.tensor([7, 4, 1])


def _qkv(tq=T, tk=T, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, tq, D, generator=g), torch.randn(B, H, tk, D, generator=g),
            torch.randn(B, H, tk, D, generator=g))


MASKS = {
    "none": lambda: None,
    "padding": lambda: padding_mask(LENGTHS, T),
    "causal": lambda: causal_mask(T),
    "local": lambda: local_mask(T, 2),
    "padding&causal": lambda: padding_mask(LENGTHS, T) & causal_mask(T),
    # padded queries far from any real key get an empty row: both give 0 there
    "padding&local": lambda: padding_mask(LENGTHS, T) & local_mask(T, 1),
}


@pytest.mark.parametrize("name", MASKS)
def test_written_out_attention_matches_sdpa(name):
    q, k, v = _qkv()
    mask = MASKS[name]()
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (B, H, T, D) and weights.shape == (B, H, T, T)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


def test_written_out_attention_cross_lengths_and_weights_are_a_softmax():
    q, k, v = _qkv(tq=3, tk=5)
    mask = padding_mask(torch.tensor([5, 2, 3]), 5)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, 3))
    # by hand for one row: softmax(q·k / √d) over the real keys
    scores = (q[1, 0, 0] @ k[1, 0, :2].T) / math.sqrt(D)
    torch.testing.assert_close(weights[1, 0, 0, :2], torch.softmax(scores, -1))


def test_masks_by_hand():
    assert padding_mask(torch.tensor([2, 3]), 3).squeeze().tolist() == [[True, True, False], [True, True, True]]
    assert causal_mask(3).squeeze().int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert local_mask(4, 1).squeeze().int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]


@pytest.mark.parametrize("name", ["none", "padding&causal", "local"])
def test_multi_head_attention_sdpa_and_written_out_agree(name):
    torch.manual_seed(0)
    fast = MultiHeadAttention(16, 4, use_sdpa=True)
    slow = MultiHeadAttention(16, 4, use_sdpa=False)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(B, T, 16)
    mask = MASKS[name]()
    torch.testing.assert_close(fast(x, x, x, mask), slow(x, x, x, mask), atol=1e-5, rtol=0)
    memory = torch.randn(B, 5, 16)  # cross-attention takes the separate-projection path
    torch.testing.assert_close(fast(x, memory, memory), slow(x, memory, memory), atol=1e-5, rtol=0)


def test_multi_head_attention_matches_torch_module():
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    ref.in_proj_weight.data.copy_(ours.in_proj.weight)
    ref.in_proj_bias.data.copy_(ours.in_proj.bias)
    ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    x = torch.randn(B, T, 16)
    mask = padding_mask(LENGTHS, T)
    got = ours(x, x, x, mask)
    want, _ = ref(x, x, x, key_padding_mask=~mask.squeeze(1).squeeze(1))  # torch: True = ignore
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_sinusoidal_formula_values():
    table = sinusoidal_table(50, 6)
    t, i = 7, 1  # dims 2i, 2i+1 at position t
    angle = t / 10000 ** (2 * i / 6)
    assert table[t, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[t, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert table[0].tolist() == [0.0, 1.0] * 3
    x = torch.zeros(2, 5, 6)
    torch.testing.assert_close(SinusoidalPositions(6, 50)(x), table[:5].expand(2, 5, 6))


@pytest.mark.parametrize("cls", [SinusoidalPositions, LearnedPositions])
def test_longer_than_the_table_is_a_clear_error(cls):
    positions = cls(8, 10)
    assert positions(torch.zeros(1, 10, 8)).shape == (1, 10, 8)
    with pytest.raises(ZooError, match="length 11 .*max_length 10"):
        positions(torch.zeros(1, 11, 8))


@pytest.mark.parametrize("norm_first", [False, True])
def test_padding_does_not_change_real_positions(norm_first):
    torch.manual_seed(0)
    enc = Encoder(16, 4, 32, 2, dropout=0.0, norm_first=norm_first).eval()
    x = torch.randn(1, 4, 16)
    alone = enc(x, padding_mask(torch.tensor([4]), 4))
    padded = torch.cat([x, torch.randn(1, 3, 16) * 100], dim=1)   # junk in the padding
    out = enc(padded, padding_mask(torch.tensor([4]), 7))
    torch.testing.assert_close(out[:, :4], alone, atol=1e-5, rtol=1e-5)


def test_encoder_matches_torch_transformer_encoder():
    """Same weights → same outputs as nn.TransformerEncoder (post-LN and pre-LN)."""
    for norm_first in (False, True):
        torch.manual_seed(0)
        ours = Encoder(16, 4, 32, 2, dropout=0.0, norm_first=norm_first).eval()
        layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
        ref = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(16) if norm_first else None,
                                          enable_nested_tensor=False).eval()
        for mine, theirs in zip(ours.layers, ref.layers):
            theirs.self_attn.in_proj_weight.data.copy_(mine.attn.in_proj.weight)
            theirs.self_attn.in_proj_bias.data.copy_(mine.attn.in_proj.bias)
            theirs.self_attn.out_proj.load_state_dict(mine.attn.out_proj.state_dict())
            theirs.linear1.load_state_dict(mine.ff.linear1.state_dict())
            theirs.linear2.load_state_dict(mine.ff.linear2.state_dict())
            theirs.norm1.load_state_dict(mine.norm1.state_dict())
            theirs.norm2.load_state_dict(mine.norm2.state_dict())
        x = torch.randn(2, 5, 16)
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_decoder_is_causal_and_respects_the_memory_mask():
    torch.manual_seed(0)
    dec = Decoder(16, 4, 32, 2, dropout=0.0).eval()
    y, memory = torch.randn(1, 5, 16), torch.randn(1, 6, 16)
    mmask = padding_mask(torch.tensor([4]), 6)
    out = dec(y, memory, memory_mask=mmask)
    # changing a later target token or a padded memory slot leaves earlier outputs unchanged
    y2 = y.clone()
    y2[:, 3:] += 10
    memory2 = memory.clone()
    memory2[:, 4:] += 10
    out2 = dec(y2, memory2, memory_mask=mmask)
    torch.testing.assert_close(out2[:, :3], out[:, :3], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out2[:, 3:], out[:, 3:])


@pytest.mark.slow
def test_exported_encoder_takes_an_additive_mask_and_matches_torch(tmp_path):
    """Under export a bool mask becomes the additive 0 / finfo.min bias (no Where(IsNaN) over
    every attention weight in the graph); the file answers as torch at an untraced length."""
    import onnx

    from zoo.core.deploy.export import export_module
    from zoo.core.deploy.runtime import make_session
    from zoo.plugins.transformer.layers import additive_mask

    q, k, v = _qkv()
    mask = padding_mask(LENGTHS, T) & local_mask(T, 2)
    rows = mask.expand(B, H, T, T).any(-1)                          # queries with an allowed key
    assert not rows.all()  # the case the bias does not cover (models avoid it) is present
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask(mask, q.dtype))[rows],
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask)[rows], atol=1e-6, rtol=1e-5)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder(16, 2, 32, 2, dropout=0.0)

        def forward(self, x, lengths):
            return self.encoder(x, padding_mask(lengths, x.shape[1]))

    torch.manual_seed(0)
    model = Model().eval()
    path = tmp_path / "enc.onnx"
    export_module(model, (torch.randn(3, 7, 16), torch.tensor([7, 4, 2])), path, ("x", "lengths"), ("y",),
                  {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}, 18)
    assert "IsNaN" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    x, lengths = torch.randn(2, 11, 16), torch.tensor([11, 5])
    got = make_session(path).run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        expected = model(x, lengths).numpy()
    keep = padding_mask(lengths, 11)[:, 0, 0, :, None].numpy()     # real tokens only
    assert abs((got - expected) * keep).max() < 1e-4
