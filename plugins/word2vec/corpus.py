"""Corpus pipeline: streaming reader, vocabulary, and the two training views of a corpus.

1. :func:`iter_documents` streams a plain-text file (one document per line) and tokenises it
   line by line, so the text itself never sits in memory; a non-UTF-8 byte is an error naming
   the line and byte offset.
2. :func:`build_vocab` counts words in a first pass; ``min_count`` and ``max_vocab`` cut the
   vocabulary, which is sorted by decreasing frequency (id 0 is the most frequent word, so "the
   30,000 most frequent words" are ids ``< 30000``).
3. :func:`encode` streams the file a second time into two int32 arrays: the ids of in-vocabulary
   tokens (out-of-vocabulary tokens are dropped, as in word2vec) and the document of each token.
   Memory is 8 bytes per kept token.
4. Two views, both :class:`zoo.core.train.data.Split` subclasses whose batches are generated on the
   device:

   * :class:`WindowSplit` (skip-gram, CBOW): items are corpus positions. A batch of positions gets
     its context ids ``[B, 2w]`` and a validity mask built on the fly with a *dynamic window*
     (``b ~ U{1..w}`` per centre, as in word2vec) that never crosses a document boundary, and
     *frequent-word subsampling*: a token of relative frequency ``f`` is kept with probability
     ``min(1, sqrt(t/f) + t/f)`` (word2vec's formula; Mikolov et al. 2013b use ``1 - sqrt(t/f)`` as
     the discard probability).
   * :class:`CooccurrenceSplit` (GloVe): items are the non-zero entries ``(i, j, X_ij)`` of the
     symmetric co-occurrence matrix, each pair at distance ``d ≤ w`` adding ``1/d``.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from zoo.core.train.data import DataInfo, Dataset, Split, locate
from zoo.core.contract.errors import DataUnavailable, ZooError

# The windows are gathered by a numba kernel where it is installed (found without importing it).
_NUMBA = importlib.util.find_spec("numba") is not None
_SIMPLE = re.compile(r"[^\W\d_]+", re.UNICODE)


class CorpusOptions(BaseModel):
    """``[data.options]`` of every word2vec dataset."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="Text file to read (one document per line); "
                             "overrides the dataset's standard file.")
    tokenizer: Literal["whitespace", "simple"] = Field(
        "whitespace", description="whitespace: split on spaces (the text is already tokenised); "
        "simple: lower-case and keep runs of letters (for raw text such as lee).")
    min_count: int = Field(5, ge=1, description="Drop words seen fewer times than this.")
    max_vocab: int | None = Field(None, ge=1, description="Keep at most this many most frequent words.")
    max_tokens: int | None = Field(None, ge=1, description="Read at most this many tokens (quick runs).")
    window: int = Field(5, ge=1, le=50, description="Maximum distance between centre and context word.")
    dynamic_window: bool = Field(True, description="Draw the window size uniformly from 1..window per "
                                 "centre word (word2vec); false: always the full window.")
    sample: float = Field(1e-3, ge=0.0, le=1.0, description="Subsampling threshold t for frequent "
                          "words (0 disables).")
    pairs: Literal["windows", "cooccurrence"] = Field(
        "windows", description="windows: items are corpus positions (skip-gram, CBOW); "
        "cooccurrence: items are non-zero co-occurrence counts (GloVe).")
    test_fraction: float = Field(0.01, ge=0.0, lt=0.5, description="Share of items held out as the "
                                 "test split (their loss is the test metric).")
    seed: int = Field(0, ge=0, description="Seed of the held-out split.")


# -- reading ---------------------------------------------------------------------------------


def tokenize(line: str, tokenizer: str) -> list[str]:
    if tokenizer == "simple":
        return _SIMPLE.findall(line.lower())
    return line.split()


#: Longest piece of a line read at once (bytes). A longer line (text8 is one 100 MB line) is cut
#: at a space into documents of about this size: windows do not cross the cut, as word2vec and
#: gensim cut text8 into 1,000- and 10,000-word sentences; memory stays bounded.
MAX_LINE_BYTES = 1 << 20


def _pieces(fh, limit: int) -> Iterator[tuple[bytes, bool]]:
    """``(piece, ends_line)`` of a binary file: whole lines, long lines cut after a space."""
    carry = b""
    while True:
        chunk = fh.readline(limit)
        if not chunk:
            if carry:
                yield carry, True
            return
        raw, carry = carry + chunk, b""
        if chunk.endswith(b"\n") or len(chunk) < limit:  # the line ends here (or the file does)
            yield raw, True
            continue
        cut = max(raw.rfind(b" "), raw.rfind(b"\t"))
        if cut < 0:  # no space in `limit` bytes: read on (a single token that long is rare)
            carry = raw
            continue
        yield raw[:cut + 1], False
        carry = raw[cut + 1:]


def iter_documents(path: str | Path, tokenizer: str = "whitespace",
                   max_tokens: int | None = None) -> Iterator[list[str]]:
    """Yield the token list of each non-empty line, streaming; stop after ``max_tokens`` tokens.

    A line longer than :data:`MAX_LINE_BYTES` is yielded in several documents (cut at spaces).
    """
    path = Path(path)
    seen = 0
    offset = 0
    number = 1
    with path.open("rb") as fh:
        for raw, ends_line in _pieces(fh, MAX_LINE_BYTES):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ZooError(f"{path}: line {number} is not valid UTF-8 (byte 0x{raw[err.start]:02x} at "
                               f"file offset {offset + err.start}); convert the file to UTF-8, e.g. "
                               f"`iconv -f latin1 -t utf-8`") from None
            offset += len(raw)
            number += ends_line
            tokens = tokenize(line, tokenizer)
            if not tokens:
                continue
            if max_tokens is not None and seen + len(tokens) > max_tokens:
                tokens = tokens[:max_tokens - seen]
            seen += len(tokens)
            yield tokens
            if max_tokens is not None and seen >= max_tokens:
                return


@dataclass
class Vocab:
    """Words sorted by decreasing count (ties by first appearance); ``index[word] = id``."""

    words: list[str]
    counts: np.ndarray          # int64 [V]
    total_tokens: int           # tokens read, before min_count

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)


def build_vocab(documents, min_count: int = 5, max_vocab: int | None = None, source: str = "corpus") -> Vocab:
    """Count words (first pass) and keep those seen ≥ ``min_count`` times, at most ``max_vocab``."""
    counter: Counter[str] = Counter()
    total = 0
    for tokens in documents:
        counter.update(tokens)
        total += len(tokens)
    if total == 0:
        raise ZooError(f"{source} is empty: no tokens found (one document per line, tokens separated by spaces)")
    # Counter.most_common sorts by count, stably (first appearance breaks ties).
    kept = [(w, c) for w, c in counter.most_common() if c >= min_count]
    if max_vocab is not None:
        kept = kept[:max_vocab]
    if not kept:
        top = counter.most_common(1)[0]
        raise ZooError(f"data.options.min_count = {min_count} leaves an empty vocabulary for {source} "
                       f"({len(counter)} distinct words, the most frequent, {top[0]!r}, occurs {top[1]} "
                       f"time(s)); lower min_count")
    words = [w for w, _ in kept]
    return Vocab(words, np.array([c for _, c in kept], dtype=np.int64), total)


def encode(documents, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Second pass: (ids int32 [N], document index int32 [N]) of in-vocabulary tokens."""
    ids_chunks, doc_chunks = [], []
    index = vocab.index
    for doc_number, tokens in enumerate(documents):
        ids = np.fromiter((index[t] for t in tokens if t in index), dtype=np.int32)
        if ids.size:
            ids_chunks.append(ids)
            doc_chunks.append(np.full(ids.size, doc_number, dtype=np.int32))
    if not ids_chunks:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate(ids_chunks), np.concatenate(doc_chunks)


def keep_probabilities(counts: np.ndarray, sample: float) -> torch.Tensor:
    """P(keep) of each word under subsampling: min(1, sqrt(t/f) + t/f), f = count / total."""
    if sample <= 0:
        return torch.ones(len(counts))
    f = torch.as_tensor(counts, dtype=torch.float64) / float(counts.sum())
    ratio = sample / f
    return (ratio.sqrt() + ratio).clamp(max=1.0).float()


# -- splits ----------------------------------------------------------------------------------


class WindowSplit(Split):
    """Corpus positions; a batch is centre ids ``[B]``, context ids ``[B, O]`` and a mask ``[B, O]``
    (O = 2w).

    Shapes are fixed (the mask marks the valid context slots), so no batch needs a host sync.

    ``stochastic`` (training) draws the dynamic window and the subsampling with torch RNGs on the
    split's device; evaluation splits use the full window and keep every token, so their loss is
    comparable between epochs.

    * :meth:`batches` (an epoch of training): word2vec's order of things. Subsampling is drawn
      once per epoch over the whole corpus and the dropped tokens are removed before windowing
      (so a window reaches past them, as in word2vec and gensim); the epoch's centres are the
      kept training positions in the trainer's order, cut into exactly ⌈len(order) / batch_size⌉
      batches of (nearly) equal size (the order's batches, so a distributed rank, which gets its
      shard and the per-rank batch size, takes the trainer's steps per epoch). One host sync per epoch (the number of kept tokens). The dynamic
      window b ~ U{1..w} is drawn per centre, as in word2vec, and masks the ``[B, 2w]`` context
      (on average w − 1 of its 2w slots are empty; the CPU kernel skips them). One b per
      batch (``[B, 2b]``, no empty slot) would cost quality with word2vec's sequential update,
      since every centre of a batch would see the same window (docs/results.md, word2vec).
    * :meth:`batch` (any index: preflight, export inputs, evaluation): windows over the full
      corpus; with ``stochastic`` the subsampling masks the dropped centre and context slots.
    """

    def __init__(self, ids: torch.Tensor, docs: torch.Tensor, positions: torch.Tensor,
                 keep: torch.Tensor, window: int, dynamic_window: bool = True,
                 stochastic: bool = True) -> None:
        self.ids, self.docs, self.positions, self.keep = ids, docs, positions, keep
        self.window, self.dynamic_window, self.stochastic = window, dynamic_window, stochastic
        self.offsets = torch.cat([torch.arange(-window, 0), torch.arange(1, window + 1)]).to(ids.device)
        self._reach_offsets = self.offsets.abs().to(torch.int8)  # compared with the int8 window draws
        self._padded: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.positions.shape[0]

    def padded_corpus(self) -> torch.Tensor:
        """The corpus with ``window`` slots of −1 before, between and after its documents
        (``docs`` numbers them in order, as :func:`encode` does), int32 ``[M]``, built once (4
        bytes per token): token ``i`` sits at slot :meth:`slots` ``(i)``. A window is then one
        gather, and its slots outside the centre's document are −1s (word2vec's windows stop at
        a sentence's ends): no document or bounds test per slot.
        """
        if self._padded is None:
            n = self.ids.shape[0]
            size = n + self.window * ((int(self.docs[-1]) - int(self.docs[0]) if n else 0) + 2)
            padded = torch.full((size,), -1, dtype=torch.int32, device=self.ids.device)
            padded[self.slots(torch.arange(n, device=self.ids.device))] = self.ids.to(torch.int32)
            self._padded = padded
        return self._padded

    def slots(self, positions: torch.Tensor) -> torch.Tensor:
        """Where corpus positions sit in :meth:`padded_corpus`: shifted by ``window`` per document
        begun (document numbers with gaps only widen the padding)."""
        first = self.docs[0].long() if self.docs.shape[0] else 0
        return positions + self.window * (self.docs[positions].long() - first + 1)

    def _windows(self, ids: torch.Tensor, docs: torch.Tensor, pos: torch.Tensor, offsets: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centres ``ids[pos]`` [B], contexts at ``pos + offsets`` [B, O] and the mask of the slots
        inside the corpus and the centre's document."""
        n = ids.shape[0]
        around = pos.unsqueeze(1) + offsets                         # (B, O)
        inside = (around >= 0) & (around < n)
        around = around.clamp(0, max(n - 1, 0))
        mask = inside & (docs[around] == docs[pos].unsqueeze(1))
        return ids[pos].long(), ids[around].long(), mask

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        pos = self.positions[index]                                 # (B,)
        centre, context, mask = self._windows(self.ids, self.docs, pos, self.offsets)
        if self.stochastic and self.dynamic_window:
            reach = torch.randint(1, self.window + 1, (pos.shape[0], 1), device=pos.device)
            mask &= self.offsets.abs() <= reach
        if self.stochastic and self.keep is not None:
            kept_centre = torch.rand(pos.shape[0], device=pos.device) < self.keep[centre]
            kept_context = torch.rand(context.shape, device=pos.device) < self.keep[context]
            mask &= kept_centre.unsqueeze(1) & kept_context
        return {"centre": centre, "context": context, "mask": mask}

    def batches(self, batch_size: int, order: torch.Tensor | None = None, start: int = 0):
        if not self.stochastic or order is None:
            yield from super().batches(batch_size, order, start)
            return
        ids, positions = self.ids, self.positions[order]
        # Batches of this order, not of the split: a distributed rank's order is its shard and
        # batch_size the per-rank batch, so the trainer's steps per epoch hold on every rank.
        steps = -(-order.shape[0] // batch_size)
        # The epoch's draws are seeded by the trainer's order, so a resumed epoch (same order,
        # later start) sees the same subsampled corpus and windows.
        seed = hash(tuple(order[:8].tolist())) & 0x7FFF_FFFF_FFFF
        generator = torch.Generator(device=ids.device).manual_seed(seed)
        padded = self.padded_corpus()
        positions = self.slots(positions)
        if self.keep is not None:
            words = padded.long().clamp_(min=0)
            kept = torch.rand(padded.shape[0], generator=generator, device=ids.device) < self.keep[words]
            kept |= padded < 0  # the padding is always kept: it stays `window` wide
            compact = kept.cumsum(0) - 1                            # old slot → new slot
            padded = padded[kept]                                   # one host sync per epoch
            positions = compact[positions[kept[positions]]]
        n, w = positions.shape[0], self.window
        # word2vec's dynamic window: b ~ U{1..w} for each centre
        reach = (torch.randint(1, w + 1, (n, 1), generator=generator, device=ids.device, dtype=torch.int8)
                 if self.dynamic_window else None)
        # Exactly `steps` batches, so the lr schedule's steps per epoch hold (torch.tensor_split's
        # sizes); a batch may be empty only when fewer tokens than batches survive the subsampling.
        bounds = [step * (n // steps) + min(step, n % steps) for step in range(steps + 1)]
        # The windows of many batches are gathered at once (~64k positions): a handful of tensor
        # ops per group instead of per batch, and a batch is a view of the group's rows.
        group = max(1, 65536 // max(batch_size, 1))
        for first in range(start, steps, group):
            last = min(first + group, steps)
            pos = positions[bounds[first]:bounds[last]]
            group_reach = None if reach is None else reach[bounds[first]:bounds[last]]
            centre, context, mask = self._gather(padded, pos, group_reach)
            for step in range(first, last):
                rows = slice(bounds[step] - bounds[first], bounds[step + 1] - bounds[first])
                yield {"centre": centre[rows], "context": context[rows], "mask": mask[rows]}

    def _gather(self, padded: torch.Tensor, pos: torch.Tensor, reach: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centres (int64 ``[G]``), contexts (int32 ``[G, 2w]``: the models and kernels take them,
        half the bytes of int64) and the mask of a group of slots of the padded corpus; on the
        CPU with numba, in one compiled pass (:func:`kernels.gather_windows`, the same values)."""
        if pos.device.type == "cpu" and _NUMBA:
            from zoo.plugins.word2vec.kernels import gather_windows

            centre = torch.empty(pos.shape[0], dtype=torch.int64)
            context = torch.empty((pos.shape[0], self.offsets.shape[0]), dtype=torch.int32)
            mask = torch.empty(context.shape, dtype=torch.bool)
            no_reach = np.zeros((0, 1), np.int8)
            gather_windows(padded.numpy(), pos.numpy(), self.offsets.numpy(),
                           no_reach if reach is None else reach.numpy(), centre.numpy(), context.numpy(),
                           mask.numpy())
            return centre, context, mask
        context = padded[pos.unsqueeze(1) + self.offsets]         # (G·B, 2w)
        mask = context >= 0
        if reach is not None:
            mask &= self._reach_offsets <= reach
        context.clamp_(min=0)  # padding slots read word 0 with mask False: every id is a row
        return padded[pos].long(), context, mask

    def _with(self, positions: torch.Tensor, stochastic: bool | None = None) -> WindowSplit:
        return WindowSplit(self.ids, self.docs, positions, self.keep, self.window, self.dynamic_window,
                           self.stochastic if stochastic is None else stochastic)

    def to(self, device) -> WindowSplit:
        return WindowSplit(self.ids.to(device), self.docs.to(device), self.positions.to(device),
                           None if self.keep is None else self.keep.to(device), self.window,
                           self.dynamic_window, self.stochastic)

    def subset(self, index: torch.Tensor) -> WindowSplit:
        # Keeps the parent's mode: `data.limit` subsets of train stay stochastic, and so does a
        # validation split carved out of train (val_fraction > 0): its loss is then noisier than
        # the deterministic test split's (the defaults use val_fraction = 0).
        return self._with(self.positions[index.to(self.positions.device)])

    @property
    def device(self) -> torch.device:
        return self.ids.device

    def __repr__(self) -> str:
        return f"WindowSplit({len(self)} positions of {self.ids.shape[0]} tokens, window {self.window})"


class CooccurrenceSplit(Split):
    """Non-zero co-occurrence entries: ``row [B]``, ``col [B]`` (int64) and ``count [B]`` (float)."""

    def __init__(self, row: torch.Tensor, col: torch.Tensor, count: torch.Tensor) -> None:
        self.row, self.col, self.count = row, col, count

    def __len__(self) -> int:
        return self.row.shape[0]

    def batch(self, index):
        return {"row": self.row[index], "col": self.col[index], "count": self.count[index]}

    def to(self, device) -> CooccurrenceSplit:
        return CooccurrenceSplit(self.row.to(device), self.col.to(device), self.count.to(device))

    def subset(self, index) -> CooccurrenceSplit:
        index = index.to(self.row.device)
        return CooccurrenceSplit(self.row[index], self.col[index], self.count[index])

    @property
    def device(self):
        return self.row.device


def cooccurrence(ids: torch.Tensor, docs: torch.Tensor, vocab_size: int, window: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric X_ij = Σ over pairs at distance d ≤ window in one document of 1/d (GloVe's weighting)."""
    ids, docs = ids.long(), docs.long()
    keys, weights = [], []
    for d in range(1, window + 1):
        same = docs[d:] == docs[:-d]
        a, b = ids[:-d][same], ids[d:][same]
        for i, j in ((a, b), (b, a)):
            keys.append(i * vocab_size + j)
            weights.append(torch.full((i.shape[0],), 1.0 / d))
    key = torch.cat(keys)
    weight = torch.cat(weights)
    unique, inverse = torch.unique(key, return_inverse=True)
    counts = torch.zeros(unique.shape[0], dtype=torch.float64).index_add_(0, inverse, weight.double())
    return unique // vocab_size, unique % vocab_size, counts.float()


# -- loaders ---------------------------------------------------------------------------------

def find_text_file(dataset: str, relative: str | None, options: CorpusOptions, configured_dir: str | None) -> Path:
    """The corpus file: ``options.path`` if given, else ``relative`` (e.g. ``text/text8``) under the
    first data root that holds it (:func:`zoo.core.train.data.locate`: ``--data-dir``, ``$ZOO_DATA_DIR``,
    the cache), raising :class:`~zoo.core.contract.errors.DataNotFound` for ``dataset`` when none does."""
    if options.path is not None:
        path = Path(options.path).expanduser()
        if not path.is_file():
            raise DataUnavailable(f"data.options.path {str(path)!r} does not exist or is not a file")
        return path
    if relative is None:
        raise ZooError("dataset 'text-file' needs a file: --set data.options.path=PATH/TO/corpus.txt")
    return locate(dataset, [relative], configured_dir) / relative


def load_corpus(path: Path, options: CorpusOptions) -> Dataset:
    """Read ``path`` (two streaming passes) and build the dataset view ``options.pairs`` asks for."""
    docs = lambda: iter_documents(path, options.tokenizer, options.max_tokens)  # noqa: E731
    vocab = build_vocab(docs(), options.min_count, options.max_vocab, source=str(path))
    ids_np, docs_np = encode(docs(), vocab)
    n = ids_np.shape[0]
    if n <= options.window:
        raise ZooError(f"{path}: the corpus has {n} in-vocabulary token(s), not more than the window "
                       f"({options.window}); use a bigger corpus or a smaller data.options.window")
    ids, doc = torch.from_numpy(ids_np), torch.from_numpy(docs_np)
    generator = torch.Generator().manual_seed(options.seed)
    if options.pairs == "windows":
        keep = keep_probabilities(vocab.counts, options.sample) if options.sample > 0 else None
        perm = torch.randperm(n, generator=generator)
        n_test = max(1, int(n * options.test_fraction)) if options.test_fraction > 0 else min(n, 64)
        test_pos = perm[:n_test].sort().values
        train_pos = perm[n_test:].sort().values if options.test_fraction > 0 else torch.arange(n)
        train = WindowSplit(ids, doc, train_pos, keep, options.window, options.dynamic_window, stochastic=True)
        test = WindowSplit(ids, doc, test_pos, keep, options.window, options.dynamic_window, stochastic=False)
    else:
        row, col, count = cooccurrence(ids, doc, len(vocab), options.window)
        m = row.shape[0]
        perm = torch.randperm(m, generator=generator)
        n_test = max(1, int(m * options.test_fraction)) if options.test_fraction > 0 else min(m, 64)
        full = CooccurrenceSplit(row, col, count)
        test = full.subset(perm[:n_test])
        train = full.subset(perm[n_test:]) if options.test_fraction > 0 else full
    info = DataInfo(input_shape=(), extra={
        "vocab": vocab.words,
        "counts": vocab.counts,
        "tokens": n,
        "corpus_tokens": vocab.total_tokens,
        "corpus": str(path),
        "pairs": options.pairs,
        "window": options.window,
        "onnx_vocab": vocab.words,
    })
    return Dataset(train=train, test=test, info=info)


def _loader(dataset: str, relative: str | None, tokenizer: str | None = None):
    def load(options: CorpusOptions | None, data_dir: str | None) -> Dataset:
        options = options or CorpusOptions()
        if tokenizer is not None and "tokenizer" not in options.model_fields_set:
            options = options.model_copy(update={"tokenizer": tokenizer})
        return load_corpus(find_text_file(dataset, relative, options, data_dir), options)

    load.__doc__ = f"Load {relative or 'any text file (data.options.path)'} as a word2vec corpus."
    return load


load_wiki_sample = _loader("wiki-sample", "text/wiki-sample.txt")
load_lee = _loader("lee", "text/lee_background.cor", tokenizer="simple")
load_text8 = _loader("text8", "text/text8")
load_text_file = _loader("text-file", None)
