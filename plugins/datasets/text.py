"""Text datasets shared by the sequence families (RNN, transformer): SST-2 and ATIS.

Both read the canonical files from a local folder (``data.data_dir``, ``$ZOO_DATA_DIR`` or
``../shared/data/<name>``) and go through the core's text pipeline (:mod:`zoo.core.sequence`):
tokenise, build the vocabulary on the training split only, pad with lengths.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.data import DataInfo, Dataset, data_dir
from zoo.core.errors import DataUnavailable, ZooError
from zoo.core.sequence import IGNORE, SequenceSplit, Vocabulary, bio_tag_names, bio_types, pad, tokenize


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_freq: int = Field(2, ge=1, description="Tokens seen fewer times in train become <unk>.")
    max_vocab: int | None = Field(None, ge=3, description="Keep at most this many tokens (incl. pad, unk).")
    max_length: int = Field(128, ge=1, le=100_000, description="Cut sequences to this many tokens.")


def _folder(configured: str | None, name: str, files: list[str]) -> Path:
    folder = data_dir(configured, name, Path("..") / "shared" / "data" / name)
    if folder is None or not all((folder / f).is_file() for f in files):
        where = folder or f"data.data_dir, $ZOO_DATA_DIR, ../shared/data/{name}"
        raise DataUnavailable(f"{name}: files {files} not found (looked in {where}); pass --data-dir DIR")
    return folder


def read_sst2(path: Path) -> tuple[list[str], list[int]]:
    """GLUE SST-2 TSV: a header ``sentence<TAB>label``, one sentence per row."""
    sentences, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames is None or not {"sentence", "label"} <= set(reader.fieldnames):
            raise ZooError(f"{path}: expected columns sentence, label; got {reader.fieldnames}")
        for row in reader:
            sentences.append(row["sentence"].strip())
            labels.append(int(row["label"]))
    return sentences, labels


def _info(vocab: Vocabulary, o: TextOptions, **kw) -> dict:
    return {"vocab_size": len(vocab), "pad_id": 0, "max_length": o.max_length,
            "onnx_vocabulary": vocab.to_metadata(), "onnx_max_length": o.max_length, **kw}


def load_sst2(options: TextOptions | None, configured_dir: str | None) -> Dataset:
    """Stanford Sentiment Treebank, binary: train.tsv (phrases and sentences), dev.tsv as
    validation, test.tsv (GLUE dev, 872 sentences) as test."""
    o = options or TextOptions()
    folder = _folder(configured_dir, "sst2", ["train.tsv", "dev.tsv", "test.tsv"])
    splits = {name: read_sst2(folder / f"{name}.tsv") for name in ("train", "dev", "test")}
    tokenized = {k: ([tokenize(s) for s in sents], labels) for k, (sents, labels) in splits.items()}
    vocab = Vocabulary.build(tokenized["train"][0], o.min_freq, o.max_vocab)

    def split(name):
        toks, labels = tokenized[name]
        ids = [vocab.encode(t)[:o.max_length] or [1] for t in toks]
        tokens, lengths = pad(ids)
        return SequenceSplit(("tokens",), tokens=tokens, lengths=lengths,
                             y=torch.tensor(labels, dtype=torch.long))

    info = DataInfo(input_shape=(o.max_length,), num_classes=2, class_names=["negative", "positive"],
                    extra=_info(vocab, o))
    return Dataset(train=split("train"), val=split("dev"), test=split("test"), info=info)


def load_atis(options: TextOptions | None, configured_dir: str | None) -> Dataset:
    """ATIS slot filling: ``seq.in`` words, ``seq.out`` BIO slot tags (one per word); ``label``
    (the intent) is read too and kept as ``intent``. Tags use the canonical BIO layout."""
    o = options or TextOptions()
    files = [f"{s}/{f}" for s in ("train", "dev", "test") for f in ("seq.in", "seq.out", "label")]
    folder = _folder(configured_dir, "atis", files)

    def read(name):
        words = [line.split() for line in (folder / name / "seq.in").read_text(encoding="utf-8").splitlines()]
        tags = [line.split() for line in (folder / name / "seq.out").read_text(encoding="utf-8").splitlines()]
        intents = (folder / name / "label").read_text(encoding="utf-8").split()
        if not (len(words) == len(tags) == len(intents)):
            raise ZooError(f"atis/{name}: {len(words)} sentences, {len(tags)} tag lines, {len(intents)} intents")
        for i, (w, t) in enumerate(zip(words, tags)):
            if len(w) != len(t):
                raise ZooError(f"atis/{name} line {i + 1}: {len(w)} words but {len(t)} tags")
        return [[x.lower() for x in w] for w in words], tags, intents

    raw = {name: read(name) for name in ("train", "dev", "test")}
    # The tag set is the union over splits: a slot type only in test still gets a name (it is
    # never predicted, and counts as a miss).
    names = bio_tag_names(bio_types(t for _, tags, _ in raw.values() for seq in tags for t in seq))
    tag_id = {n: i for i, n in enumerate(names)}
    intents = sorted({i for _, _, ints in raw.values() for i in ints})
    vocab = Vocabulary.build(raw["train"][0], o.min_freq, o.max_vocab, tokenizer="whitespace")

    def split(name):
        words, tags, ints = raw[name]
        tokens, lengths = pad([vocab.encode(w)[:o.max_length] for w in words])
        tag_ids, _ = pad([[tag_id.get(t, 0) for t in seq][:o.max_length] for seq in tags],
                         pad_value=IGNORE, length=tokens.shape[1])
        intent = torch.tensor([intents.index(i) for i in ints], dtype=torch.long)
        return SequenceSplit(("tokens", "tags"), tokens=tokens, lengths=lengths, tags=tag_ids, intent=intent)

    info = DataInfo(input_shape=(o.max_length,), num_classes=len(names), class_names=names,
                    extra=_info(vocab, o, onnx_tag_names=names, intent_names=intents,
                                          sequence_head="per_token"))
    return Dataset(train=split("train"), val=split("dev"), test=split("test"), info=info)
