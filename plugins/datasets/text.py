"""Text datasets shared by the sequence families (RNN, transformer): SST-2 and ATIS.

Both are found with :func:`zoo.core.train.data.locate` under a data root (``--data-dir``,
``$ZOO_DATA_DIR``, the cache where ``zoo data fetch`` puts them) and go through the core's text
pipeline (:mod:`zoo.plugins.sequence.pipeline`): tokenise, build the vocabulary on the training split only,
pad with lengths.

SST-2 is read in either of two layouts, whichever sits in the earlier root:

* GLUE's published archive unpacked, ``sst2/SST-2/{train,dev}.tsv`` (what ``zoo data fetch sst2``
  leaves): zoo holds out a seeded ``dev_fraction`` of GLUE's train file as the validation split,
  and GLUE's dev set (872 labelled sentences; GLUE's test labels are not public) is the test split;
* a local copy already split, ``sst2/{train,dev,test}.tsv``, read as it is.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from zoo.core.train.data import DataInfo, Dataset, data_roots, locate
from zoo.core.contract.errors import DataNotFound, ZooError
from zoo.plugins.sequence.pipeline import IGNORE, SequenceSplit, Vocabulary, bio_tag_names, bio_types, pad, tokenize


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_freq: int = Field(2, ge=1, description="Tokens seen fewer times in train become <unk>.")
    max_vocab: int | None = Field(None, ge=3, description="Keep at most this many tokens (incl. pad, unk).")
    max_length: int = Field(128, ge=1, le=100_000, description="Cut sequences to this many tokens.")


class SST2Options(TextOptions):
    """``[data.options]`` of sst2: the text options plus the seeded split of GLUE's train file."""

    dev_fraction: float = Field(0.1, gt=0.0, lt=0.5, description="Share of GLUE's train.tsv held out "
                                "(seeded) as the validation split; unused with a local copy that has dev.tsv.")
    split_seed: int = Field(0, ge=0, description="Seed of that hold-out, fixed apart from train.seed so "
                            "every run validates on the same sentences.")


#: SST-2's layouts under a data root, first preferred when two sit in the same root.
SST2_GLUE = ("sst2/SST-2/train.tsv", "sst2/SST-2/dev.tsv")
SST2_LOCAL = ("sst2/train.tsv", "sst2/dev.tsv", "sst2/test.tsv")
ATIS_FILES = tuple(f"atis/{s}/{f}" for s in ("train", "dev", "test") for f in ("seq.in", "seq.out", "label"))


def locate_layout(dataset: str, layouts: list[tuple[str, ...]], configured: str | None) -> tuple[Path, tuple[str, ...]]:
    """The root and layout of ``dataset`` found first in the search order (:func:`locate` per
    layout, the earliest root wins). Nothing found: the :class:`DataNotFound` of the first
    layout, the one ``zoo data fetch`` provides."""
    order = {root: i for i, root in enumerate(data_roots(configured))}
    found, first_error = [], None
    for layout in layouts:
        try:
            found.append((locate(dataset, list(layout), configured), layout))
        except DataNotFound as err:
            first_error = first_error or err
    if not found:
        raise first_error
    return min(found, key=lambda item: order.get(item[0], len(order)))

def read_sst2(path: Path) -> tuple[list[str], list[int]]:
    """GLUE SST-2 TSV: a header ``sentence<TAB>label``, one sentence per row, label 0 or 1.

    A missing column, a short row or a label other than 0/1 raises :class:`ZooError` naming the
    file, the line and the column.
    """
    sentences, labels = [], []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if reader.fieldnames is None or not {"sentence", "label"} <= set(reader.fieldnames):
                raise ZooError(f"{path}: line 1: expected columns sentence, label; got {reader.fieldnames}")
            for row in reader:
                label = row["label"]
                if label not in ("0", "1"):
                    raise ZooError(f"{path}: line {reader.line_num}, column label: expected 0 or 1, got "
                                   f"{'nothing' if label is None else repr(label)}")
                sentences.append((row["sentence"] or "").strip())
                labels.append(int(label))
    except UnicodeDecodeError as err:
        raise ZooError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not labels:
        raise ZooError(f"{path}: no sentences (only a header, or an empty file)")
    return sentences, labels


def _info(vocab: Vocabulary, o: TextOptions, **kw) -> dict:
    return {"vocab_size": len(vocab), "pad_id": 0, "max_length": o.max_length,
            "onnx_vocabulary": vocab.to_metadata(), "onnx_max_length": o.max_length, **kw}


def load_sst2(options: SST2Options | None, configured_dir: str | None) -> Dataset:
    """Stanford Sentiment Treebank, binary (Socher et al. 2013, as in GLUE): train, validation
    and test splits of sentences (and GLUE's training phrases) with labels negative/positive."""
    o = options or SST2Options()
    root, layout = locate_layout("sst2", [SST2_GLUE, SST2_LOCAL], configured_dir)
    if layout == SST2_GLUE:
        train, test = read_sst2(root / layout[0]), read_sst2(root / layout[1])
        generator = torch.Generator().manual_seed(o.split_seed)
        order = torch.randperm(len(train[1]), generator=generator).tolist()
        n_dev = max(1, round(len(order) * o.dev_fraction))
        pick = lambda rows: ([train[0][i] for i in rows], [train[1][i] for i in rows])  # noqa: E731
        splits = {"train": pick(sorted(order[n_dev:])), "dev": pick(sorted(order[:n_dev])), "test": test}
    else:
        splits = {name: read_sst2(root / path) for name, path in zip(("train", "dev", "test"), layout)}
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
    folder = locate("atis", list(ATIS_FILES), configured_dir) / "atis"

    def lines(path: Path) -> list[str]:
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise ZooError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None

    def read(name):
        words = [line.split() for line in lines(folder / name / "seq.in")]
        tags = [line.split() for line in lines(folder / name / "seq.out")]
        intents = [line.strip() for line in lines(folder / name / "label")]
        if not (len(words) == len(tags) == len(intents)):
            raise ZooError(f"{folder / name}: {len(words)} lines in seq.in, {len(tags)} in seq.out, "
                           f"{len(intents)} in label; each needs one line per utterance")
        for i, (w, t, intent) in enumerate(zip(words, tags, intents)):
            if len(w) != len(t) or not w:
                raise ZooError(f"{folder / name / 'seq.out'}: line {i + 1}: {len(t)} tags for the {len(w)} "
                               f"words of seq.in line {i + 1}")
            if not intent:
                raise ZooError(f"{folder / name / 'label'}: line {i + 1}: empty intent")
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
