"""Models: negative-sampling distribution, losses, planted similarities, export, gensim round trip."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from zoo.core.data import DataInfo
from zoo.plugins.word2vec.evaluate import WordVectors
from zoo.plugins.word2vec.models import CBOW, GloVe, SkipGram

ANIMALS = {"cat", "dog", "cow", "horse", "sheep"}
COLOURS = {"red", "blue", "green", "yellow", "purple"}


def _info(counts):
    return DataInfo(input_shape=(), extra={"vocab": [f"w{i}" for i in range(len(counts))],
                                            "counts": np.asarray(counts)})


def test_negative_sampling_follows_unigram_to_the_three_quarters():
    counts = np.array([1000, 300, 100, 10, 1])
    model = SkipGram(_info(counts), dim=4, negatives=5, ns_exponent=0.75, table_size=10**6)
    torch.manual_seed(0)
    draws = model.sample_noise((200_000,), torch.device("cpu"))
    freq = torch.bincount(draws, minlength=5).double() / draws.numel()
    expected = torch.tensor(counts, dtype=torch.float64) ** 0.75
    expected /= expected.sum()
    assert torch.allclose(freq, expected, atol=3e-3), (freq, expected)
    # evaluation draws are reproducible
    model.eval()
    a = model.sample_noise((64,), torch.device("cpu"))
    assert torch.equal(a, model.sample_noise((64,), torch.device("cpu")))


def test_skipgram_loss_matches_the_formula():
    torch.manual_seed(0)
    model = SkipGram(_info([5, 4, 3, 2]), dim=3, negatives=2, ns_exponent=0.75)
    torch.nn.init.normal_(model.out_embed.weight)
    centre = torch.tensor([0, 1])
    context = torch.tensor([[1, 2], [3, 0]])
    mask = torch.tensor([[True, True], [False, True]])
    torch.manual_seed(1)
    loss, pairs = model(centre, context, mask)
    torch.manual_seed(1)
    noise = model.sample_noise((2, 2), torch.device("cpu"))
    v, u = model.in_embed.weight, model.out_embed.weight
    ls = torch.nn.functional.logsigmoid
    expected = 0.0
    for b, slots in ((0, [0, 1]), (1, [1])):
        for c in slots:
            expected -= ls(u[context[b, c]] @ v[centre[b]])
            expected -= sum(ls(-(u[n] @ v[centre[b]])) for n in noise[b])
    assert float(pairs) == 3
    assert torch.allclose(loss, expected, atol=1e-5)


def test_cbow_averages_the_valid_context():
    torch.manual_seed(0)
    model = CBOW(_info([5, 4, 3, 2]), dim=3, negatives=1, ns_exponent=0.75)
    torch.nn.init.normal_(model.out_embed.weight)
    centre = torch.tensor([0, 1])
    context = torch.tensor([[1, 2], [3, 0]])
    mask = torch.tensor([[True, True], [False, False]])   # the second centre has no context
    torch.manual_seed(1)
    loss, centres = model(centre, context, mask)
    torch.manual_seed(1)
    noise = model.sample_noise((1, 1), torch.device("cpu"))
    v, u = model.in_embed.weight, model.out_embed.weight
    h = (v[1] + v[2]) / 2
    ls = torch.nn.functional.logsigmoid
    expected = -ls(u[0] @ h) - ls(-(u[noise[0, 0]] @ h))
    assert float(centres) == 1
    assert torch.allclose(loss, expected, atol=1e-5)


def test_glove_weighting_and_target():
    model = GloVe(_info([5, 4]), dim=2, x_max=10.0, alpha=0.75)
    row, col = torch.tensor([0, 1]), torch.tensor([1, 0])
    count = torch.tensor([20.0, 5.0])
    loss, items = model(row, col, count)
    pred = (model.w.weight[row] * model.w_context.weight[col]).sum(-1)
    f = torch.tensor([1.0, 0.5 ** 0.75])
    assert float(items) == 2
    assert torch.allclose(loss, (0.5 * f * (pred - count.log()) ** 2).sum(), atol=1e-6)
    assert torch.allclose(model(torch.tensor([0]))[0].norm(), torch.tensor(1.0))


def test_planted_groups_are_nearest_neighbours(planted_run):
    run, summary = planted_run
    assert summary["status"] == "finished"
    vectors = WordVectors.from_run(run)
    for word in ANIMALS:
        top = {w for w, _ in vectors.most_similar(word, topn=4)}
        assert top == ANIMALS - {word}, (word, vectors.most_similar(word, topn=4))
    answer = vectors.analogy("cat", "dog", "red", topn=4)
    assert {w for w, _ in answer} <= COLOURS


@pytest.mark.parametrize("model_name", ["cbow", "glove"])
def test_planted_groups_cbow_and_glove(model_name, tmp_path, planted):
    from zoo.core import api

    planted_corpus, planted_options = planted
    corpus = planted_corpus(tmp_path / "planted.txt")
    options = planted_options(corpus, model_name, export={"enabled": False})
    api.train(model_name, options=options, out=str(tmp_path / "run"), log=None)
    vectors = WordVectors.from_run(tmp_path / "run")
    hits = sum(w in ANIMALS for w, _ in vectors.most_similar("cat", topn=4))
    assert hits >= 3, vectors.most_similar("cat", topn=4)


def test_export_is_the_normalised_lookup_with_the_vocabulary(planted_run):
    import onnxruntime as ort

    run, summary = planted_run
    assert summary["parity"] <= 1e-5
    model = onnx.load(str(run / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    vocab = json.loads(meta["onnx_vocab"])
    assert set(vocab) == ANIMALS | COLOURS
    assert [i.name for i in model.graph.input] == ["ids"]
    assert [o.name for o in model.graph.output] == ["vectors"]
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    vectors = WordVectors.from_run(run)
    assert vectors.words == vocab
    for n in (1, 2, 7):
        ids = np.arange(n, dtype=np.int64) % len(vocab)
        (out,) = session.run(None, {"ids": ids})
        assert out.shape == (n, 16)
        assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
        # vectors.txt is written with 6 significant digits
        assert np.allclose(out, vectors.unit[ids], atol=1e-4)


def test_gensim_loads_the_word2vec_text_format(planted_run):
    gensim_models = pytest.importorskip("gensim.models")
    run, _ = planted_run
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(run / "vectors.txt"), binary=False)
    ours = WordVectors.from_run(run)
    assert list(kv.index_to_key) == ours.words
    assert np.allclose(kv.vectors, ours.vectors, atol=1e-6)
    assert [w for w, _ in kv.most_similar("cat", topn=4)] == [w for w, _ in ours.most_similar("cat", topn=4)]


def test_summary_carries_the_evaluation(planted_run):
    run, summary = planted_run
    evaluation = json.loads((run / "embedding_eval.json").read_text())
    assert evaluation["vocab_size"] == 10
    assert summary["embedding_eval"]["vocab_size"] == 10
    # none of WordSim353's words is in the planted vocabulary except perhaps "cat"/"dog"
    assert evaluation.get("wordsim353_pairs") in (None, 353)


@pytest.mark.parametrize("cls", [SkipGram, CBOW])
def test_sparse_gradients_train_with_sgd(cls):
    torch.manual_seed(0)
    model = cls(_info([50, 40, 30, 20, 10]), dim=8, negatives=2, ns_exponent=0.75, sparse=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    centre = torch.tensor([0, 1, 2, 3])
    context = torch.tensor([[1, 2], [0, 2], [0, 1], [4, 4]])
    mask = torch.ones(4, 2, dtype=torch.bool)
    losses = []
    for _ in range(20):
        loss, count = model(centre, context, mask)
        loss = loss / count
        optimizer.zero_grad()
        loss.backward()
        assert model.in_embed.weight.grad.is_sparse
        optimizer.step()
        losses.append(loss.item() if not loss.requires_grad else float(loss.detach()))
    assert losses[-1] < losses[0]
