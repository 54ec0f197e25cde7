"""rnn-seq2seq: shapes, masks, each attention, teacher forcing vs greedy, the translation task's
BLEU, the Tatoeba loader on its fixture, and (slow) a tiny run: ONNX == torch, explain, match by
length."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import check_onnx_greedy_decoding, quick_options, reverse_run_fixture
from zoo.core import api
from zoo.core.contract.catalogue import load_catalogue
from zoo.core.contract.errors import ZooError
from zoo.plugins.rnn.seq2seq import RNNSeq2Seq, RNNSeq2SeqConfig, SourceAttention
from zoo.plugins.sequence.seq2seq_data import BOS_ID, EOS_ID
from zoo.plugins.sequence.seq2seq_task import Translation
from zoo.plugins.sequence.tatoeba import TatoebaOptions, load_tatoeba, normalize

ATTENTIONS = ("none", "additive", "dot", "general")
V, L = 14, 6


def _model(attention="additive", cell="gru", seed=0, **kw):
    torch.manual_seed(seed)
    config = RNNSeq2SeqConfig(name="rnn-seq2seq", attention=attention, cell=cell, embedding_dim=8,
                              hidden_size=16, attention_dim=8, **kw)
    return RNNSeq2Seq(config, vocab_size=V, decode_steps=L, bos_id=BOS_ID, eos_id=EOS_ID)


# -- the model --------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_shapes_modes_and_eos_then_padding(attention, cell):
    model = _model(attention, cell).eval()
    tokens, lengths = torch.randint(4, V, (5, 7)), torch.tensor([7, 3, 1, 5, 2])
    target = torch.randint(4, V, (5, 4))
    with torch.no_grad():
        generated = model(tokens, lengths)
        logits, again = model(tokens, lengths, target)
        _, alpha = model.greedy_with_attention(tokens, lengths)
    assert generated.shape == (5, L) and generated.dtype == torch.long
    assert torch.equal(generated, again) and logits.shape == (5, 4, V)
    assert (alpha is None) == (attention == "none")
    if alpha is not None:
        assert alpha.shape == (5, L, 7)
    assert not torch.isin(generated, torch.tensor([1, BOS_ID])).any()       # never <unk>/<bos>
    for row in generated.tolist():                                           # <pad> only after <eos>
        k = row.index(EOS_ID) if EOS_ID in row else len(row)
        assert 0 not in row[:k] and all(t == 0 for t in row[k + 1:])
    assert model.train()(tokens, lengths, target).shape == (5, 4, V)


@pytest.mark.parametrize("attention", ATTENTIONS[1:])
def test_attention_is_a_distribution_over_the_real_source_tokens(attention):
    model = _model(attention, seed=1).eval()
    tokens, lengths = torch.randint(4, V, (3, 6)), torch.tensor([6, 2, 4])
    with torch.no_grad():
        _, alpha = model.greedy_with_attention(tokens, lengths)             # (3, L, 6)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, L))
    mask = torch.arange(6)[None, :] < lengths[:, None]                        # (3, 6)
    assert (alpha.masked_select(~mask[:, None, :].expand_as(alpha)) == 0).all()
    assert (alpha.masked_select(mask[:, None, :].expand_as(alpha)) > 0).all()


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_decoding_does_not_depend_on_source_padding(attention):
    model = _model(attention, seed=2).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 10, 11, 12, 13]])
    with torch.no_grad():
        torch.testing.assert_close(model(short, torch.tensor([3]), torch.tensor([[4, 5]]))[0],
                                   model(padded, torch.tensor([3, 6]), torch.tensor([[4, 5], [6, 7]]))[0][:1])
        assert torch.equal(model(short, torch.tensor([3]))[0], model(padded, torch.tensor([3, 6]))[0])


def test_each_score_function_matches_its_formula():
    torch.manual_seed(3)
    q, keys = torch.randn(2, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    expected_scores = {
        "dot": lambda a: torch.einsum("bh,bsh->bs", q, keys),
        "general": lambda a: torch.einsum("bh,bsh->bs", q, keys @ a.w.weight.T),
        "additive": lambda a: (torch.tanh((q @ a.query.weight.T)[:, None] + keys @ a.key.weight.T + a.key.bias)
                               @ a.v.weight.T).squeeze(-1),
    }
    for kind, score in expected_scores.items():
        attend = SourceAttention(kind, 4, 5)
        context, alpha = attend(q, keys, attend.prepare(keys), mask)
        e = score(attend).masked_fill(~mask, float("-inf"))
        torch.testing.assert_close(alpha, torch.softmax(e, -1))
        torch.testing.assert_close(context, torch.einsum("bs,bsh->bh", alpha, keys))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_teacher_forcing_is_causal_and_agrees_with_greedy(attention):
    """Teacher-forced logits at step t depend on target[:, :t] only; fed the model's own greedy
    decode as the target, teacher forcing reproduces that decode (same steps, same inputs)."""
    model = _model(attention, seed=4).eval()
    tokens, lengths = torch.randint(4, V, (4, 5)), torch.tensor([5, 4, 2, 3])
    target = torch.randint(4, V, (4, 5))
    changed = target.clone()
    changed[:, 3] = 4 + (changed[:, 3] - 3) % 10
    with torch.no_grad():
        a, generated = model(tokens, lengths, target)
        b, _ = model(tokens, lengths, changed)
        own, _ = model(tokens, lengths, generated)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4], b[:, 4])
    steps = own.masked_fill(model.never, float("-inf")).argmax(-1)            # (4, L)
    for row, decoded in zip(steps.tolist(), generated.tolist()):
        k = decoded.index(EOS_ID) + 1 if EOS_ID in decoded else len(decoded)
        assert row[:k] == decoded[:k]


def test_without_attention_the_decoder_sees_only_the_summary():
    """attention = none: two sources with the same encoder summary decode the same way."""
    model = _model("none", seed=5).eval()
    tokens, lengths = torch.randint(4, V, (2, 5)), torch.tensor([5, 3])
    with torch.no_grad():
        enc = model.encode(tokens, lengths)
        other = dict(enc, keys=torch.randn_like(enc["keys"]), prepared=torch.randn_like(enc["prepared"]))
        assert torch.equal(model.greedy(enc)[0], model.greedy(other)[0])


def test_bad_inputs_are_clear_errors():
    model = _model().eval()
    with pytest.raises(ZooError, match=r"\[0, 14\)"):
        model(torch.tensor([[4, 14]]), torch.tensor([2]))
    with pytest.raises(ZooError, match="lengths"):
        model(torch.zeros(2, 3, dtype=torch.long) + 4, torch.tensor([3, 0]))
    with pytest.raises(ZooError, match="longer than the model decodes"):
        model(torch.randint(4, V, (1, 3)), torch.tensor([3]), torch.randint(4, V, (1, L + 1)))


# -- the translation task: corpus BLEU through sacrebleu ----------------------------------------

def test_translation_bleu_is_sacrebleus_corpus_bleu_over_batches():
    from sacrebleu.metrics import BLEU

    task = Translation()
    rng = torch.Generator().manual_seed(0)
    refs, hyps, sums = [], [], {}
    for _ in range(3):                                   # three batches, summed like the trainer
        target = torch.randint(4, 12, (6, 7), generator=rng)
        target[:, 6] = EOS_ID
        generated = target.clone()
        noise = torch.rand(target.shape, generator=rng) < 0.3
        generated[noise & (target != EOS_ID)] = 12
        generated = torch.cat([generated, torch.zeros(6, 2, dtype=torch.long)], dim=1)
        logits = torch.zeros(6, 7, 14)
        for key, value in task.metric_sums((logits, generated), {"target": target}).items():
            sums[key] = sums.get(key, 0.0) + float(value)
        refs += [" ".join(map(str, row[:6])) for row in target.tolist()]
        hyps += [" ".join(map(str, row[:6])) for row in generated.tolist()]
    metrics = task.finalize(sums)
    expected = BLEU(tokenize="none").corpus_score(hyps, [refs]).score
    assert 0 < metrics["bleu"] < 100 and metrics["bleu"] == pytest.approx(expected)
    perfect = task.metric_sums((torch.zeros(1, 6, 14), torch.tensor([[5, 6, 7, 8, 9, EOS_ID, 0]])),
                               {"target": torch.tensor([[5, 6, 7, 8, 9, EOS_ID]])})
    assert task.finalize({k: float(v) for k, v in perfect.items()})["bleu"] == pytest.approx(100.0)


# -- Tatoeba English-French ---------------------------------------------------------------------

def test_normalize_is_the_tutorials():
    assert normalize("J'ai froid.") == "j ai froid ."
    assert normalize("Vous êtes très fatigué !") == "vous etes tres fatigue !"
    assert normalize("  I'm 20, OK?") == "i m ok ?"


def test_tatoeba_fixture_filtered_split_and_directions():
    dataset = load_tatoeba(TatoebaOptions(), None)     # ZOO_DATA_DIR is the fixtures' data root
    assert len(dataset.train) + len(dataset.test) == 100 and len(dataset.test) == 10
    vocab = dataset.info.extra["onnx_vocabulary"]["tokens"]
    assert vocab[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    batch = dataset.train.batch(torch.arange(len(dataset.train)))
    sources = [" ".join(vocab[i] for i in row[:n]) for row, n in zip(batch["tokens"].tolist(), batch["lengths"].tolist())]
    targets = [" ".join(vocab[i] for i in row[:n - 1]) for row, n in zip(batch["target"].tolist(), batch["target_lengths"].tolist())]
    assert all(t.startswith(("i am", "i m", "he is", "he s", "she is", "you are", "you re", "we are",
                             "they are", "they re")) for t in targets)       # French → English
    assert "il est dans le jardin ." in sources and "etes" in vocab and "va" not in vocab
    english_first = load_tatoeba(TatoebaOptions(direction="eng-fra", english_prefixes=False), None)
    assert len(english_first.train) + len(english_first.test) == 103   # + "go", "run", "who is there"
    with pytest.raises(ZooError, match="pass the filters"):
        load_tatoeba(TatoebaOptions(max_length=2), None)


# -- a tiny trained run: ONNX == torch, zoo explain, match by length ----------------------------

reverse_run = reverse_run_fixture("rnn-seq2seq", n=600, n_test=40, lr=1e-2)


@pytest.mark.slow
def test_onnx_greedy_decoding_equals_torch_on_50_random_inputs(reverse_run):
    check_onnx_greedy_decoding(reverse_run[0])


@pytest.mark.slow
def test_explain_draws_the_attention_of_one_test_pair(reverse_run):
    out, _ = reverse_run
    report = api.explain(str(out), index=3)
    assert (out / "explain-3" / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    matrix = np.array(report["attention"])
    assert matrix.shape == (len(report["decoded"]), len(report["source"]))
    np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-5)
    assert json.loads((out / "explain-3" / "explain.json").read_text())["decoded"] == report["decoded"]


@pytest.mark.slow
def test_the_run_directory_has_exact_match_by_length(reverse_run):
    out, summary = reverse_run
    report = json.loads((out / "match_by_length.json").read_text())
    table = report["by_length"]
    assert report["attention"] == "additive" and set(table) == {"2", "3", "4", "5"}
    assert sum(row["n"] for row in table.values()) == 40
    overall = sum(row["n"] * row["exact_match"] for row in table.values()) / 40
    assert overall == pytest.approx(summary["metrics"]["exact_match"])
    assert (out / "match_by_length.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_explain_without_attention_is_a_clear_error(tmp_path):
    entry = load_catalogue().models["rnn-seq2seq-noattn"]
    out = tmp_path / "run"
    api.train("rnn-seq2seq-noattn", options=quick_options(entry, export={"enabled": False}), out=str(out), log=None)
    with pytest.raises(ZooError, match="no attention matrix"):
        api.explain(str(out), index=0)


@pytest.mark.slow
def test_rnn_seq2seq_learns_tatoeba_fixture_with_bleu(tmp_path):
    """The translation task end to end on the fixture (BLEU is the main metric; pairs of ten
    subjects × ten predicates, each word translated alone: chance BLEU is near 0)."""
    entry = load_catalogue().models["rnn-seq2seq"]
    options = quick_options(entry, data={"limit": None, "name": "tatoeba-eng-fra"},
                            model={"embedding_dim": 16, "hidden_size": 32, "attention_dim": 16},
                            optim={"lr": 1e-2}, train={"epochs": 40, "batch_size": 16},
                            export={"enabled": False})
    options["data"].pop("options", None)
    summary = api.train("rnn-seq2seq", options=options, out=str(tmp_path / "run"), log=None)
    assert summary["status"] == "finished"
    assert summary["metrics"]["bleu"] > 40, summary["metrics"]      # 72 when written


@pytest.mark.slow
def test_pairs_as_translation_reports_bleu_and_default_task_does_not(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("".join(f"{s}\t{' '.join(reversed(s.split()))}\n" for s in
                            ["a b c d", "b c d e", "c a e", "a d b e"] * 6))
    entry = load_catalogue().models["rnn-seq2seq"]
    for task, has_bleu in (("translation", True), ("seq2seq", False)):
        options = quick_options(entry, export={"enabled": False})
        options["data"] = {"name": "pairs", "options": {"path": str(path), "task": task}}   # not reverse's
        summary = api.train("rnn-seq2seq", options=options, out=str(tmp_path / task), log=None)
        assert summary["task"] == task and ("bleu" in summary["metrics"]) == has_bleu
        assert json.loads((tmp_path / task / "match_by_length.json").read_text())["dataset"] == "pairs"
