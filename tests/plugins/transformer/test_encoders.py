"""Transformer encoder models: padding and window behaviour, ViT, bad input, raw-text predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import assert_predict_error, predict_raw_text, quick_options
from zoo.core import api
from zoo.core.contract.catalogue import load_catalogue
from zoo.core.train.data import DataInfo
from zoo.core.contract.errors import ZooError
from zoo.plugins.transformer.models import (
    LocalTransformerConfig,
    SequenceTransformer,
    TransformerConfig,
    ViT,
    ViTConfig,
)

INFO = DataInfo(input_shape=(12,), num_classes=3, extra={"vocab_size": 30, "pad_id": 0, "max_length": 12})
TAGS = DataInfo(input_shape=(12,), num_classes=5,
                extra={"vocab_size": 30, "pad_id": 0, "max_length": 12, "sequence_head": "per_token"})
SMALL = dict(name="transformer-classifier", dim=16, heads=2, ff_dim=32, layers=2, dropout=0.0)


def _model(info=INFO, window=None, **kw):
    torch.manual_seed(0)
    if window is None:
        return SequenceTransformer(TransformerConfig(**{**SMALL, **kw}), info).eval()
    config = LocalTransformerConfig(**{**SMALL, "name": "local-transformer", "window": window, **kw})
    return SequenceTransformer(config, info, window=window).eval()


@pytest.mark.parametrize("info, window", [(INFO, None), (TAGS, None), (INFO, 1), (TAGS, 2)])
def test_padding_does_not_change_the_outputs(info, window):
    model = _model(info, window)
    tokens = torch.tensor([[5, 6, 7, 8]])
    alone = model(tokens, torch.tensor([4]))
    padded = model(torch.tensor([[5, 6, 7, 8, 9, 3, 2]]), torch.tensor([4]))  # junk ids past the end
    if info is TAGS:
        assert alone.shape == (1, 4, 5) and padded.shape == (1, 7, 5)
        padded = padded[:, :4]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_local_attention_sees_only_its_window():
    model = _model(TAGS, window=1, layers=1)   # one layer: token i sees i-1, i, i+1 only
    tokens = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    lengths = torch.tensor([7])
    out = model(tokens, lengths)
    changed = tokens.clone()
    changed[0, 6] = 20
    out2 = model(changed, lengths)
    torch.testing.assert_close(out2[:, :5], out[:, :5])          # outside the window: unchanged
    assert not torch.allclose(out2[:, 5:], out[:, 5:])           # inside: changed
    full = _model(TAGS, layers=1)
    assert not torch.allclose(full(changed, lengths)[:, 0], full(tokens, lengths)[:, 0])


@pytest.mark.parametrize("tokens, lengths, message", [
    ([[1] * 13], [13], "length 13 .*max_length 12"),
    ([[3, 4, 30]], [3], r"token ids must be in \[0, 30\)"),
    ([[3, -1]], [2], r"token ids must be in \[0, 30\)"),
    ([[3, 4]], [0], "empty"),
])
def test_bad_input_is_a_clear_error(tokens, lengths, message):
    with pytest.raises(ZooError, match=message):
        _model()(torch.tensor(tokens), torch.tensor(lengths))


def test_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(**{**SMALL, "heads": 3})


def test_vit_patches_and_pooling():
    info = DataInfo(input_shape=(1, 28, 28), num_classes=10)
    for pooling in ("cls", "mean"):
        config = ViTConfig(name="vit", patch=7, dim=16, heads=2, ff_dim=32, layers=1, pooling=pooling)
        model = ViT(config, info)
        assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
        assert model.positions.max_length == 16 + (pooling == "cls")
    with pytest.raises(ZooError, match="not divisible by the patch size 5"):
        ViT(ViTConfig(name="vit", patch=5, dim=16, heads=2), info)
    with pytest.raises(ZooError, match="image inputs"):
        ViT(ViTConfig(name="vit", dim=16, heads=2), DataInfo(input_shape=(784,), num_classes=10))
    with pytest.raises(ZooError, match="expects images"):
        model(torch.randn(2, 1, 14, 14))


# -- zoo predict on an exported classifier -----------------------------------------------------


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sst2") / "run"
    entry = load_catalogue().models["transformer-classifier"]
    api.train("transformer-classifier", options=quick_options(entry, data={"options": {"max_length": 16}}),
              out=str(out), log=None)
    return out


@pytest.mark.slow
def test_predict_takes_raw_text(sst2_run, tmp_path):
    _, metadata = predict_raw_text(sst2_run, tmp_path)
    assert metadata["onnx_max_length"] == 16


@pytest.mark.slow
@pytest.mark.parametrize("content, message", [
    ({"text": ""}, "empty"),
    ({"text": "film " * 17}, "at most 16"),
    ({"tokens": [[2] * 17], "lengths": [17]}, "at most 16"),
    ({"tokens": [[2, 3, 10 ** 6]], "lengths": [3]}, "token ids must be in"),
    ({"tokens": [[]], "lengths": [0]}, "empty"),
    ({"tokens": [[2, 3]], "lengths": [0]}, "no empty sequence"),
])
def test_predict_bad_input_is_a_clear_error(sst2_run, tmp_path, content, message):
    assert_predict_error(sst2_run, tmp_path, content, message)


@pytest.mark.slow
def test_predict_token_arrays_match_raw_text(sst2_run, tmp_path):
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps({"text": "a wonderful film"}))
    by_text, metadata = api.predict(str(sst2_run), str(raw))
    ids = [metadata["onnx_vocabulary"]["tokens"].index(w) if w in metadata["onnx_vocabulary"]["tokens"] else 1
           for w in ("a", "wonderful", "film")]
    arrays = tmp_path / "ids.json"
    arrays.write_text(json.dumps({"tokens": [ids], "lengths": [3]}))
    by_ids, _ = api.predict(str(sst2_run), str(arrays))
    assert by_ids[0]["label"] == by_text[0]["label"]
    assert np.allclose(by_ids[0].get("probabilities", [0]), by_text[0].get("probabilities", [0]))


def test_every_catalogue_transformer_exports_at_the_opset_of_the_fused_attention():
    """Their defaults ask for opset 23, where attention exports as ONNX's one ``Attention`` node
    (plugins/transformer/layers.py); a model that forgot would export the slow unfused form."""
    from zoo.plugins.transformer.layers import ATTENTION_OPSET

    names = [m.name for m in load_catalogue().models.values() if m.plugin == "transformer"]
    assert len(names) >= 5
    for name in names:
        _, _, run_config = api.resolve_config(name)
        assert run_config.export.opset >= ATTENTION_OPSET, name
