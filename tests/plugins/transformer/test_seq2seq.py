"""transformer-seq2seq: generated datasets, the seq2seq task's metrics, greedy decoding, ONNX greedy
decoding == torch greedy decoding, and `zoo predict` on raw text."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import check_onnx_greedy_decoding, reverse_run_fixture, run_cli
from pydantic import ValidationError
from zoo.core import api
from zoo.core.contract.errors import ZooError
from zoo.plugins.transformer.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, build_seq2seq
from zoo.plugins.sequence.seq2seq_data import (
    BOS_ID,
    EOS_ID,
    AdditionOptions,
    SymbolOptions,
    load_addition,
    load_reverse,
    load_sort,
    make_split,
)
from zoo.plugins.sequence.seq2seq_task import Seq2Seq


def _decoded(dataset, split="train", n=50):
    """(source strings, target strings without <eos>) of the first n samples."""
    vocab = dataset.info.extra["onnx_vocabulary"]["tokens"]
    part = getattr(dataset, split)
    batch = part.batch(torch.arange(n))
    out = []
    for tokens, length, target, target_length in zip(batch["tokens"], batch["lengths"], batch["target"],
                                                     batch["target_lengths"]):
        t = target[:target_length].tolist()
        assert t[-1] == EOS_ID and EOS_ID not in t[:-1]
        assert (target[target_length:] == 0).all() and (tokens[length:] == 0).all()
        out.append(("".join(vocab[i] for i in tokens[:length].tolist()), "".join(vocab[i] for i in t[:-1])))
    return out


# -- datasets ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_reverse_and_sort_targets_and_lengths():
    options = SymbolOptions(symbols=12, min_length=3, max_length=9, n=200, n_test=10, seed=1)
    for load, rule in ((load_reverse, lambda s: s[::-1]), (load_sort, lambda s: "".join(sorted(s)))):
        dataset = load(options, None)
        pairs = _decoded(dataset, n=200)
        assert all(t == rule(s) for s, t in pairs)
        assert {len(s) for s, _ in pairs} == set(range(3, 10))          # every length occurs
        assert set("".join(s for s, _ in pairs)) <= set("0123456789ab")
        assert dataset.info.extra["max_target_length"] == 9 and dataset.info.extra["onnx_max_length"] == 9
    # the same seed gives the same data
    assert _decoded(load_sort(options, None)) == _decoded(load_sort(options, None))


@pytest.mark.slow
@pytest.mark.parametrize("little_endian", [False, True])
def test_addition_targets_are_the_sum(little_endian):
    dataset = load_addition(AdditionOptions(digits=3, n=300, n_test=5, little_endian=little_endian), None)
    flip = (lambda s: s[::-1]) if little_endian else (lambda s: s)
    pairs = _decoded(dataset, n=300)
    for source, target in pairs:
        a, b = source.split("+")
        assert int(flip(target)) == int(flip(a)) + int(flip(b))
        assert 1 <= len(a) <= 3 and not flip(a).startswith("0") or flip(a) == "0"
    # digit counts are spread evenly, so 1-digit operands are common (not 1 in 100)
    assert sum(len(s.split("+")[0]) == 1 for s, _ in pairs) > 50
    assert dataset.info.extra["max_target_length"] == 4 and dataset.info.extra["onnx_little_endian"] is little_endian


def test_options_are_validated():
    with pytest.raises(ValidationError, match="min_length"):
        SymbolOptions(min_length=5, max_length=3)
    with pytest.raises(ValidationError):
        SymbolOptions(symbols=37)
    with pytest.raises(ValidationError):
        AdditionOptions(colour="red")


def test_batches_are_cut_to_their_longest_source_and_target():
    split = make_split([[4, 5], [4, 5, 6, 7, 8], [9]], [[5, 4], [8], [9]])
    batch = split.batch(torch.tensor([0, 2]))
    assert batch["tokens"].shape == (2, 2) and batch["target"].shape == (2, 3)      # [5, 4, <eos>]
    assert batch["target"][0].tolist() == [5, 4, EOS_ID]


# -- the task ---------------------------------------------------------------------------------

def test_metrics_use_the_greedy_decode():
    task = Seq2Seq()
    target = torch.tensor([[4, 5, EOS_ID], [6, EOS_ID, 0], [7, EOS_ID, 0]])
    generated = torch.tensor([[4, 5, EOS_ID, 0],        # exact
                              [6, 6, EOS_ID, 0],        # late <eos>: 1 of 2 tokens right
                              [7, EOS_ID, 0, 0]])       # exact
    logits = torch.nn.functional.one_hot(target, 10).float() * 5  # teacher forcing is perfect
    sums = task.metric_sums((logits, generated), {"target": target})
    metrics = task.finalize({k: float(v) for k, v in sums.items()})
    assert metrics["exact_match"] == pytest.approx(2 / 3)
    assert metrics["token_accuracy"] == pytest.approx(6 / 7)
    assert metrics["teacher_forced_accuracy"] == 1.0
    # a decode that stops too early is wrong even though its tokens match so far
    early = torch.tensor([[4, EOS_ID, 0, 0], [6, EOS_ID, 0, 0], [7, EOS_ID, 0, 0]])
    metrics = task.finalize({k: float(v) for k, v in task.metric_sums((logits, early), {"target": target}).items()})
    assert metrics["exact_match"] == pytest.approx(2 / 3)
    with pytest.raises(ZooError, match="eval mode"):
        task.metric_sums(logits, {"target": target})


# -- the model --------------------------------------------------------------------------------

def _model(seed=0, **kw):
    torch.manual_seed(seed)
    config = Seq2SeqConfig(name="transformer-seq2seq", dim=16, heads=2, ff_dim=32, encoder_layers=1,
                           decoder_layers=1, dropout=0.0, max_positions=20, **kw)
    return Seq2SeqTransformer(config, vocab_size=14, decode_steps=6, bos_id=BOS_ID, eos_id=EOS_ID)


def test_greedy_decode_shape_eos_then_padding_and_modes():
    model = _model().eval()
    tokens = torch.randint(4, 14, (5, 7))
    lengths = torch.tensor([7, 3, 1, 5, 2])
    with torch.no_grad():
        generated = model(tokens, lengths)
        logits, again = model(tokens, lengths, torch.randint(4, 14, (5, 4)))
    assert generated.shape == (5, 6) and generated.dtype == torch.long
    assert torch.equal(generated, again) and logits.shape == (5, 4, 14)
    assert not torch.isin(generated, torch.tensor([1, BOS_ID])).any()     # never <unk>/<bos>
    for row in generated.tolist():                                         # <pad> exactly after <eos>
        if EOS_ID in row:
            k = row.index(EOS_ID)
            assert all(t == 0 for t in row[k + 1:]) and 0 not in row[:k]
        else:
            assert 0 not in row
    assert model.train()(tokens, lengths, torch.randint(4, 14, (5, 4))).shape == (5, 4, 14)


def test_decoding_does_not_depend_on_source_padding():
    model = _model(seed=1).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 10, 11, 12, 13]])
    with torch.no_grad():
        assert torch.equal(model(short, torch.tensor([3]))[0], model(padded, torch.tensor([3, 6]))[0])


def test_teacher_forcing_is_causal():
    """Changing target token t leaves the logits of positions ≤ t unchanged (they predict t)."""
    model = _model(seed=2).eval()
    tokens, lengths = torch.randint(4, 14, (2, 5)), torch.tensor([5, 4])
    target = torch.randint(4, 14, (2, 5))
    changed = target.clone()
    changed[:, 3] = 4 + (changed[:, 3] - 3) % 10
    with torch.no_grad():
        a, _ = model(tokens, lengths, target)
        b, _ = model(tokens, lengths, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4], b[:, 4])


def test_bad_inputs_to_the_model_are_clear_errors():
    model = _model().eval()
    with pytest.raises(ZooError, match="longer than"):
        model(torch.randint(4, 14, (1, 21)), torch.tensor([21]))
    with pytest.raises(ZooError, match="empty"):
        model(torch.zeros(2, 3, dtype=torch.long), torch.tensor([3, 0]))
    with pytest.raises(ZooError, match=r"\[0, 14\)"):
        model(torch.tensor([[4, 14]]), torch.tensor([2]))
    info = load_reverse(SymbolOptions(max_length=40, n=4, n_test=2), None).info
    with pytest.raises(ZooError, match="max_positions"):
        build_seq2seq(Seq2SeqConfig(name="transformer-seq2seq", max_positions=32), info)


# -- a tiny trained run: ONNX == torch, zoo predict ---------------------------------------------

reverse_run = reverse_run_fixture("transformer-seq2seq", n=1000, n_test=20, lr=3e-3)


@pytest.mark.slow
def test_onnx_greedy_decoding_equals_torch_on_50_random_inputs(reverse_run):
    check_onnx_greedy_decoding(reverse_run[0])


@pytest.mark.slow
def test_zoo_predict_decodes_raw_text(reverse_run, tmp_path):
    out, _ = reverse_run
    _, _, _, net, _, _, _ = api.load_run(str(out))
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"text": ["1 2 3 4", "5 0", "4321"]}))
    predictions, metadata = api.predict(str(out), str(path))
    expected = []
    for source in ([5, 6, 7, 8], [9, 4], [8, 7, 6, 5]):    # ids of the symbols above
        with torch.no_grad():
            row = net(torch.tensor([source]), torch.tensor([len(source)]))[0].tolist()
        ids = row[:row.index(EOS_ID)] if EOS_ID in row else row
        expected.append(" ".join(metadata["onnx_vocabulary"]["tokens"][i] for i in ids))
    assert predictions == expected and all(isinstance(p, str) for p in predictions)
    # and through the CLI, from a .txt file (one sequence a line)
    txt = tmp_path / "in.txt"
    txt.write_text("1 2 3 4\n5 0\n")
    result = run_cli("predict", str(out), "--input", str(txt))
    assert result.returncode == 0, result.stderr
    assert predictions[0] in result.stdout and predictions[1] in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("content, message", [
    ({"text": ""}, "empty"),
    ({"text": "   "}, "empty"),
    ({"text": "1 2 9"}, "outside the vocabulary: 9"),
    ({"text": "1 2 <eos>"}, "outside the vocabulary"),
    ({"text": "1 2 3 4 5 1"}, "at most 5"),
    ({"tokens": [[4, 10]], "lengths": [2]}, r"\[0, 10\)"),               # 6 symbols + 4 specials
    ({"tokens": [[4, 5]], "lengths": [0]}, "empty|between 1"),
])
def test_predict_bad_input_is_a_clear_error(reverse_run, tmp_path, content, message):
    out, _ = reverse_run
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ZooError, match=message):
        api.predict(str(out), str(path))
