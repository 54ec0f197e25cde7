"""The shared sequence pipeline: vocabulary, padding and masks, masked losses, span F1, raw text."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import (
    IGNORE,
    PAD_ID,
    UNK_ID,
    Seq2SeqAutoencoder,
    SequenceClassification,
    SequenceSplit,
    SequenceTagging,
    Vocabulary,
    bio_tag_names,
    chunks,
    last_valid,
    length_mask,
    pad,
    reverse_padded,
    span_counts,
    tokenize,
)


def test_tokenize_words_and_punctuation():
    assert tokenize("It's a GREAT film, isn't it?") == ["it's", "a", "great", "film", ",", "isn't", "it", "?"]
    assert tokenize("st. louis  to Denver", kind="whitespace") == ["st.", "louis", "to", "denver"]
    assert tokenize("   ") == []


def test_vocabulary_min_freq_unk_pad_and_metadata_round_trip():
    vocab = Vocabulary.build([["a", "b", "a"], ["a", "c", "b"]], min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]      # c seen once → unk; by frequency
    assert vocab.encode(["a", "c", "zzz", "b"]) == [2, UNK_ID, UNK_ID, 3]
    again = Vocabulary.from_metadata(vocab.to_metadata())
    assert again.tokens == vocab.tokens and again.tokenizer == "words"
    assert len(Vocabulary.build([["x"] * 5, ["y"] * 3, ["z"]], max_size=3)) == 3


def test_pad_lengths_and_mask():
    tokens, lengths = pad([[5, 6, 7], [8], [9, 10]])
    assert tokens.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID], [9, 10, PAD_ID]]
    assert lengths.tolist() == [3, 1, 2]
    assert length_mask(lengths, 3).tolist() == [[True] * 3, [True, False, False], [True, True, False]]
    cut, cut_lengths = pad([[1, 2, 3, 4]], length=2)
    assert cut.tolist() == [[1, 2]] and cut_lengths.tolist() == [2]


def test_reverse_padded_is_its_own_inverse_and_keeps_padding():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]).unsqueeze(-1).float()
    lengths = torch.tensor([3, 2])
    rev = reverse_padded(x, lengths)
    assert rev.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_padded(rev, lengths), x)
    assert last_valid(x, lengths).squeeze(-1).tolist() == [3, 5]


def test_split_batches_are_cut_to_their_longest_sequence():
    tokens, lengths = pad([[1, 2, 3, 4, 5], [6], [7, 8]])
    split = SequenceSplit(("tokens",), tokens=tokens, lengths=lengths, y=torch.zeros(3, dtype=torch.long))
    batch = split.batch(torch.tensor([1, 2]))
    assert batch["tokens"].shape == (2, 2)
    assert split.subset(torch.tensor([0])).batch(torch.tensor([0]))["tokens"].shape == (1, 5)


def test_tagging_loss_and_metrics_ignore_padding():
    task = SequenceTagging()
    tags = torch.tensor([[1, 2, 0], [0, IGNORE, IGNORE]])
    logits = torch.full((2, 3, 3), -10.0)
    for b, row in enumerate([[1, 2, 0], [0, 1, 1]]):         # padding predicted wrong on purpose
        for t, k in enumerate(row):
            logits[b, t, k] = 10.0
    batch = {"tags": tags}
    sums = {k: float(v) for k, v in task.metric_sums(logits, batch).items()}
    metrics = task.finalize(sums)
    assert sums["tokens"] == 4 and metrics["token_accuracy"] == 1.0 and metrics["slot_f1"] == 1.0
    assert task.loss(logits, batch) < 1e-3
    logits[1, 1:] = 0.0   # changing logits at padded positions changes nothing
    assert task.loss(logits, batch) < 1e-3


def _ids(tags: list[str], names: list[str]) -> list[int]:
    return [names.index(t) for t in tags]


HAND_MADE = [
    # gold, predicted, (correct, predicted chunks, gold chunks)
    (["B-a", "I-a", "O", "B-b"], ["B-a", "I-a", "O", "B-b"], (2, 2, 2)),
    (["B-a", "I-a", "O", "B-b"], ["B-a", "O", "O", "B-b"], (1, 2, 2)),       # a cut short
    (["B-a", "I-a", "I-a"], ["B-a", "I-a", "B-a"], (0, 2, 1)),               # split in two
    (["O", "I-a", "I-a"], ["O", "B-a", "I-a"], (1, 1, 1)),                   # I after O starts a chunk
    (["B-a", "I-b"], ["B-a", "B-b"], (2, 2, 2)),                             # type change starts a chunk
    (["B-a", "I-a"], ["B-b", "I-b"], (0, 1, 1)),                             # wrong type
    (["O", "O"], ["B-a", "O"], (0, 1, 0)),
]


@pytest.mark.parametrize("gold, pred, expected", HAND_MADE)
def test_span_f1_counts_whole_chunks_conlleval_style(gold, pred, expected):
    names = bio_tag_names(["a", "b"])
    assert names == ["O", "B-a", "I-a", "B-b", "I-b"]
    g, p = torch.tensor([_ids(gold, names)]), torch.tensor([_ids(pred, names)])
    counts = span_counts(p, g, torch.ones_like(g, dtype=torch.bool))
    got = (counts["correct_spans"].item(), counts["pred_spans"].item(), counts["gold_spans"].item())
    assert got == expected
    ref = chunks(gold), chunks(pred)
    assert (len(ref[0] & ref[1]), len(ref[1]), len(ref[0])) == expected


def test_span_counts_match_the_reference_on_random_padded_batches():
    names = bio_tag_names(["a", "b", "c"])
    rng = random.Random(0)
    gold, pred, lengths = [], [], []
    for _ in range(200):
        n = rng.randint(1, 9)
        lengths.append(n)
        gold.append([rng.choice(names) for _ in range(n)])
        pred.append([rng.choice(names) if rng.random() < 0.4 else t for t in gold[-1]])
    g, _ = pad([_ids(s, names) for s in gold], pad_value=IGNORE)
    p, length = pad([_ids(s, names) for s in pred], pad_value=3)   # junk in the padding
    counts = span_counts(p, g, length_mask(length, g.shape[1]))
    correct = sum(len(chunks(a) & chunks(b)) for a, b in zip(gold, pred))
    assert counts["correct_spans"].item() == correct
    assert counts["gold_spans"].item() == sum(len(chunks(a)) for a in gold)
    assert counts["pred_spans"].item() == sum(len(chunks(b)) for b in pred)


def test_autoencoder_token_accuracy_masks_padding():
    task = Seq2SeqAutoencoder()
    tokens, lengths = pad([[2, 3, 4], [5]])
    logits = torch.nn.functional.one_hot(tokens, 6).float() * 10
    logits[1, 1:] = 0.0   # padding positions: anything
    sums = {k: float(v) for k, v in task.metric_sums(logits, {"tokens": tokens, "lengths": lengths}).items()}
    metrics = task.finalize(sums)
    assert sums["tokens"] == 4 and metrics["token_accuracy"] == 1.0 and metrics["sequence_accuracy"] == 1.0


def test_export_inputs_trace_batch_and_length_at_least_two_and_check_others():
    tokens, lengths = pad([[2, 3, 4], [5], [6, 7]])
    split = SequenceSplit(("tokens",), tokens=tokens, lengths=lengths, y=torch.zeros(3, dtype=torch.long))
    examples = SequenceClassification().export_inputs(split)
    shapes = [tuple(x.shape) for x, _ in examples]
    assert shapes[0][0] >= 2 and shapes[0][1] >= 2
    assert len({s[0] for s in shapes}) == 3 and len({s[1] for s in shapes}) == 3
    assert all(int(l.max()) == x.shape[1] and int(l.min()) >= 1 for x, l in examples)


META = {"onnx_vocabulary": Vocabulary(["<pad>", "<unk>", "good", "film"]).to_metadata(), "onnx_max_length": 5}


def test_raw_text_becomes_tokens_and_lengths():
    feed = SequenceClassification().raw_inputs({"text": ["good film", "good"]}, META)
    assert feed["tokens"].tolist() == [[2, 3], [2, 0]] and feed["lengths"].tolist() == [2, 1]
    assert feed["tokens"].dtype == np.int64
    assert SequenceClassification().raw_inputs({"tokens": [[2, 3]]}, META) is None   # arrays pass through


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("  !!  "[:2], "empty"), ("qwerty zzz", "only unknown"),
    ("good " * 6, "at most 5"),
])
def test_raw_text_bad_input_is_a_clear_error(text, message):
    with pytest.raises(ZooError, match=message):
        SequenceClassification().raw_inputs(text, META)


def test_raw_text_without_a_vocabulary_is_refused():
    with pytest.raises(ZooError, match="no raw text"):
        SequenceClassification().raw_inputs("good film", {})
