"""``pairs``: the user's own source → target sequences → ``transformer-seq2seq``, ``rnn-seq2seq``.

``task = "translation"`` scores corpus BLEU (sacrebleu) besides exact match and keeps the
checkpoint with the best BLEU: for text pairs, where one exact reference is a harsh judge.

Files: TSV (``source<TAB>target`` per line, no header; a first line equal to the two field
names is skipped), CSV with a header, or JSONL objects; the fields are ``source_field`` and
``target_field``. Tokens are whitespace-separated words (``tokenizer = "whitespace"``) or single
characters (``"characters"``, spaces dropped). One vocabulary serves source and target:
``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3, then the training tokens by frequency.

The vocabulary and the longest source are kept in ``DataInfo.extra["raw_inputs"]`` (kind
``pairs``): ``zoo predict RUN --input sources.txt`` decodes one source per line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.train.data import DataInfo, Dataset
from zoo.plugins.sequence.pipeline import PAD, UNK, UNK_ID, PairSplit, Vocabulary, pad
from zoo.plugins.datasets.own.common import (
    OwnDataError,
    check_file,
    fail,
    is_jsonl,
    not_utf8,
    records,
    split_order,
)

BOS, EOS = "<bos>", "<eos>"
BOS_ID, EOS_ID = 2, 3


class PairsOptions(BaseModel):
    """``data.options`` of ``pairs``."""

    model_config = ConfigDict(extra="forbid")
    #: the tasks this dataset serves; ``task`` chooses one (DataInfo.extra["task"])
    tasks: ClassVar[tuple[str, ...]] = ("seq2seq", "translation")
    path: str = Field(min_length=1, description="TSV (source TAB target), CSV with a header, or JSONL.")
    task: Literal["seq2seq", "translation"] = Field("seq2seq", description="seq2seq (exact match) or "
                                                    "translation (also corpus BLEU, the main metric; needs sacrebleu).")
    source_field: str = Field("source", min_length=1, description="Column (or JSON field) of the source.")
    target_field: str = Field("target", min_length=1, description="Column (or JSON field) of the target.")
    tokenizer: Literal["whitespace", "characters"] = Field("whitespace", description="Tokens: words "
                                                          "between spaces, or single characters.")
    lowercase: bool = Field(False, description="Lower-case sources and targets.")
    min_freq: int = Field(1, ge=1, description="Tokens seen fewer times in train become <unk>.")
    max_length: int = Field(256, ge=1, le=4096, description="Longest source or target (tokens) accepted.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share held out for validation.")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="Share held out for testing.")
    seed: int = Field(0, ge=0, description="Seed of the split (independent of train.seed).")


def tokens_of(text: str, tokenizer: str, lowercase: bool) -> list[str]:
    if lowercase:
        text = text.lower()
    return [c for c in text if not c.isspace()] if tokenizer == "characters" else text.split()


def read_pairs(o: PairsOptions) -> tuple[list[list[str]], list[list[str]], list[int]]:
    """``(sources, targets, lines)`` tokenised; empty or over-long sides are one-line errors."""
    p = check_file(o.path)
    fields = [o.source_field, o.target_field]
    rows = records(p, fields) if is_jsonl(p) or p.suffix.lower() == ".csv" else _tsv(p, fields)
    sources, targets, lines = [], [], []
    for line, rec in rows:
        for name, out in ((o.source_field, sources), (o.target_field, targets)):
            tokens = tokens_of(rec[name], o.tokenizer, o.lowercase)
            if not tokens:
                raise fail(p, line, name, "empty sequence")
            if len(tokens) > o.max_length:
                raise fail(p, line, name, f"{len(tokens)} tokens, more than data.options.max_length = {o.max_length}")
            out.append(tokens)
        lines.append(line)
    if not sources:
        raise fail(p, message="no pairs")
    return sources, targets, lines


def _tsv(p: Path, fields: list[str]):
    try:
        text = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise not_utf8(p, err) from None
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise fail(p, number, None, f"{len(parts)} tab-separated fields; expected source<TAB>target")
        if number == 1 and [x.strip() for x in parts] == fields:
            continue  # a header
        yield number, dict(zip(fields, parts))


def load_pairs(options: PairsOptions, data_dir: str | None = None) -> Dataset:
    """Source/target pairs → ``PairSplit`` splits with the DataInfo the seq2seq model reads."""
    o = options
    sources, targets, _ = read_pairs(o)
    order, n_train, n_val = split_order(len(sources), None, o.val_fraction, o.test_fraction, o.seed, o.path)
    train_rows = order[:n_train]
    built = Vocabulary.build([sources[i] for i in train_rows] + [targets[i] for i in train_rows],
                             o.min_freq, lowercase=o.lowercase, tokenizer=o.tokenizer)
    vocab = Vocabulary([PAD, UNK, BOS, EOS, *built.tokens[2:]], o.lowercase, o.tokenizer)

    def split(rows) -> PairSplit:
        tokens, lengths = pad([vocab.encode(sources[i]) for i in rows])
        target, target_lengths = pad([vocab.encode(targets[i]) + [EOS_ID] for i in rows])
        return PairSplit(tokens=tokens, lengths=lengths, target=target, target_lengths=target_lengths)

    max_source = max(len(sources[i]) for i in train_rows)
    max_target = max(len(targets[i]) for i in range(len(targets)))
    raw = {"kind": "pairs", "vocabulary": vocab.to_metadata(), "max_length": max_source,
           "tokenizer": o.tokenizer, "lowercase": o.lowercase, "source_field": o.source_field}
    info = DataInfo(input_shape=(max_source,), extra={
        "vocab_size": len(vocab), "pad_id": 0, "bos_id": BOS_ID, "eos_id": EOS_ID,
        "max_length": max_source, "max_target_length": max_target,
        "onnx_vocabulary": vocab.to_metadata(), "onnx_max_length": max_source, "raw_inputs": raw,
        "task": o.task})
    val = split(order[n_train:n_train + n_val]) if n_val else None
    return Dataset(train=split(train_rows), val=val, test=split(order[n_train + n_val:]), info=info)


def decode_inputs(meta: dict[str, Any], path_or_payload: Any) -> dict[str, np.ndarray]:
    """Raw sources → ``{"tokens", "lengths"}``: a ``.txt``/``.tsv`` file (one source per line; a
    tab and what follows it are ignored), a JSONL file, a ``.json`` file or payload of strings."""
    from zoo.plugins.datasets.own.text import _sentences

    vocab = Vocabulary.from_metadata(meta["vocabulary"])
    field = meta.get("source_field", "source")
    data = path_or_payload
    if isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".tsv":
        p = check_file(data, option=None)
        try:
            lines = p.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as err:
            raise not_utf8(p, err) from None
        if lines and "\t" in lines[0] and lines[0].split("\t")[0].strip() == field:
            lines[0] = ""  # the header of a training file: source<TAB>target
        items = [(f"{p} line {i + 1}", s.split("\t")[0]) for i, s in enumerate(lines) if s.strip()]
    else:
        items = _sentences({"text_field": field}, data)
    encoded = []
    for where_, text in items:
        tokens = tokens_of(text.split("\t")[0], meta["tokenizer"], meta.get("lowercase", False))
        ids = vocab.encode(tokens)
        if not ids:
            raise OwnDataError(f"{where_}: empty source")
        if all(i == UNK_ID for i in ids):
            raise OwnDataError(f"{where_}: only unknown tokens: nothing the model knows")
        if len(ids) > int(meta["max_length"]):
            raise OwnDataError(f"{where_}: {len(ids)} tokens; this model was trained on at most {meta['max_length']}")
        encoded.append(ids)
    tokens, lengths = pad(encoded)
    return {"tokens": tokens.numpy(), "lengths": lengths.numpy()}
