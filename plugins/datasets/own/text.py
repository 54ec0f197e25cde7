"""``text`` and ``tagged-text``: the user's own sentences → the sequence classifiers and taggers.

``text``
    A CSV/TSV file with a header, or JSONL (one object per line), with a text field and a label
    field → ``sequence-classification`` (RNNs, transformer classifiers). Words are tokenised and
    counted as for SST-2 (:mod:`zoo.plugins.sequence.pipeline`): the vocabulary comes from the training split
    only; sequences are cut to ``max_length`` tokens.
``tagged-text``
    CoNLL style: one ``token<TAB>tag`` line per token, a blank line between sentences
    (``-DOCSTART-`` lines are skipped; with more than two columns the first is the token and the
    last the tag) → ``sequence-tagging`` with span F1, as ATIS. Tags are BIO: ``O``,
    ``B-TYPE``, ``I-TYPE``.

Both keep the vocabulary (and classes or tags) in ``DataInfo.extra["raw_inputs"]``, so
``zoo predict RUN --input FILE`` takes raw sentences (``.txt`` one per line, CSV/JSONL with the
text field, JSON strings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.train.data import DataInfo, Dataset
from zoo.plugins.sequence.pipeline import IGNORE, UNK_ID, SequenceSplit, Vocabulary, bio_tag_names, bio_types, pad
from zoo.plugins.datasets.own.common import (
    OwnDataError,
    check_classes,
    check_file,
    fail,
    not_utf8,
    records,
    sorted_labels,
    split_codes,
    split_order,
)


class _SequenceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, description="The file to train on.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share held out for validation.")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share held out for testing.")
    seed: int = Field(0, ge=0, description="Seed of the split (independent of train.seed).")
    min_freq: int = Field(1, ge=1, description="Tokens seen fewer times in train become <unk>.")
    max_vocab: int | None = Field(None, ge=3, description="Keep at most this many tokens (incl. pad, unk).")
    max_length: int = Field(128, ge=1, le=100_000, description="Cut sequences to this many tokens.")
    lowercase: bool = Field(True, description="Lower-case text before looking tokens up.")


class OwnTextOptions(_SequenceOptions):
    """``data.options`` of ``text``."""

    text_field: str = Field("text", min_length=1, description="Column (or JSON field) of the text.")
    label_field: str = Field("label", min_length=1, description="Column (or JSON field) of the label.")
    classes: list[str] | None = Field(None, min_length=2, description="The labels, in this order; "
                                      "another label is an error. Default: the labels sorted (by "
                                      "value where all are numbers).")
    split_column: str | None = Field(None, description="Column naming each row's split (train, val, test).")


class TaggedTextOptions(_SequenceOptions):
    """``data.options`` of ``tagged-text``."""

    val_path: str | None = Field(None, description="A CoNLL file for validation (else val_fraction).")
    test_path: str | None = Field(None, description="A CoNLL file for testing (else test_fraction).")


def _extra(vocab: Vocabulary, o: _SequenceOptions, raw: dict, **kw) -> dict:
    return {"vocab_size": len(vocab), "pad_id": 0, "max_length": o.max_length,
            "onnx_vocabulary": vocab.to_metadata(), "onnx_max_length": o.max_length,
            "raw_inputs": {**raw, "vocabulary": vocab.to_metadata(), "max_length": o.max_length}, **kw}


# -- text ---------------------------------------------------------------------------------------

def load_text(options: OwnTextOptions, data_dir: str | None = None) -> Dataset:
    """Labelled sentences → ``SequenceSplit(tokens, lengths, y)`` splits and their DataInfo."""
    o = options
    p = check_file(o.path)
    fields = [o.text_field, o.label_field] + ([o.split_column] if o.split_column else [])
    texts, labels, lines, splits, first = [], [], [], [], {}
    for line, rec in records(p, fields):
        text, label = rec[o.text_field].strip(), rec[o.label_field].strip()
        if not text:
            raise fail(p, line, o.text_field, "empty text")
        if not label:
            raise fail(p, line, o.label_field, "empty label")
        if o.classes is not None and label not in o.classes:
            raise fail(p, line, o.label_field, f"unknown label {label!r} (data.options.classes: "
                       f"{', '.join(o.classes)})")
        first.setdefault(label, line)
        texts.append(text), labels.append(label), lines.append(line)
        if o.split_column:
            splits.append(rec[o.split_column])
    if not texts:
        raise fail(p, message="no data rows")
    codes = split_codes(splits, lines, p, o.split_column) if o.split_column else None
    order, n_train, n_val = split_order(len(texts), codes, o.val_fraction, o.test_fraction, o.seed, p)
    classes = o.classes or sorted_labels(first)
    y = torch.tensor([classes.index(labels[i]) for i in order], dtype=torch.long)
    check_classes(p, o.label_field, y[:n_train].numpy(), classes, first)
    vocab = Vocabulary.build([], lowercase=o.lowercase)  # the tokenizer, before the counts
    tokens = [vocab.tokenize(texts[i]) for i in order]
    for k, i in enumerate(order):
        if not tokens[k]:
            raise fail(p, lines[i], o.text_field, "no tokens in this text")
    vocab = Vocabulary.build(tokens[:n_train], o.min_freq, o.max_vocab, lowercase=o.lowercase)
    ids, lengths = pad([vocab.encode(t)[:o.max_length] for t in tokens])

    def split(s: slice) -> SequenceSplit:
        return SequenceSplit(("tokens",), tokens=ids[s], lengths=lengths[s], y=y[s])

    raw = {"kind": "text", "text_field": o.text_field, "classes": classes}
    info = DataInfo(input_shape=(o.max_length,), num_classes=len(classes), class_names=classes,
                    extra=_extra(vocab, o, raw))
    val = split(slice(n_train, n_train + n_val)) if n_val else None
    return Dataset(train=split(slice(0, n_train)), val=val, test=split(slice(n_train + n_val, None)), info=info)


def decode_text(meta: dict[str, Any], path_or_payload: Any) -> dict[str, np.ndarray]:
    """Raw sentences → ``{"tokens": int64 [N, T], "lengths": int64 [N]}``.

    :param path_or_payload: a ``.txt`` file (one sentence per line), a CSV/TSV/JSONL file with
        the training text field, a ``.json`` file, or the payload itself: a string, a list of
        strings, ``{"text": ...}`` or objects holding the text field.
    """
    vocab = Vocabulary.from_metadata(meta["vocabulary"])
    items = _sentences(meta, path_or_payload)
    encoded = []
    for where_, text in items:
        tokens = vocab.tokenize(text)
        if not tokens:
            raise OwnDataError(f"{where_}: empty text (no tokens)")
        ids = vocab.encode(tokens)
        if all(i == UNK_ID for i in ids):
            raise OwnDataError(f"{where_}: only unknown tokens ({' '.join(tokens[:8])!r}): nothing the model knows")
        encoded.append(ids[:int(meta["max_length"])])  # cut as in training
    tokens, lengths = pad(encoded)
    return {"tokens": tokens.numpy(), "lengths": lengths.numpy()}


def _sentences(meta: dict, data: Any) -> list[tuple[str, str]]:
    """``(where, sentence)`` pairs from a file or a payload."""
    field = meta.get("text_field", "text")
    # A Path is a file (zoo predict: one without a suffix too); a str is a file when it has a suffix.
    if isinstance(data, Path) or (isinstance(data, str) and Path(data).suffix):
        p = check_file(data, option=None)
        suffix = p.suffix.lower()
        if suffix in (".txt", ""):
            try:
                lines = p.read_text(encoding="utf-8-sig").splitlines()  # (a BOM is no token)
            except UnicodeDecodeError as err:
                raise not_utf8(p, err) from None
            return [(f"{p} line {i + 1}", s) for i, s in enumerate(lines) if s.strip()]
        if suffix == ".json":
            from zoo.core.deploy.runtime import read_json

            return [(f"{p} {w}", s) for w, s in _payload_sentences(read_json(p), field)]
        return [(f"{p} line {line}", rec[field]) for line, rec in records(p, [field])]
    return [(f"input {w}", s) for w, s in _payload_sentences(data, field)]


def _payload_sentences(data: Any, field: str) -> list[tuple[str, str]]:
    if isinstance(data, dict) and set(data) == {"text"}:
        data = data["text"]
    if isinstance(data, (str, dict)):
        data = [data]
    out = []
    if isinstance(data, list) and data:
        for i, item in enumerate(data):
            if isinstance(item, dict):
                item = item.get(field)
            if not isinstance(item, str):
                break
            out.append((f"row {i + 1}", item))
        else:
            return out
    raise OwnDataError(f"input: expected text: a string, a list of strings or objects with a "
                       f"{field!r} field, got {json.dumps(data)[:60]}")


# -- tagged-text --------------------------------------------------------------------------------

def read_conll(path: str | Path, tagged: bool = True) -> tuple[list[list[str]], list[list[str]], list[int]]:
    """``(sentences, tags, first lines)`` of a CoNLL file (token TAB tag, blank line between
    sentences). Errors name the file, the line and the column (1 token, 2 tag).

    :param tagged: False for input to tag (``zoo predict``): a line may hold the token alone, and
        the tags, if any, are not read (``tags`` is then empty)
    """
    p = check_file(path)
    sentences, tags, starts = [], [], []
    words: list[str] = []
    labels: list[str] = []
    width = None
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise not_utf8(p, err) from None
    for number, line in enumerate([*lines, ""], start=1):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append(words), tags.append(labels), starts.append(number - len(words))
                words, labels = [], []
            continue
        fields = line.split("\t")
        if not tagged:
            words.append(_token(p, number, fields[0]))
            continue
        if len(fields) < 2:
            raise fail(p, number, 2, "no tag (expected token<TAB>tag)")
        if width is not None and len(fields) != width:
            raise fail(p, number, len(fields), f"{len(fields)} columns, earlier lines have {width} (ragged)")
        width = len(fields)
        token, tag = _token(p, number, fields[0]), fields[-1].strip()
        if not tag:
            raise fail(p, number, width, "empty tag")
        if tag != "O" and not (len(tag) > 2 and tag[:2] in ("B-", "I-")):
            raise fail(p, number, width, f"tag {tag!r} is not BIO (O, B-TYPE or I-TYPE)")
        words.append(token), labels.append(tag)
    if not sentences:
        raise fail(p, message="no sentences")
    return sentences, tags, starts


def _token(p: Path, number: int, text: str) -> str:
    """The token of a CoNLL line: not empty, and one word (the model reads sentences split at
    whitespace: a token holding a space would be two words under one tag)."""
    token = text.strip()
    if not token:
        raise fail(p, number, 1, "empty token")
    if len(token.split()) > 1:
        raise fail(p, number, 1, f"{token[:40]!r} holds a space: one token a line (CoNLL), e.g. 'new' B-city, 'york' I-city")
    return token


def load_tagged_text(options: TaggedTextOptions, data_dir: str | None = None) -> Dataset:
    """CoNLL sentences → ``SequenceSplit(tokens, tags, lengths)`` splits and their DataInfo."""
    o = options
    parts = [read_conll(o.path)]
    given: list = [read_conll(x) if x else None for x in (o.val_path, o.test_path)]
    words, tags, _ = parts[0]
    n = len(words)
    n_test = 0 if given[1] else max(1, int(round(n * o.test_fraction)))
    n_val = 0 if given[0] else int(round(n * o.val_fraction))
    if n - n_test - n_val < 1:
        raise OwnDataError(f"{o.path}: {n} sentences leave none for training (lower the fractions)")
    order = np.random.default_rng(o.seed).permutation(n)  # test, then val, then train
    pick = lambda idx: ([words[i] for i in idx], [tags[i] for i in idx])  # noqa: E731
    splits = [pick(order[n_test + n_val:]), given[0][:2] if given[0] else pick(order[n_test:n_test + n_val]),
              given[1][:2] if given[1] else pick(order[:n_test])]
    starts = parts[0][2]
    _check_tag_types(splits, [_sources(o.val_path, given[0], o.path, starts, order[n_test:n_test + n_val]),
                              _sources(o.test_path, given[1], o.path, starts, order[:n_test])])
    names = bio_tag_names(bio_types(t for _, ts in splits for seq in ts for t in seq))
    tag_id = {n: i for i, n in enumerate(names)}
    vocab = Vocabulary.build([[w.lower() if o.lowercase else w for w in s] for s in splits[0][0]],
                             o.min_freq, o.max_vocab, lowercase=o.lowercase, tokenizer="whitespace")

    def split(part) -> SequenceSplit | None:
        ws, ts = part
        if not ws:
            return None
        tokens, lengths = pad([vocab.encode(vocab.tokenize(" ".join(w)))[:o.max_length] for w in ws])
        tag_ids, _ = pad([[tag_id[t] for t in seq][:o.max_length] for seq in ts],
                         pad_value=IGNORE, length=tokens.shape[1])
        return SequenceSplit(("tokens", "tags"), tokens=tokens, lengths=lengths, tags=tag_ids)

    raw = {"kind": "tagged-text", "tag_names": names}
    info = DataInfo(input_shape=(o.max_length,), num_classes=len(names), class_names=names,
                    extra=_extra(vocab, o, raw, onnx_tag_names=names, sequence_head="per_token"))
    train, val, test = (split(s) for s in splits)
    return Dataset(train=train, val=val, test=test, info=info)


def _sources(own_path, own, train_path, starts, rows) -> list[tuple[str, int]]:
    """(file, first line) of each sentence of a held-out split: from its own file (``own``, what
    :func:`read_conll` read from ``own_path``), else the training file's ``rows``."""
    if own:
        return [(own_path, start) for start in own[2]]
    return [(train_path, starts[i]) for i in rows]


def _check_tag_types(splits, held: list[list[tuple[str, int]]]) -> None:
    """Every tag type of the val and test sentences has a training sample (else the model has
    outputs it never trained); ``held``: (file, first line) of each val and test sentence."""
    trained = bio_types(t for seq in splits[0][1] for t in seq)
    for (_, tags), sources in zip(splits[1:], held):
        for seq, (path, start) in zip(tags, sources):
            for k, tag in enumerate(seq):
                if tag != "O" and tag[2:] not in trained:
                    line = Path(path).read_text(encoding="utf-8-sig").splitlines()[start + k - 1]
                    raise fail(path, start + k, line.count("\t") + 1, f"tag type {tag[2:]!r} has no sample in the "
                               f"training split (add training sentences with it, or drop these)")


def decode_tagged(meta: dict[str, Any], path_or_payload: Any) -> dict[str, np.ndarray]:
    """Raw sentences → token ids, one id per whitespace-separated token (so the predicted tags
    line up with the words): ``.txt`` one sentence per line, a CoNLL file (tags ignored), JSON
    strings or lists of tokens."""
    vocab = Vocabulary.from_metadata(meta["vocabulary"])
    limit = int(meta["max_length"])
    if isinstance(path_or_payload, (str, Path)) and Path(path_or_payload).suffix.lower() in (".conll", ".tsv"):
        words, _, starts = read_conll(path_or_payload, tagged=False)
        items = [(f"{path_or_payload} line {s}", " ".join(w)) for w, s in zip(words, starts)]
    else:
        data = path_or_payload
        if isinstance(data, list) and data and all(isinstance(s, list) for s in data):
            data = [" ".join(map(str, s)) for s in data]
        items = _sentences({"text_field": "text"}, data)
    encoded = []
    for where_, text in items:
        ids = vocab.encode(vocab.tokenize(text))
        if not ids:
            raise OwnDataError(f"{where_}: empty sentence")
        if len(ids) > limit:
            raise OwnDataError(f"{where_}: {len(ids)} tokens; this model takes at most {limit}")
        encoded.append(ids)
    tokens, lengths = pad(encoded)
    return {"tokens": tokens.numpy(), "lengths": lengths.numpy()}
