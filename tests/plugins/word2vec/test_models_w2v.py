"""Models: negative-sampling distribution, losses, planted similarities, export, gensim round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch

from zoo.core.train.data import DataInfo
from zoo.plugins.word2vec.evaluate import WordVectors
from zoo.plugins.word2vec.models import CBOW, NUMBA, GloVe, SkipGram, huffman_codes

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


def _two_centres(cls, negatives: int, second_mask: list[bool], noise_shape: tuple[int, int]):
    """A 4-word model with random output vectors run on centres 0 and 1 with contexts (1, 2), (3, 0):
    ``(model, centre, context, (loss, count), noise)``, the noise words being the ones the forward drew."""
    torch.manual_seed(0)
    model = cls(_info([5, 4, 3, 2]), dim=3, negatives=negatives, ns_exponent=0.75)
    torch.nn.init.normal_(model.out_embed.weight)
    centre, context = torch.tensor([0, 1]), torch.tensor([[1, 2], [3, 0]])
    torch.manual_seed(1)
    out = model(centre, context, torch.tensor([[True, True], second_mask]))
    torch.manual_seed(1)
    return model, centre, context, out, model.sample_noise(noise_shape, torch.device("cpu"))


def test_skipgram_loss_matches_the_formula():
    model, centre, context, (loss, pairs), noise = _two_centres(SkipGram, 2, [False, True], noise_shape=(2, 2))
    v, u = model.in_embed.weight, model.out_embed.weight
    ls = torch.nn.functional.logsigmoid
    expected = 0.0
    # gensim's orientation: the context word's input vector predicts the centre's output vector
    for b, slots in ((0, [0, 1]), (1, [1])):
        for c in slots:
            expected -= ls(u[centre[b]] @ v[context[b, c]])
            expected -= sum(ls(-(u[n] @ v[context[b, c]])) for n in noise[b])
    assert float(pairs) == 3
    assert torch.allclose(loss, expected, atol=1e-5)


def _autograd_reference(model, centre, context, mask, noise):
    """The same loss written with plain differentiable ops (autograd computes its gradient)."""
    v, u = model.in_embed.weight, model.out_embed.weight
    ls = torch.nn.functional.logsigmoid
    w = mask.double()
    if noise is None:       # hierarchical softmax: the Huffman path of the centre
        points, codes, lengths = huffman_codes(np.asarray(model_counts(model)))
        targets = torch.as_tensor(points)[centre]
        sign = 1.0 - 2.0 * torch.as_tensor(codes, dtype=torch.float64)[centre]
        valid = (torch.arange(points.shape[1]) < torch.as_tensor(lengths)[centre].unsqueeze(1)).double()
    else:
        targets = torch.cat([centre.unsqueeze(1), noise], 1)
        sign = torch.tensor([1.0] + [-1.0] * noise.shape[1], dtype=torch.float64).expand(len(centre), -1)
        valid = torch.ones_like(sign)
    if isinstance(model, SkipGram):
        s = torch.einsum("bcd,bjd->bcj", v[context], u[targets])
        return -(ls(s * sign.unsqueeze(1)) * valid.unsqueeze(1) * w.unsqueeze(2)).sum()
    n = w.sum(1)
    h = (v[context] * w.unsqueeze(2)).sum(1) / n.clamp(min=1).unsqueeze(1)
    s = torch.einsum("bjd,bd->bj", u[targets], h)
    active = (n > 0).double()
    return -(ls(s * sign) * valid * active.unsqueeze(1)).sum()


def model_counts(model):
    return [50, 40, 30, 20, 10, 5][:len(model.vocab)]


KERNELS = ["torch", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA, reason="numba is not installed"))]


@pytest.mark.parametrize("cls", [SkipGram, CBOW])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("objective", ["ns", "hs"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_analytic_gradients_match_autograd(cls, sparse, objective, kernel):
    """The hand-written backward (batched word2vec update) is the true gradient of the loss,
    with rows repeated inside a batch (collisions) and empty context slots: both the torch ops
    and the fused CPU kernel."""
    torch.manual_seed(0)
    extra = {"exact_gradient": True} if cls is CBOW else {}
    model = cls(_info([50, 40, 30, 20, 10, 5]), dim=4, negatives=3, ns_exponent=0.75, sparse=sparse,
                objective=objective, output_updates="sum", kernel=kernel, **extra).double()
    torch.nn.init.normal_(model.out_embed.weight)
    torch.nn.init.normal_(model.in_embed.weight)
    centre = torch.tensor([0, 1, 2, 0, 5])
    context = torch.tensor([[1, 2, 3, 1], [0, 0, 2, 4], [5, 1, 1, 0], [3, 3, 3, 3], [1, 2, 3, 4]])
    mask = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 1]], dtype=torch.bool)
    torch.manual_seed(3)
    loss, _ = model(centre, context, mask)
    loss.backward()
    torch.manual_seed(3)
    noise = model.sample_noise((5, 3), torch.device("cpu"))
    if objective == "hs":
        noise = None
    got = [p.grad.to_dense() if p.grad.is_sparse else p.grad for p in (model.in_embed.weight, model.out_embed.weight)]
    assert got[0].is_sparse is False and (model.in_embed.weight.grad.is_sparse == sparse)
    model.zero_grad(set_to_none=True)
    reference = _autograd_reference(model, centre, context, mask, noise)
    assert torch.allclose(loss, reference)
    reference.backward()
    for grad, p in zip(got, (model.in_embed.weight, model.out_embed.weight)):
        expected = p.grad.to_dense() if p.grad.is_sparse else p.grad
        assert torch.allclose(grad, expected, atol=1e-10), (grad, expected)
    assert got[0].abs().sum() > 0 and got[1].abs().sum() > 0


def test_empty_batch_gives_zero_loss_and_gradient():
    for cls in (SkipGram, CBOW):
        model = cls(_info([5, 4, 3]), dim=3, negatives=2, ns_exponent=0.75, sparse=True)
        empty = torch.zeros(0, dtype=torch.long)
        loss, count = model(empty, empty.reshape(0, 4), torch.zeros(0, 4, dtype=torch.bool))
        loss.backward()
        assert float(loss.detach()) == 0.0 and float(count) == 0.0
        assert model.in_embed.weight.grad.to_dense().abs().sum() == 0


def test_cbow_averages_the_valid_context():
    # the second centre has no context
    model, _, _, (loss, centres), noise = _two_centres(CBOW, 1, [False, False], noise_shape=(1, 1))
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


@pytest.mark.slow
def test_planted_groups_are_nearest_neighbours(planted_run):
    run, summary = planted_run
    assert summary["status"] == "finished"
    vectors = WordVectors.from_run(run)
    for word in ANIMALS:
        top = {w for w, _ in vectors.most_similar(word, topn=4)}
        assert top == ANIMALS - {word}, (word, vectors.most_similar(word, topn=4))
    answer = vectors.analogy("cat", "dog", "red", topn=4)
    assert {w for w, _ in answer} <= COLOURS


ADAM_DENSE = {"optim": {"name": "adam", "lr": 0.05}, "model": {"sparse": False}, "train": {"loss": "mean"}}


TORCH_KERNEL = {"model": {"kernel": "torch"}}


@pytest.mark.slow
@pytest.mark.parametrize("model_name, extra", [("cbow", {}), ("glove", {}), ("cbow", ADAM_DENSE),
                                               ("skipgram", ADAM_DENSE), ("cbow", TORCH_KERNEL),
                                               ("skipgram", TORCH_KERNEL)],
                         ids=["cbow", "glove", "cbow-adam-dense", "skipgram-adam-dense", "cbow-torch-kernel",
                              "skipgram-torch-kernel"])
def test_planted_groups_cbow_and_glove(model_name, extra, tmp_path, planted):
    """The defaults (SGD, sparse, summed loss: word2vec's own update by the CPU kernel when numba
    is installed), the batched sparse gradients of the torch ops, and dense gradients with Adam."""
    from zoo.core import api

    planted_corpus, planted_options = planted
    corpus = planted_corpus(tmp_path / "planted.txt")
    from zoo.core.contract.config import deep_merge

    options = deep_merge(planted_options(corpus, model_name, export={"enabled": False}), extra)
    api.train(model_name, options=options, out=str(tmp_path / "run"), log=None)
    vectors = WordVectors.from_run(tmp_path / "run")
    hits = sum(w in ANIMALS for w, _ in vectors.most_similar("cat", topn=4))
    assert hits >= 3, vectors.most_similar("cat", topn=4)


@pytest.mark.slow
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


@pytest.mark.slow
def test_gensim_loads_the_word2vec_text_format(planted_run):
    gensim_models = pytest.importorskip("gensim.models")
    run, _ = planted_run
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(run / "vectors.txt"), binary=False)
    ours = WordVectors.from_run(run)
    assert list(kv.index_to_key) == ours.words
    assert np.allclose(kv.vectors, ours.vectors, atol=1e-6)
    assert [w for w, _ in kv.most_similar("cat", topn=4)] == [w for w, _ in ours.most_similar("cat", topn=4)]


@pytest.mark.slow
def test_summary_carries_the_evaluation(planted_run, data_root):
    run, summary = planted_run
    evaluation = json.loads((run / "embedding_eval.json").read_text())
    assert evaluation["vocab_size"] == 10
    assert summary["embedding_eval"]["vocab_size"] == 10
    # the run is evaluated on $ZOO_DATA_DIR/text (the fixtures' stand-ins): every pair counted,
    # those with a word outside the planted vocabulary as out of vocabulary
    from zoo.plugins.word2vec.evaluate import read_pairs

    pairs = read_pairs(data_root / "text" / "wordsim353.tsv")
    planted = ANIMALS | COLOURS
    assert evaluation["wordsim353_pairs"] == len(pairs)
    assert evaluation["wordsim353_oov_pairs"] == sum(not {a, b} <= planted for a, b, _ in pairs)


@pytest.mark.slow
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


def test_cbow_word2vec_update_is_n_times_the_exact_input_gradient():
    """gensim's cbow_mean=1 update: each context vector gets the whole dloss/dh (not / n)."""
    grads = []
    for exact in (True, False):
        torch.manual_seed(0)
        model = CBOW(_info([5, 4, 3, 2]), dim=3, negatives=2, ns_exponent=0.75, exact_gradient=exact)
        torch.nn.init.normal_(model.out_embed.weight)
        centre = torch.tensor([0])
        context = torch.tensor([[1, 2, 3, 3]])
        mask = torch.tensor([[True, True, True, False]])
        torch.manual_seed(1)
        loss, _ = model(centre, context, mask)
        loss.backward()
        grads.append((model.in_embed.weight.grad.clone(), model.out_embed.weight.grad.clone()))
    assert torch.allclose(grads[1][0], 3 * grads[0][0])      # 3 valid context words
    assert torch.allclose(grads[1][1], grads[0][1])          # output vectors: unchanged
    assert grads[0][0][1].abs().sum() > 0


@pytest.mark.parametrize("counts", [[5], [3, 1], [45, 13, 12, 16, 9, 5], [1] * 7, list(range(1, 40)),
                                    [1000, 300, 100, 10, 1, 1, 1]])
def test_huffman_codes_are_a_prefix_code_with_huffman_lengths(counts):
    import heapq

    points, codes, lengths = huffman_codes(np.asarray(counts))
    v = len(counts)
    words = [tuple(codes[i, :lengths[i]]) for i in range(v)]
    if v == 1:
        assert lengths.tolist() == [0]
        return
    # a prefix code of a full binary tree: no code is a prefix of another, Kraft sum is exactly 1
    for i in range(v):
        for j in range(v):
            assert i == j or words[j][:len(words[i])] != words[i], (words[i], words[j])
    assert sum(2.0 ** -len(w) for w in words) == pytest.approx(1.0)
    # Huffman lengths: the weighted length is the optimum, Σ of the merged sums (independent count)
    heap = list(counts)
    heapq.heapify(heap)
    optimum = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        optimum += merged
        heapq.heappush(heap, merged)
    assert sum(c * int(n) for c, n in zip(counts, lengths)) == optimum
    # the path goes through the inner nodes 0..V-2, from the root (the last merge) down; two
    # words share the inner node before the first bit where their codes differ
    assert (points[:, 0] == v - 2).all() and points.max() <= v - 2
    for i in range(v):
        for j in range(v):
            k = next((d for d in range(min(lengths[i], lengths[j])) if codes[i, d] != codes[j, d]), None)
            if k is not None:
                assert points[i, :k + 1].tolist() == points[j, :k + 1].tolist()


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["skipgram", "cbow"])
def test_hierarchical_softmax_learns_the_planted_groups(model_name, tmp_path, planted):
    from zoo.core import api

    planted_corpus, planted_options = planted
    corpus = planted_corpus(tmp_path / "planted.txt")
    from zoo.core.contract.config import deep_merge

    options = deep_merge(planted_options(corpus, model_name, export={"enabled": False}),
                         {"model": {"loss": "hs"}})
    summary = api.train(model_name, options=options, out=str(tmp_path / "run"), log=None)
    assert summary["status"] == "finished"
    vectors = WordVectors.from_run(tmp_path / "run")
    hits = sum(w in ANIMALS for w, _ in vectors.most_similar("cat", topn=4))
    assert hits >= 3, vectors.most_similar("cat", topn=4)


@pytest.mark.parametrize("cls", [SkipGram, CBOW])
@pytest.mark.parametrize("kernel", KERNELS)
def test_mean_output_updates_divide_each_row_by_its_hits(cls, kernel):
    """output_updates = mean: the summed update of an output row over its m valid hits, / m."""
    grads = []
    for updates in ("sum", "mean"):
        torch.manual_seed(0)
        model = cls(_info([50, 40, 30, 20, 10, 5]), dim=4, negatives=3, ns_exponent=0.75,
                    objective="hs", output_updates=updates, kernel=kernel).double()
        torch.nn.init.normal_(model.out_embed.weight)
        centre = torch.tensor([0, 0, 5, 2])
        context = torch.tensor([[1, 2], [3, 4], [1, 1], [0, 1]])
        mask = torch.tensor([[True, True], [True, False], [True, True], [False, False]])
        loss, _ = model(centre, context, mask)
        loss.backward()
        grads.append(model.out_embed.weight.grad)
    hits = torch.zeros(6, dtype=torch.float64)
    for b in range(3):                                   # the last centre has no context
        length = int(model.hs_mask[centre[b]].sum())
        hits.index_add_(0, model.hs_points[centre[b], :length], torch.ones(length, dtype=torch.float64))
    assert hits[4] == 3                                 # the root is on every path
    assert torch.allclose(grads[1], grads[0] / hits.clamp(min=1).unsqueeze(1))
    assert SkipGram(_info([5, 4]), dim=2, negatives=1, ns_exponent=0.75, objective="hs").mean_out
    assert not CBOW(_info([5, 4]), dim=2, negatives=1, ns_exponent=0.75, objective="hs").mean_out
    assert not SkipGram(_info([5, 4]), dim=2, negatives=1, ns_exponent=0.75).mean_out


def test_spearman_averages_ties_and_is_nan_when_undefined():
    from zoo.plugins.word2vec.evaluate import spearman

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x (1, 2, 3, 4), y (1.5, 1.5, 3, 4): Pearson of the ranks
    assert spearman([1, 2, 3, 4], [5, 5, 6, 7]) == pytest.approx(0.9486833, abs=1e-6)
    assert math.isnan(spearman([1], [2])) and math.isnan(spearman([1, 2, 3], [5, 5, 5]))
