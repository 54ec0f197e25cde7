"""Generated sequence-to-sequence datasets (made on the fly, seeded): ``reverse``, ``sort`` and
``addition``, and the vocabulary and batches they share.

Every sample is a source sequence of symbols and a target sequence; the target is stored with
``<eos>`` appended, so a model must also learn where to stop:

=============  =====================================  ==========================
dataset        source                                 target
=============  =====================================  ==========================
``reverse``    ``3 1 4 1 5``                          ``5 1 4 1 3 <eos>``
``sort``       ``3 1 4 1 5``                          ``1 1 3 4 5 <eos>``
``addition``   ``1 2 + 3 4 5`` (12 + 345)             ``3 5 7 <eos>``
=============  =====================================  ==========================

With ``little_endian = true`` (an option of ``addition``) both operands and the sum are written
least significant digit first (``2 1 + 5 4 3`` → ``7 5 3``): the carry then flows in the
direction the decoder writes, so each output digit depends only on digits already seen.

Vocabulary (source and target share it): ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2,
``<eos>`` = 3, then the symbols. Symbols are single characters (digits, then ``a``–``z``; ``+``
for addition), so raw input may be written with or without spaces (``"3 1 4"`` or ``"314"``).

Batches (:class:`Seq2SeqSplit`) hold ``tokens [B, S]`` and ``lengths [B]`` (the source, padded
with ``<pad>`` at the end) and ``target [B, T]`` with ``target_lengths [B]`` (the target
including ``<eos>``); each batch is cut to its own longest source and target.
"""

from __future__ import annotations

import string

import torch
from pydantic import Field
from zoo.core.train.data import DataInfo, Dataset
from zoo.core.train.options import DataOptions, n_field, n_test_field, seed_field
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import PAD, UNK, PairSplit, Vocabulary, pad

BOS, EOS = "<bos>", "<eos>"
BOS_ID, EOS_ID = 2, 3
SPECIALS = (PAD, UNK, BOS, EOS)
SYMBOLS = string.digits + string.ascii_lowercase  # at most 36 single-character symbols


def seq2seq_vocabulary(symbols: str) -> Vocabulary:
    """``<pad> <unk> <bos> <eos>`` followed by ``symbols`` (one character each)."""
    return Vocabulary([*SPECIALS, *symbols], lowercase=True, tokenizer="characters")


def tokenize_characters(text: str) -> list[str]:
    """Every non-space character is a token: ``"3 1 4"`` and ``"314"`` both give 3, 1, 4."""
    return [c for c in text.lower() if not c.isspace()]


#: Source and target batches, each cut to its longest sequence (zoo.plugins.sequence.pipeline.PairSplit).
Seq2SeqSplit = PairSplit


def make_split(sources: list[list[int]], targets: list[list[int]]) -> Seq2SeqSplit:
    """Pad id lists into a split; ``<eos>`` is appended to every target here."""
    tokens, lengths = pad(sources)
    target, target_lengths = pad([t + [EOS_ID] for t in targets])
    return Seq2SeqSplit(tokens=tokens, lengths=lengths, target=target, target_lengths=target_lengths)


def make_dataset(vocab: Vocabulary, train: Seq2SeqSplit, test: Seq2SeqSplit,
                 max_source: int, max_target: int, **extra) -> Dataset:
    """The Dataset with the ``DataInfo.extra`` keys the seq2seq task and model read.

    ``max_length`` / ``onnx_max_length``: the longest source seen in training (``zoo predict``
    refuses longer input); ``max_target_length``: the longest target without ``<eos>`` (the
    decoder writes at most that many symbols plus ``<eos>``).
    """
    info = DataInfo(input_shape=(max_source,), extra={
        "vocab_size": len(vocab), "pad_id": 0, "bos_id": BOS_ID, "eos_id": EOS_ID,
        "max_length": max_source, "max_target_length": max_target,
        "onnx_vocabulary": vocab.to_metadata(), "onnx_max_length": max_source, **extra})
    return Dataset(train=train, test=test, info=info)


# -- reverse and sort -------------------------------------------------------------------------

class SymbolOptions(DataOptions):
    """Options of ``reverse`` and ``sort``: random symbol sequences of random length."""

    ordered = (("min_length", "max_length"),)
    symbols: int = Field(10, ge=2, le=len(SYMBOLS),
                         description="Distinct symbols: the digits 0-9, then letters a-z.")
    min_length: int = Field(1, ge=1, le=512, description="Shortest source sequence.")
    max_length: int = Field(10, ge=1, le=512, description="Longest source sequence.")
    n: int = n_field(10_000, 10_000_000, "sequences")
    n_test: int = n_test_field(2_000, 1_000_000, "sequences")
    seed: int = seed_field()


def _symbol_sequences(o: SymbolOptions, n: int, generator: torch.Generator) -> list[list[int]]:
    lengths = torch.randint(o.min_length, o.max_length + 1, (n,), generator=generator).tolist()
    ids = torch.randint(4, 4 + o.symbols, (n, o.max_length), generator=generator).tolist()
    return [row[:k] for row, k in zip(ids, lengths)]


def _load_symbols(o: SymbolOptions | None, transform) -> Dataset:
    o = o or SymbolOptions()
    if o.min_length > o.max_length:  # options built without validation (direct calls)
        raise ZooError(f"min_length {o.min_length} > max_length {o.max_length}")
    generator = torch.Generator().manual_seed(o.seed)
    vocab = seq2seq_vocabulary(SYMBOLS[:o.symbols])

    def split(n):
        sources = _symbol_sequences(o, n, generator)
        return make_split(sources, [transform(s) for s in sources])

    train, test = split(o.n), split(o.n_test)
    return make_dataset(vocab, train, test, o.max_length, o.max_length)


def load_reverse(options: SymbolOptions | None, data_dir) -> Dataset:
    """``x₁ … xₙ → xₙ … x₁``."""
    return _load_symbols(options, lambda s: s[::-1])


def load_sort(options: SymbolOptions | None, data_dir) -> Dataset:
    """``x₁ … xₙ →`` the same symbols in ascending order (digits before letters)."""
    return _load_symbols(options, sorted)


# -- addition ---------------------------------------------------------------------------------

class AdditionOptions(DataOptions):
    """Options of ``addition``: ``a + b → a + b`` written out digit by digit."""

    digits: int = Field(5, ge=1, le=15, description="Largest number of digits of an operand.")
    little_endian: bool = Field(False, description="Write operands and sum least significant "
                                "digit first (the carry then flows the way the decoder writes).")
    n: int = n_field(50_000, 10_000_000, "sums")
    n_test: int = n_test_field(2_000, 1_000_000, "sums")
    seed: int = seed_field()


def _operands(n: int, digits: int, generator: torch.Generator) -> list[int]:
    """Numbers whose digit count is uniform on 1..digits (then uniform among such numbers), so
    short operands are as common as long ones instead of one in 10⁴."""
    count = torch.randint(1, digits + 1, (n,), generator=generator, dtype=torch.float64)
    low = torch.where(count > 1, 10.0 ** (count - 1), torch.zeros_like(count))
    high = 10.0 ** count
    values = low + torch.floor(torch.rand(n, generator=generator, dtype=torch.float64) * (high - low))
    return [int(v) for v in values.tolist()]


def load_addition(options: AdditionOptions | None, data_dir) -> Dataset:
    o = options or AdditionOptions()
    generator = torch.Generator().manual_seed(o.seed)
    vocab = seq2seq_vocabulary(string.digits + "+")
    order = (lambda s: s[::-1]) if o.little_endian else (lambda s: s)

    def split(n):
        a, b = _operands(n, o.digits, generator), _operands(n, o.digits, generator)
        sources = [vocab.encode([*order(str(x)), "+", *order(str(y))]) for x, y in zip(a, b)]
        targets = [vocab.encode(list(order(str(x + y)))) for x, y in zip(a, b)]
        return make_split(sources, targets)

    train, test = split(o.n), split(o.n_test)
    return make_dataset(vocab, train, test, 2 * o.digits + 1, o.digits + 1,
                        onnx_little_endian=o.little_endian)
