"""Generated sequence datasets of the RNN family (made on the fly, seeded).

``adding-problem`` (Hochreiter & Schmidhuber 1997): each step holds a value ~ U(0, 1) and a marker;
exactly two steps are marked, one in each half; the target is the sum of the two marked values.
Predicting the mean (1.0) gives MSE = Var = 2/12 ≈ 0.167, so a model must carry information across
up to T steps to do better.

``copy-sequences``: random token sequences for the sequence autoencoder (reconstruct the input
from the encoder's final state).
"""

from __future__ import annotations

import torch
from pydantic import Field
from zoo.core.train.data import DataInfo, Dataset
from zoo.core.train.options import DataOptions, n_field, n_test_field, seed_field
from zoo.plugins.sequence.pipeline import SequenceSplit, Vocabulary


class AddingOptions(DataOptions):
    T: int = Field(100, ge=2, le=100_000, description="Sequence length.")
    n: int = n_field(20_000, 10_000_000, "sequences")
    n_test: int = n_test_field(2_000, 1_000_000, "sequences")
    seed: int = seed_field()


def adding_problem(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [n, T, 2]`` (value, marker) and ``y [n]`` = sum of the two marked values."""
    values = torch.rand(n, T, generator=generator)
    half = T // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, T, (n,), generator=generator)
    marker = torch.zeros(n, T)
    rows = torch.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return torch.stack([values, marker], dim=-1), y


def load_adding_problem(options: AddingOptions | None, data_dir) -> Dataset:
    o = options or AddingOptions()
    generator = torch.Generator().manual_seed(o.seed)

    def split(n):
        x, y = adding_problem(n, o.T, generator)
        return SequenceSplit(("x",), x=x, lengths=torch.full((n,), o.T, dtype=torch.long), y=y)

    train, test = split(o.n), split(o.n_test)
    info = DataInfo(input_shape=(o.T, 2), output_dim=1, extra={"input_features": 2, "T": o.T, "sequence_head": "pooled"})
    return Dataset(train=train, test=test, info=info)


class CopyOptions(DataOptions):
    vocab: int = Field(10, ge=2, le=10_000, description="Distinct symbols (ids 2 … vocab + 1).")
    min_length: int = Field(3, ge=1, description="Shortest sequence.")
    max_length: int = Field(8, ge=1, le=10_000, description="Longest sequence.")
    n: int = n_field(10_000, 10_000_000, "sequences")
    n_test: int = n_test_field(1_000, 1_000_000, "sequences")
    seed: int = Field(0, ge=0, description="Seed of the generator.")


def load_copy_sequences(options: CopyOptions | None, data_dir) -> Dataset:
    o = options or CopyOptions()
    if o.min_length > o.max_length:
        from zoo.core.contract.errors import ZooError

        raise ZooError(f"copy-sequences: min_length {o.min_length} > max_length {o.max_length}")
    generator = torch.Generator().manual_seed(o.seed)
    vocab = Vocabulary(["<pad>", "<unk>", *[f"s{i}" for i in range(o.vocab)]], tokenizer="whitespace")

    def split(n):
        lengths = torch.randint(o.min_length, o.max_length + 1, (n,), generator=generator)
        tokens = torch.randint(2, o.vocab + 2, (n, o.max_length), generator=generator)
        tokens = tokens.masked_fill(torch.arange(o.max_length)[None] >= lengths[:, None], 0)
        return SequenceSplit(("tokens",), tokens=tokens, lengths=lengths)

    train, test = split(o.n), split(o.n_test)
    info = DataInfo(input_shape=(o.max_length,), extra={
        "vocab_size": len(vocab), "pad_id": 0, "sequence_head": "autoencoder",
        "onnx_vocabulary": vocab.to_metadata()})
    return Dataset(train=train, test=test, info=info)
