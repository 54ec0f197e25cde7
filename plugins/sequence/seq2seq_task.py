"""The ``seq2seq`` task: source tokens → target tokens, trained with teacher forcing and scored
by greedy decoding.

Contract with the model (``(tokens, lengths[, target]) → ...``):

* ``model(tokens, lengths, target)`` in training mode returns the teacher-forced ``logits
  [B, T, V]``: position ``t`` predicts ``target[:, t]`` from the source and ``<bos> target[:, :t]``.
* the same call in eval mode returns ``(logits, generated)``, where ``generated [B, L]`` is the
  model's own greedy decode (``L`` ≥ ``T``): every metric except the loss is measured on it, so
  exact match means what it says: the model, left alone, writes the whole target and stops.
* ``model(tokens, lengths)`` returns ``generated`` only: the deployable form, exported to ONNX.

``generated`` holds the emitted symbols, then ``<eos>``, then ``<pad>`` (id 0) to length ``L``.

Loss (teacher forcing, padding ignored): ``−(1/N) Σ_{b,t: target≠pad} log p(target_{b,t} |
source_b, target_{b,<t})``. Metrics: ``loss``; ``token_accuracy`` = share of target positions
(``<eos>`` included) where the greedy decode has the target token; ``exact_match`` (main) =
share of sequences whose greedy decode equals the target exactly, ``<eos>`` and all;
``teacher_forced_accuracy`` = token accuracy of the teacher-forced argmax (how far greedy
decoding loses from its own mistakes).

The ``translation`` task (:class:`Translation`, text pairs: ``tatoeba-eng-fra``, ``pairs`` with
``data.options.task = "translation"``) adds corpus **BLEU** (Papineni et al. 2002) computed by
sacrebleu (the ``translation`` extra) and selects checkpoints on it:
``BLEU = BP · exp(¼ Σ_{n=1..4} log p_n)``, ``p_n`` = clipped n-gram matches / n-grams of the
decodes, ``BP = min(1, exp(1 − r/c))`` for reference length r and decode length c. The decode
and the reference are compared as token ids written out (``"17 4 96"``, ``tokenize="none"``):
one id is one whitespace token, so the score equals BLEU over the words, with no vocabulary
needed at evaluation. Each batch contributes sacrebleu's sufficient statistics (lengths, n-gram
matches and totals), and their sums over the split give the corpus score, not a mean of
sentence scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import IGNORE, PAD_ID, SequenceTask, Vocabulary
from zoo.core.train.tasks import _sum
from zoo.plugins.sequence.seq2seq_data import EOS_ID, SPECIALS, tokenize_characters

BLEU_ORDER = 4
_BLEU_KEYS = ("bleu_sys_len", "bleu_ref_len", *(f"bleu_correct_{n}" for n in range(1, BLEU_ORDER + 1)),
              *(f"bleu_total_{n}" for n in range(1, BLEU_ORDER + 1)))


class Seq2Seq(SequenceTask):
    """Sequence to sequence (reverse, sort, addition): see the module docstring for the maths."""

    name = "seq2seq"
    input_names = ("tokens", "lengths")
    output_names = ("generated",)
    time_outputs = False  # generated [B, L]: L is the model's fixed decode length
    main_metric = "exact_match"
    higher_is_better = True
    higher_is_better_metrics = frozenset({"token_accuracy", "teacher_forced_accuracy"})
    losses = ("cross_entropy",)

    def check_info(self, info):
        super().check_info(info)
        missing = [k for k in ("max_target_length", "bos_id", "eos_id") if k not in info.extra]
        if missing:
            raise ZooError(f"seq2seq needs a dataset with source and target sequences "
                           f"(DataInfo.extra lacks {', '.join(missing)})")

    def inputs(self, batch):
        """``(tokens, lengths, target)`` when the batch has targets (training, evaluation);
        export and serving feed ``(tokens, lengths)`` only."""
        if "target" in batch:
            return batch["tokens"], batch["lengths"], batch["target"]
        return batch["tokens"], batch["lengths"]

    @staticmethod
    def _split(output) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(output, (tuple, list)):
            return output[0], output[1]
        return output, None

    @staticmethod
    def _labels(target: torch.Tensor) -> torch.Tensor:
        return torch.where(target == PAD_ID, IGNORE, target)

    def loss(self, output, batch, loss_name=None):
        logits, _ = self._split(output)
        labels = self._labels(batch["target"])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)

    def metric_sums(self, output, batch, loss_name=None):
        logits, generated = self._split(output)
        if generated is None:
            raise ZooError("seq2seq metrics need the greedy decode: evaluate the model in eval mode "
                           "(it returns (logits, generated) when given targets)")
        target = batch["target"]
        mask = target != PAD_ID
        labels = self._labels(target)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=IGNORE, reduction="sum")
        # Compare the decode with the target padded to the decode length L (≥ T): past <eos>
        # both hold <pad>, so equality over all of L means "same symbols, stopped at the same place".
        width = generated.shape[1]
        if width < target.shape[1]:
            raise ZooError(f"the model decodes at most {width} tokens; this target needs {target.shape[1]}")
        padded = F.pad(target, (0, width - target.shape[1]), value=PAD_ID)
        hit = generated == padded
        return {
            "tokens": _sum(mask),
            "sequences": torch.tensor(float(target.shape[0]), device=target.device),
            "loss_sum": loss.detach(),
            "correct": _sum(hit[:, :target.shape[1]] & mask),
            "teacher_forced_correct": _sum((logits.argmax(-1) == target) & mask),
            "exact": _sum(hit.all(dim=1)),
        }

    def finalize(self, sums, loss_name=None):
        n = max(sums["tokens"], 1.0)
        return {"loss": sums["loss_sum"] / n, "token_accuracy": sums["correct"] / n,
                "teacher_forced_accuracy": sums["teacher_forced_correct"] / n,
                "exact_match": sums["exact"] / max(sums["sequences"], 1.0)}

    # -- serving ----------------------------------------------------------------------------
    def encode_text(self, i: int, text: str, vocab: Vocabulary, limit: int | None) -> list[int]:
        """Raw input ``"3 1 4 1 5"`` (every non-space character a symbol; ``zoo predict`` takes it
        as a string, a list, ``{"text": ...}`` or a ``.txt`` file through
        :meth:`SequenceTask.raw_inputs`). ZooError on empty text, a symbol outside the vocabulary
        (special tokens such as ``<eos>`` included) and text longer than the longest source the
        model was trained on."""
        chars = tokenize_characters(text)
        if not chars:
            raise ZooError(f"input {i} is empty (no symbols)")
        symbols = [t for t in vocab.tokens if t not in SPECIALS]
        unknown = sorted({c for c in chars if c not in symbols})
        if unknown:
            raise ZooError(f"input {i} has symbol(s) outside the vocabulary: {' '.join(unknown)} "
                           f"(this model knows: {' '.join(symbols)})")
        if limit and len(chars) > int(limit):
            raise ZooError(f"input {i} has {len(chars)} symbols; this model was trained on at most "
                           f"{limit} (longer inputs are outside what it learned)")
        return vocab.encode(chars)

    def postprocess(self, outputs, metadata):
        """The decoded symbols of each sample, space-separated, up to (without) ``<eos>``."""
        generated = outputs[self.output_names[0]]
        vocab_data = metadata.get("onnx_vocabulary")
        vocab = Vocabulary.from_metadata(vocab_data) if vocab_data else None
        out = []
        for row in generated.tolist():
            ids = row[:row.index(EOS_ID)] if EOS_ID in row else row
            out.append(" ".join(vocab.decode(ids)) if vocab else ids)
        return out


def _words(ids: list[int]) -> str:
    """Ids up to (without) ``<eos>``, written as space-separated numbers for sacrebleu."""
    ids = ids[:ids.index(EOS_ID)] if EOS_ID in ids else ids
    return " ".join(str(i) for i in ids if i != PAD_ID)


class Translation(Seq2Seq):
    """Seq2seq on text pairs: the metrics of :class:`Seq2Seq` plus corpus BLEU (the main metric)."""

    name = "translation"
    main_metric = "bleu"

    @staticmethod
    def _scorer():
        try:
            from sacrebleu.metrics import BLEU
        except ImportError:
            raise ZooError("the translation task scores BLEU with sacrebleu: pip install "
                           "'zoo-ml[translation]' (or sacrebleu)") from None
        return BLEU(tokenize="none", max_ngram_order=BLEU_ORDER)

    def check_info(self, info):
        super().check_info(info)
        self._scorer()

    def encode_text(self, i, text, vocab, limit):
        """Raw input as words (the vocabulary's tokenizer), not the symbol tasks' characters."""
        return SequenceTask.encode_text(self, i, text, vocab, limit)

    def metric_sums(self, output, batch, loss_name=None):
        sums = super().metric_sums(output, batch, loss_name)
        _, generated = self._split(output)
        hyps = [_words(row) for row in generated.tolist()]
        refs = [_words(row) for row in batch["target"].tolist()]
        # the batch's sufficient statistics (public BLEUScore fields), summed over the splits' batches
        score = self._scorer().corpus_score(hyps, [refs])
        totals = [score.sys_len, score.ref_len, *score.counts, *score.totals]
        device = batch["target"].device
        sums.update({k: torch.tensor(float(v), dtype=torch.float64, device=device) for k, v in zip(_BLEU_KEYS, totals)})
        return sums

    def finalize(self, sums, loss_name=None):
        metrics = super().finalize(sums, loss_name)
        if "bleu_sys_len" not in sums:  # an empty split
            return {**metrics, "bleu": 0.0}
        n = BLEU_ORDER
        correct = [int(sums[f"bleu_correct_{k}"]) for k in range(1, n + 1)]
        total = [int(sums[f"bleu_total_{k}"]) for k in range(1, n + 1)]
        scorer = self._scorer()  # its smoothing (sacrebleu's corpus default), as corpus_score uses
        score = scorer.compute_bleu(correct, total, int(sums["bleu_sys_len"]), int(sums["bleu_ref_len"]),
                                    smooth_method=scorer.smooth_method, smooth_value=scorer.smooth_value,
                                    effective_order=scorer.effective_order, max_ngram_order=n)
        return {**metrics, "bleu": float(score.score)}
