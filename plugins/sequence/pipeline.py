"""The sequence pipeline every sequence family shares (RNNs, transformers): text → ids → padded
batches with lengths and masks, plus the sequence tasks.

Text pipeline
    ``tokenize`` (lower-case words and punctuation) → :class:`Vocabulary` (min frequency, ``<pad>``
    = 0, ``<unk>`` = 1) → :func:`pad` (``tokens [N, T]`` int64 and ``lengths [N]`` int64) →
    :func:`length_mask` (``[B, T]`` bool, True on real tokens). Padding is always at the end.

    The vocabulary travels with the run: a dataset puts ``vocabulary.to_metadata()`` into
    ``DataInfo.extra["onnx_vocabulary"]`` so it is written into the ONNX metadata, and
    :meth:`SequenceTask.raw_inputs` turns raw text into model inputs from that metadata
    (``zoo predict`` accepts ``{"text": "..."}`` or a plain ``.txt`` file).

Sequence tasks (registered by the ``sequence`` plugin, used by name by any family)
    ``sequence-classification`` many-to-one: ``(tokens, lengths) → logits [B, C]``
    ``sequence-tagging``       many-to-many: ``(tokens, lengths) → logits [B, T, C]``; padding
                               is masked out of loss and metrics; BIO tags give span F1
    ``sequence-regression``    ``(x [B, T, F] float, lengths) → prediction [B]``
    ``seq2seq-autoencoder``    ``(tokens, lengths) → logits [B, T, V]`` reconstructing tokens;
                               metric: token accuracy of the reconstruction

``DataInfo.extra`` keys a sequence dataset sets (read by model builders of any family):
    ``vocab_size`` (token inputs) or ``input_features`` (real-valued inputs), ``pad_id``,
    ``max_length`` (longest sequence a model must accept, or absent), ``onnx_vocabulary``,
    ``onnx_tag_names`` (tagging).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, ClassVar, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from zoo.core.train.data import DataInfo, Split, TensorSplit, to_device
from zoo.core.contract.errors import ZooError
from zoo.core.train.tasks import Classification, Task, _sum

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
IGNORE = -100  # target value of padded positions (F.cross_entropy's ignore_index)

_TOKEN = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def tokenize(text: str, kind: str = "words", lowercase: bool = True) -> list[str]:
    """``words``: words (apostrophes kept inside) and single punctuation marks;
    ``whitespace``: split on spaces (for corpora tokenised already, like ATIS)."""
    if lowercase:
        text = text.lower()
    return text.split() if kind == "whitespace" else _TOKEN.findall(text)


# -- vocabulary -------------------------------------------------------------------------------

class Vocabulary:
    """Token ↔ id. Id 0 is ``<pad>``, id 1 is ``<unk>``; the rest by descending frequency."""

    def __init__(self, tokens: list[str], lowercase: bool = True, tokenizer: str = "words") -> None:
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {tokens[:2]}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.lowercase = lowercase
        self.tokenizer = tokenizer

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.tokenizer, self.lowercase)

    @classmethod
    def build(cls, sentences: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None,
              lowercase: bool = True, tokenizer: str = "words") -> Vocabulary:
        """From tokenised training sentences; tokens seen fewer than ``min_freq`` times map to unk."""
        counts = Counter(t for s in sentences for t in s)
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max(0, max_size - 2)]
        return cls([PAD, UNK, *kept], lowercase, tokenizer)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] if 0 <= i < len(self.tokens) else UNK for i in ids]

    def to_metadata(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "lowercase": self.lowercase, "tokenizer": self.tokenizer}

    @classmethod
    def from_metadata(cls, data: dict[str, Any]) -> Vocabulary:
        return cls(list(data["tokens"]), bool(data.get("lowercase", True)), data.get("tokenizer", "words"))


# -- padding and masks ------------------------------------------------------------------------

def pad(sequences: list[list[int]], pad_value: int = PAD_ID,
        length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(padded [N, T] int64, lengths [N] int64)``; T = ``length`` or the longest sequence."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = length if length is not None else int(lengths.max()) if len(sequences) else 0
    out = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    for i, seq in enumerate(sequences):
        n = min(len(seq), width)
        if n:
            out[i, :n] = torch.as_tensor(seq[:n], dtype=torch.long)
    return out, lengths.clamp(max=width)


def length_mask(lengths: torch.Tensor, length: int | torch.SymInt) -> torch.Tensor:
    """``[B, T]`` bool, True at positions ``t < lengths[b]`` (real tokens)."""
    return torch.arange(length, device=lengths.device)[None, :] < lengths[:, None]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x [B, T, ...]`` within its length, padding left in place.

    Used for the backward direction of bidirectional models so it starts at the last real token,
    not at the padding. Its own inverse; exports as a Gather with dynamic T.
    """
    t = torch.arange(x.shape[1], device=x.device)[None, :]       # (1, T)
    index = lengths[:, None] - 1 - t                              # (B, T)
    index = torch.where(index >= 0, index, t)                     # padding stays in place
    rows = torch.arange(x.shape[0], device=x.device)[:, None]     # (B, 1)
    return x[rows, index]                                         # (B, T, ...)


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x [B, T, H] → [B, H]``, the entry at position ``lengths - 1`` of each sequence."""
    rows = torch.arange(x.shape[0], device=x.device)
    return x[rows, (lengths - 1).clamp(min=0)]


class SequenceSplit(TensorSplit):
    """A TensorSplit of padded sequences whose batches are cut to their longest sequence.

    ``time_keys`` are the tensors with a time axis (tokens, per-token targets); ``lengths`` says
    where each sequence ends. Cutting keeps a batch of short sentences from paying for the
    longest sentence in the split.
    """

    def __init__(self, time_keys: tuple[str, ...] = ("tokens",), **tensors: torch.Tensor) -> None:
        super().__init__(**tensors)
        if "lengths" not in tensors:
            raise ValueError("SequenceSplit needs a 'lengths' tensor")
        self.time_keys = time_keys

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().batch(index)
        # One host sync per batch; cheap next to a recurrent forward pass.
        width = max(int(out["lengths"].max()), 1) if index.numel() else 1
        for key in self.time_keys:
            out[key] = out[key][:, :width]
        return out

    def to(self, device) -> SequenceSplit:
        return SequenceSplit(self.time_keys, **{k: t.to(device) for k, t in self.tensors.items()})

    def subset(self, index: torch.Tensor) -> SequenceSplit:
        index = index.to(self.device)
        return SequenceSplit(self.time_keys, **{k: t.index_select(0, index) for k, t in self.tensors.items()})


class PairSplit(TensorSplit):
    """Source ``tokens``/``lengths`` and ``target``/``target_lengths`` (sequence-to-sequence data);
    a batch is cut to its longest source and its longest target (one host sync per batch, as in
    :class:`SequenceSplit`)."""

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().batch(index)
        if index.numel():
            source, target = torch.stack([out["lengths"].max(), out["target_lengths"].max()]).tolist()
            out["tokens"] = out["tokens"][:, :max(source, 1)]
            out["target"] = out["target"][:, :max(target, 1)]
        return out

    def to(self, device) -> PairSplit:
        return type(self)(**{k: to_device(t, device) for k, t in self.tensors.items()})

    def subset(self, index: torch.Tensor) -> PairSplit:
        index = index.to(self.device)
        return type(self)(**{k: t.index_select(0, index) for k, t in self.tensors.items()})


# -- BIO tags and span F1 ---------------------------------------------------------------------

def bio_tag_names(types: Iterable[str]) -> list[str]:
    """The canonical tag layout ``O, B-t0, I-t0, B-t1, I-t1, ...`` (sorted types).

    With this layout a tag id alone says its prefix and type (id 0 = O; B = odd; type =
    (id − 1) // 2), so span F1 is computed on the device without the tag names.
    """
    names = ["O"]
    for t in sorted(set(types)):
        names += [f"B-{t}", f"I-{t}"]
    return names


def bio_types(tags: Iterable[str]) -> set[str]:
    return {t[2:] for t in tags if t != "O" and len(t) > 2 and t[1] == "-"}


def chunks(tags: list[str]) -> set[tuple[int, int, str]]:
    """conlleval's chunks ``(start, end inclusive, type)`` of a BIO tag sequence (reference code).

    A chunk starts at a B, or at an I whose predecessor is O or of another type; it ends before
    an O, a B or a change of type.
    """
    out, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, typ = (tag[0], tag[2:]) if tag != "O" else ("O", None)
        ends = start is not None and (prefix in ("O", "B") or typ != kind)
        if ends:
            out.add((start, i - 1, kind))
            start = kind = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = i, typ
    return out


def span_counts(pred: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """conlleval span counts (``gold``, ``pred``, ``correct``) for tag ids in the canonical layout.

    ``pred``, ``gold``: ``[B, T]`` tag ids; ``mask`` ``[B, T]`` True on real tokens. A chunk is
    correct when the predicted chunk has the same start, end and type, i.e. every position of the
    gold chunk has the same (start, end, type) signature in the prediction.
    """
    pred = torch.where(mask, pred, 0)
    gold = torch.where(mask, gold.clamp(min=0), 0)

    def signature(tags):
        inside = tags > 0
        kind = torch.where(inside, (tags - 1) // 2, -1)
        is_b = inside & (tags % 2 == 1)
        prev_kind = F.pad(kind, (1, 0), value=-1)[:, :-1]
        start = is_b | (inside & (prev_kind != kind))
        next_start = F.pad(start, (0, 1), value=False)[:, 1:]
        next_inside = F.pad(inside, (0, 1), value=False)[:, 1:]
        end = inside & (next_start | ~next_inside)
        return inside, kind, start, end

    g_in, g_kind, g_start, g_end = signature(gold)
    p_in, p_kind, p_start, p_end = signature(pred)
    same = (p_in == g_in) & (p_kind == g_kind) & (p_start == g_start) & (p_end == g_end)
    # Chunk ids along the flattened batch: a new id at every gold start.
    chunk_id = torch.cumsum(g_start.reshape(-1).long(), 0) - 1
    bad = (g_in & ~same).reshape(-1).long()
    n_gold = g_start.sum()
    wrong = torch.zeros(int(g_start.numel()) + 1, dtype=torch.long, device=pred.device)
    wrong.index_add_(0, torch.where(g_in.reshape(-1), chunk_id, wrong.shape[0] - 1), bad)
    n_wrong = (wrong[:-1] > 0).sum()
    return {"gold_spans": n_gold.float(), "pred_spans": p_start.sum().float(),
            "correct_spans": (n_gold - n_wrong).float()}


def span_f1(correct: float, n_pred: float, n_gold: float) -> dict[str, float]:
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"slot_precision": precision, "slot_recall": recall, "slot_f1": f1}


# -- tasks ------------------------------------------------------------------------------------

class SequenceTask(Task):
    """Shared by the sequence tasks: inputs ``(tokens, lengths)``, dynamic batch and time axes,
    export examples at several lengths, and raw-text input for ``zoo predict``."""

    input_names: ClassVar[tuple[str, ...]] = ("tokens", "lengths")
    time_outputs: ClassVar[bool] = False  # whether the outputs have a time axis

    def check_info(self, info: DataInfo) -> None:
        if not (info.extra.get("vocab_size") or info.extra.get("input_features")):
            raise ZooError(f"{self.name} needs a sequence dataset (DataInfo.extra vocab_size or "
                           "input_features)")

    def dynamic_axes(self, info):
        axes = {self.input_names[0]: {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
        for name in self.output_names:
            axes[name] = {0: "batch", 1: "time"} if self.time_outputs else {0: "batch"}
        return axes

    def export_inputs(self, split: Split, sizes=((3, 7), (2, 4), (5, 13))):
        """``(batch, length)`` pairs: the first traced (both ≥ 2), the others differ in both.

        Real samples are cut or padded to the length, so the lengths vary inside a batch too.
        """
        out = []
        n = len(split)
        for size, length in sizes:
            index = torch.arange(size, device=split.device) % max(n, 1)
            batch = split.batch(index)
            x, lengths = batch[self.input_names[0]], batch["lengths"]
            if x.shape[1] >= length:
                x = x[:, :length]
            else:
                pad_shape = (x.shape[0], length - x.shape[1], *x.shape[2:])
                x = torch.cat([x, x.new_zeros(pad_shape)], dim=1)
            lengths = lengths.clamp(min=1, max=length)
            lengths = torch.where(torch.arange(size, device=lengths.device) == 0,
                                  torch.full_like(lengths, length), lengths)  # one full row
            out.append((x.contiguous(), lengths.contiguous()))
        return out

    # -- serving ----------------------------------------------------------------------------
    def raw_inputs(self, data: Any, metadata: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """Model inputs from raw text (``"a sentence"``, a list of them, or ``{"text": ...}``).

        Returns ``None`` when ``data`` is not text (already arrays). Raises ZooError on empty
        text, text made only of unknown tokens, or text longer than the model's limit.
        """
        if isinstance(data, dict) and self.input_names[0] in data and metadata.get("onnx_vocabulary"):
            self._check_token_ids(data, metadata)
            return None  # arrays: the usual shape and dtype checks follow
        if isinstance(data, dict) and set(data) == {"text"}:
            data = data["text"]
        if isinstance(data, str):
            data = [data]
        if not (isinstance(data, list) and data and all(isinstance(s, str) for s in data)):
            return None
        vocab_data = metadata.get("onnx_vocabulary")
        if not vocab_data:
            raise ZooError("this model takes no raw text (no vocabulary in its ONNX metadata); "
                           "pass token ids as {\"tokens\": [[...]], \"lengths\": [...]}")
        vocab = Vocabulary.from_metadata(vocab_data)
        limit = metadata.get("onnx_max_length")
        tokens, lengths = pad([self.encode_text(i, text, vocab, limit) for i, text in enumerate(data)])
        return {self.input_names[0]: tokens.numpy(), "lengths": lengths.numpy()}

    def encode_text(self, i: int, text: str, vocab: Vocabulary, limit: int | None) -> list[int]:
        """Token ids of text number ``i``; ZooError when it is empty, made only of unknown tokens,
        or longer than ``limit``. Tasks with another notion of a token override this."""
        tokens = vocab.tokenize(text)
        if not tokens:
            raise ZooError(f"text {i} is empty (no tokens)")
        encoded = vocab.encode(tokens)
        if all(t == UNK_ID for t in encoded):
            raise ZooError(f"text {i} has only unknown tokens ({' '.join(tokens[:10])!r}): "
                           "nothing the model knows")
        if limit and len(encoded) > int(limit):
            raise ZooError(f"text {i} has {len(encoded)} tokens; this model takes at most {limit}")
        return encoded

    def _check_token_ids(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Token ids given as arrays: in the vocabulary, no empty sequence, within the length
        limit — the errors an embedding lookup or a position table would otherwise raise from
        inside the runtime."""
        name = self.input_names[0]
        try:
            tokens = np.asarray(data[name])
        except ValueError as err:
            raise ZooError(f"input {name!r} is not a rectangular array: {err}") from None
        if tokens.size == 0 or (tokens.ndim >= 1 and tokens.shape[-1] == 0):
            raise ZooError(f"input {name!r} is empty: every sequence needs at least one token")
        if not np.issubdtype(tokens.dtype, np.integer) or tokens.ndim == 0:
            return  # check_and_cast says "must hold integers" (or that a scalar has the wrong rank)
        size = len(metadata["onnx_vocabulary"].get("tokens", []))
        if tokens.min() < 0 or tokens.max() >= size:
            raise ZooError(f"token ids must be in [0, {size}) (the model's vocabulary); got ids from "
                           f"{int(tokens.min())} to {int(tokens.max())}")
        limit = metadata.get("onnx_max_length")
        if limit and tokens.shape[-1] > int(limit):
            raise ZooError(f"sequences of {tokens.shape[-1]} tokens; this model takes at most {limit}")
        if "lengths" in data:
            try:
                lengths = np.asarray(data["lengths"])
            except ValueError:
                return  # not rectangular: reported with the input's name when the arrays are built
            if not np.issubdtype(lengths.dtype, np.integer):
                return  # check_and_cast says "must hold integers"
            if lengths.size and (lengths.min() < 1 or lengths.max() > tokens.shape[-1]):
                raise ZooError(f"lengths must be between 1 (no empty sequence) and {tokens.shape[-1]} "
                               f"(the tokens' width); got {lengths.tolist()}")


class SequenceClassification(SequenceTask, Classification):
    """Many-to-one: one label per sequence (sentiment of a sentence). Loss and metrics as for
    ``classification``: cross-entropy and accuracy on ``logits [B, C]``."""

    name = "sequence-classification"
    output_names = ("logits",)

    def check_info(self, info):
        SequenceTask.check_info(self, info)
        Classification.check_info(self, info)


class SequenceTagging(SequenceTask):
    """Many-to-many: one label per token (``tags [B, T]``, padding = −100), ``logits [B, T, C]``.

    Padding is left out of the loss and of every metric. Metrics: loss, token accuracy and, when
    the tags follow the BIO layout of :func:`bio_tag_names`, conlleval span F1 (main metric).
    """

    name = "sequence-tagging"
    output_names = ("logits",)
    time_outputs = True
    main_metric = "slot_f1"
    higher_is_better = True
    higher_is_better_metrics = frozenset({"token_accuracy", "slot_precision", "slot_recall"})
    losses = ("cross_entropy",)

    def check_info(self, info):
        super().check_info(info)
        if not info.num_classes:
            raise ZooError("sequence-tagging needs num_classes (the number of tags)")

    def loss(self, output, batch, loss_name=None):
        tags = batch["tags"]
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), tags.reshape(-1), ignore_index=IGNORE)

    def metric_sums(self, output, batch, loss_name=None):
        tags = batch["tags"]
        mask = tags != IGNORE
        pred = output.argmax(-1)
        loss = F.cross_entropy(output.float().reshape(-1, output.shape[-1]), tags.reshape(-1),
                               ignore_index=IGNORE, reduction="sum")
        return {"tokens": _sum(mask), "loss_sum": loss.detach(), "correct": _sum((pred == tags) & mask),
                **span_counts(pred, tags, mask)}

    def finalize(self, sums, loss_name=None):
        n = max(sums["tokens"], 1.0)
        return {"loss": sums["loss_sum"] / n, "token_accuracy": sums["correct"] / n,
                **span_f1(sums["correct_spans"], sums["pred_spans"], sums["gold_spans"])}

    def postprocess(self, outputs, metadata):
        logits = outputs[self.output_names[0]]
        names = metadata.get("onnx_tag_names") or metadata.get("class_names") or []
        lengths = (metadata.get("_inputs") or {}).get("lengths")
        out = []
        for i, row in enumerate(logits.argmax(-1)):
            n = int(lengths[i]) if lengths is not None else len(row)
            out.append([names[k] if k < len(names) else int(k) for k in row[:n].tolist()])
        return out


class SequenceRegression(SequenceTask):
    """One real number per sequence (the adding problem): ``(x [B, T, F], lengths) → [B]``.
    Loss MSE; metrics MSE, MAE."""

    name = "sequence-regression"
    input_names = ("x", "lengths")
    output_names = ("prediction",)
    main_metric = "mse"
    higher_is_better = False
    losses = ("mse",)

    def loss(self, output, batch, loss_name=None):
        return F.mse_loss(output.reshape(-1), batch["y"])

    def metric_sums(self, output, batch, loss_name=None):
        err = output.reshape(-1).float() - batch["y"].float()
        return {"count": torch.tensor(float(err.numel()), device=err.device),
                "sse": _sum(err * err), "sae": _sum(err.abs())}

    def finalize(self, sums, loss_name=None):
        n = max(sums["count"], 1.0)
        return {"loss": sums["sse"] / n, "mse": sums["sse"] / n, "mae": sums["sae"] / n}


class Seq2SeqAutoencoder(SequenceTask):
    """Encoder state → decoder reconstructs the input tokens: ``logits [B, T, V]`` against
    ``tokens``, padding masked. Metrics: loss, token accuracy (main) and whole-sequence accuracy."""

    name = "seq2seq-autoencoder"
    output_names = ("logits",)
    time_outputs = True
    main_metric = "token_accuracy"
    higher_is_better = True
    higher_is_better_metrics = frozenset({"sequence_accuracy"})
    losses = ("cross_entropy",)

    @staticmethod
    def _targets(batch):
        tokens = batch["tokens"]
        return torch.where(length_mask(batch["lengths"], tokens.shape[1]), tokens, IGNORE)

    def loss(self, output, batch, loss_name=None):
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), self._targets(batch).reshape(-1),
                               ignore_index=IGNORE)

    def metric_sums(self, output, batch, loss_name=None):
        target = self._targets(batch)
        mask = target != IGNORE
        hit = (output.argmax(-1) == target) & mask
        loss = F.cross_entropy(output.float().reshape(-1, output.shape[-1]), target.reshape(-1),
                               ignore_index=IGNORE, reduction="sum")
        return {"tokens": _sum(mask), "sequences": torch.tensor(float(target.shape[0]), device=target.device),
                "loss_sum": loss.detach(), "correct": _sum(hit),
                "exact": _sum((hit | ~mask).all(dim=1))}

    def finalize(self, sums, loss_name=None):
        n = max(sums["tokens"], 1.0)
        return {"loss": sums["loss_sum"] / n, "token_accuracy": sums["correct"] / n,
                "sequence_accuracy": sums["exact"] / max(sums["sequences"], 1.0)}

    def postprocess(self, outputs, metadata):
        vocab = metadata.get("onnx_vocabulary")
        ids = outputs[self.output_names[0]].argmax(-1)
        if vocab:
            v = Vocabulary.from_metadata(vocab)
            return [" ".join(v.decode(row.tolist())) for row in ids]
        return ids.tolist()
