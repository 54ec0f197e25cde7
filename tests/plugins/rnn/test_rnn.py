"""The RNN family: export at untraced lengths, padding invariance, datasets, tasks, raw-text predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import assert_predict_error, predict_raw_text, quick_options
from zoo.core import api
from zoo.core.contract.catalogue import load_catalogue
from zoo.core.train.data import DataInfo
from zoo.core.deploy.export import export_onnx
from zoo.core.deploy.runtime import make_session
from zoo.plugins.sequence.pipeline import SequenceClassification, SequenceSplit, pad
from zoo.plugins.rnn.datasets import AddingOptions, adding_problem, load_adding_problem
from zoo.plugins.rnn.models import RNNConfig, RNNModel

INFO = DataInfo(input_shape=(16,), num_classes=3, extra={"vocab_size": 30})


def _split():
    tokens, lengths = pad([[2, 3, 4], [5], [6, 7, 8, 9, 10, 11], [12] * 9, [13, 14]])
    return SequenceSplit(("tokens",), tokens=tokens, lengths=lengths, y=torch.zeros(5, dtype=torch.long))


# The recurrent node each cell exports to: ONNX's own operator where it is fast, else a Scan.
ONNX_NODE = {"elman": "Scan", "lstm": "LSTM", "gru": "GRU", "lstm-peephole": "LSTM", "jordan": "Scan"}


@pytest.mark.slow
@pytest.mark.parametrize("cell,bidirectional", [("jordan", False), ("jordan", True), ("elman", True),
                                                ("lstm", True), ("gru", False), ("lstm-peephole", True)])
def test_onnx_matches_torch_at_two_untraced_lengths(tmp_path, cell, bidirectional):
    """Traced at length 7, the file answers as torch at lengths 23 and 3 (padding included: the
    per-token tagger's outputs at padded positions are compared too)."""
    import onnx

    torch.manual_seed(0)
    for head in ("pooled", "per_token"):
        info = DataInfo(input_shape=(16,), num_classes=3, extra={"vocab_size": 30, "sequence_head": head})
        model = RNNModel(cell, RNNConfig(name=cell, embedding_dim=6, hidden_size=5, layers=2,
                                         bidirectional=bidirectional), info).eval()
        task = SequenceClassification()
        traced = task.export_inputs(_split())[:1]                       # traced at length 7
        export_onnx(model, task, traced, task.dynamic_axes(INFO), tmp_path / "j.onnx")
        nodes = [n.op_type for n in onnx.load(str(tmp_path / "j.onnx")).graph.node]
        assert nodes.count(ONNX_NODE[cell]) == 2 * (1 + bidirectional), nodes
        assert "Loop" not in nodes and (ONNX_NODE[cell] == "Scan" or "Scan" not in nodes)
        session = make_session(tmp_path / "j.onnx")
        for batch, length in [(2, 23), (4, 3)]:
            tokens = torch.randint(2, 30, (batch, length))
            lengths = torch.randint(1, length + 1, (batch,))
            lengths[0] = length
            got = session.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})[0]
            with torch.no_grad():
                expected = model(tokens, lengths).numpy()
            assert got.shape == expected.shape == ((batch, 3) if head == "pooled" else (batch, length, 3))
            np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("cell", ["elman", "jordan", "lstm", "lstm-peephole", "gru"])
def test_outputs_do_not_depend_on_padding(cell):
    """A bidirectional model reads the same sentence alone or padded in a longer batch."""
    torch.manual_seed(0)
    for pooling in ("last", "max", "mean"):
        model = RNNModel(cell, RNNConfig(name=cell, embedding_dim=4, hidden_size=5, layers=2,
                                         bidirectional=True, pooling=pooling), INFO).eval()
        short = torch.tensor([[3, 4, 5]])
        padded = torch.tensor([[3, 4, 5, 0, 0, 0], [6, 7, 8, 9, 10, 11]])
        with torch.no_grad():
            alone = model(short, torch.tensor([3]))
            batched = model(padded, torch.tensor([3, 6]))
        torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)


def test_tagger_gives_one_output_per_token():
    info = DataInfo(input_shape=(8,), num_classes=7, extra={"vocab_size": 30, "sequence_head": "per_token"})
    model = RNNModel("gru", RNNConfig(name="gru", bidirectional=True), info)
    assert model(torch.randint(0, 30, (2, 5)), torch.tensor([5, 2])).shape == (2, 5, 7)


def test_adding_problem_targets_and_mean_predictor_mse():
    x, y = adding_problem(20_000, 50, torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 50, 2)
    assert torch.all(x[..., 1].sum(1) == 2)
    assert torch.all(x[:, :25, 1].sum(1) == 1)                       # one marker in each half
    torch.testing.assert_close((x[..., 0] * x[..., 1]).sum(1), y)
    assert abs(((y - 1.0) ** 2).mean().item() - 1 / 6) < 0.005        # the 0.167 baseline
    data = load_adding_problem(AddingOptions(T=10, n=8, n_test=4), None)
    assert data.info.extra["input_features"] == 2 and len(data.test) == 4


@pytest.mark.slow
def test_sequence_autoencoder_trains_and_exports(tmp_path):
    entry = load_catalogue().models["gru"]
    options = quick_options(entry, data={"name": "copy-sequences", "options": {"n": 64, "n_test": 16}},
                            model={"bidirectional": False})
    summary = api.train("gru", options=options, out=str(tmp_path / "run"), log=None)
    assert summary["task"] == "seq2seq-autoencoder"
    assert 0.0 <= summary["metrics"]["token_accuracy"] <= 1.0
    assert summary["parity"] <= 1e-3


@pytest.mark.slow
def test_gradient_norms_are_logged_per_epoch(tmp_path):
    entry = load_catalogue().models["elman"]
    options = quick_options(entry, export={"enabled": False})
    api.train("elman", options=options, out=str(tmp_path / "run"), log=None)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["grad_norm"] > 0 and record["grad_norm_max"] >= record["grad_norm"]


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sst2") / "run"
    entry = load_catalogue().models["lstm"]
    api.train("lstm", options=quick_options(entry), out=str(out), log=None)
    return out


@pytest.mark.slow
def test_predict_takes_raw_text(sst2_run, tmp_path):
    _, metadata = predict_raw_text(sst2_run, tmp_path)
    assert metadata["onnx_vocabulary"]["tokens"][:2] == ["<pad>", "<unk>"]
    txt = tmp_path / "in.txt"
    txt.write_text("the best film of the year\n")
    assert len(api.predict(str(sst2_run), str(txt))[0]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("content, message", [
    ({"text": ""}, "empty"),
    ({"text": "zzqx qqzx"}, "only unknown"),
    ({"text": "film " * 200}, "at most"),
    ({"tokens": [[1.5, 2.0]], "lengths": [2]}, "integers"),
])
def test_predict_bad_input_is_a_clear_error(sst2_run, tmp_path, content, message):
    assert_predict_error(sst2_run, tmp_path, content, message)
