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
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "IsNaN" not in ops and "Attention" not in ops  # below opset 23: the exporter's own form
    x, lengths = torch.randn(2, 11, 16), torch.tensor([11, 5])
    got = make_session(path).run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        expected = model(x, lengths).numpy()
    keep = padding_mask(lengths, 11)[:, 0, 0, :, None].numpy()     # real tokens only
    assert abs((got - expected) * keep).max() < 1e-4


def test_additive_mask_is_finite_and_gives_the_bool_masks_attention():
    """The exported mask: 0 where allowed, finfo.min / 2 elsewhere (finite, so a score
    added to it never reaches −inf), and the same attention as the bool mask on every row with
    an allowed key; masked keys get exact zero weight."""
    from zoo.plugins.transformer.layers import additive_mask

    q, k, v = _qkv()
    mask = padding_mask(LENGTHS, T) & local_mask(T, 2)
    bias = additive_mask(mask, q.dtype)
    assert bias.dtype == q.dtype and bias.shape == mask.shape
    assert set(bias.unique().tolist()) == {0.0, torch.finfo(q.dtype).min / 2}
    rows = mask.expand(B, H, T, T).any(-1)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=bias)[rows],
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask)[rows], atol=1e-6, rtol=1e-5)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias, dim=-1)
    assert (weights.masked_select(~mask.expand_as(weights) & rows[..., None]) == 0).all()


class _Seq2Seq(torch.nn.Module):
    """Encoder (padding mask) and decoder (causal & target padding, cross-attention to the
    source's real tokens): every mask form the catalogue's seq2seq model uses."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder(16, 2, 32, 1, dropout=0.0, norm_first=True)
        self.decoder = Decoder(16, 2, 32, 1, dropout=0.0, norm_first=True)

    def forward(self, x, lengths, y, y_lengths):
        memory = self.encoder(x, padding_mask(lengths, x.shape[1]))
        return self.decoder(y, memory, padding_mask(y_lengths, y.shape[1]), padding_mask(lengths, x.shape[1]))


class _LocalEncoder(torch.nn.Module):
    """Windowed attention as SequenceTransformer builds it: a [B, 1, T, T] mask, no empty row."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder(16, 2, 32, 2, dropout=0.0)

    def forward(self, x, lengths):
        keys = padding_mask(lengths, x.shape[1])
        return self.encoder(x, local_mask(x.shape[1], 1) & (keys | ~keys.transpose(-1, -2)))


class _PlainEncoder(torch.nn.Module):
    """No mask at all (ViT)."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder(16, 2, 32, 2, dropout=0.0, norm_first=True, activation="gelu")

    def forward(self, x, lengths):
        return self.encoder(x)


def _inputs(model, batch, t, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (batch,), generator=g)
    lengths[0] = t
    x = torch.randn(batch, t, 16, generator=g)
    if isinstance(model, _Seq2Seq):
        ty = max(t - 2, 2)
        y_lengths = torch.randint(1, ty + 1, (batch,), generator=g)
        y_lengths[0] = ty
        return (x, lengths, torch.randn(batch, ty, 16, generator=g), y_lengths), y_lengths
    return (x, lengths), lengths


@pytest.mark.slow
@pytest.mark.parametrize("kind", [_Seq2Seq, _LocalEncoder, _PlainEncoder])
def test_opset_23_export_is_one_fused_attention_node_per_layer_with_parity(tmp_path, kind):
    """At opset 23 every attention is ONNX's ``Attention`` (no Softmax over [B, H, Tq, Tk] left),
    the checker accepts the file, and onnxruntime answers as torch at untraced lengths and batch
    sizes, padded rows included (compared on real tokens, whose outputs are used)."""
    import onnx

    from zoo.core.deploy.export import export_module
    from zoo.core.deploy.runtime import make_session

    torch.manual_seed(0)
    model = kind().eval()
    args, _ = _inputs(model, 3, 7, seed=0)
    names = ("x", "lengths", "y", "y_lengths")[:len(args)]
    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "y": {0: "batch", 1: "out"},
            "y_lengths": {0: "batch"}}
    path = tmp_path / "attn.onnx"
    export_module(model, args, path, names, ("out",), {n: axes[n] for n in names}, 23)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    ops = [n.op_type for n in graph.graph.node]
    layers = 3 if kind is _Seq2Seq else 2                           # self, self + cross
    assert ops.count("Attention") == layers and "Softmax" not in ops
    # Keys and values are bias-free matmuls (the key bias cancels in the softmax, the value
    # bias is folded into the output's), not slices of one [3D, D] projection.
    producer = {out: n.op_type for n in graph.graph.node for out in n.output}
    for node in (n for n in graph.graph.node if n.op_type == "Attention"):
        assert [producer.get(name) for name in node.input[1:3]] == ["MatMul", "MatMul"]
    # Masks reach the kernel as an additive float bias (onnxruntime converts a bool mask on
    # every call, and its softmax is slower on the finfo.min it converts to).
    types = {v.name: v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(graph).graph.value_info}
    masks = [n.input[3] for n in graph.graph.node if n.op_type == "Attention" and len(n.input) > 3 and n.input[3]]
    assert len(masks) == (0 if kind is _PlainEncoder else layers)
    assert all(types[m] == onnx.TensorProto.FLOAT for m in masks)
    session = make_session(path)
    for batch, t, seed in ((2, 11, 1), (5, 4, 2), (1, 1, 3)):
        args, real = _inputs(model, batch, max(t, 2) if kind is _Seq2Seq else t, seed)
        got = session.run(None, {n: a.numpy() for n, a in zip(names, args)})[0]
        with torch.no_grad():
            expected = model(*args).numpy()
        keep = padding_mask(real, got.shape[1])[:, 0, 0, :, None].numpy()
        if kind is _PlainEncoder:
            keep = keep | True                                      # no padding: every row counts
        assert abs((got - expected) * keep).max() < 1e-4, (batch, t)


def test_export_opset_is_set_only_while_exporting(tmp_path):
    """``export_opset()`` is what layers read to choose ONNX's Attention (opset ≥ 23)."""
    from zoo.core.deploy.export import export_module, export_opset

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(export_opset())
            return x * 2

    assert export_opset() is None
    export_module(Probe(), (torch.randn(2, 3),), tmp_path / "p.onnx", ("x",), ("y",), {"x": {0: "batch"}}, 23)
    assert seen and set(seen) == {23} and export_opset() is None
