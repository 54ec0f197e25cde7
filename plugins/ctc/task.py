"""The ``sequence-recognition`` task: an input of ``W`` frames → a label string of any length
(no alignment given), learned with Connectionist Temporal Classification (Graves et al. 2006).

Contract with the model: ``model(x [B, H, W], lengths [B]) → (log_probs [B, T, K], frame_lengths
[B])``, with ``log_probs`` the per-frame log-probabilities over the ``K − 1`` symbols and the blank
(label 0), and ``frame_lengths`` the real frames of each sample (``T`` ≥ each of them).

Loss: ``−log p(l | x) / |l|`` averaged over the batch (``torch.nn.CTCLoss``, ``reduction="mean"``,
``zero_infinity=True``: a target that no path can produce, when ``frame_lengths < |l|`` plus its
repeats, contributes 0 instead of ∞). Metrics on the greedy (best-path) decode: ``cer`` (main,
lower is better) = ``Σ edit distance / Σ |l|``, ``exact_match`` = share of strings decoded exactly,
and ``loss``.

Serving: ``zoo predict`` takes ``{"x": [[...H rows of W values...]], "lengths": [...]}`` (a single
``[H, W]`` sample, or a list of ``[H, W_i]`` samples of different widths that are padded here);
the answers are strings, decoded after the ONNX session with the model's ``beam_width`` (greedy at
1, prefix beam search above) and the alphabet from the ONNX metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from zoo.core.train.data import DataInfo, Split
from zoo.core.contract.errors import ZooError
from zoo.core.train.tasks import Task
from zoo.plugins.ctc.decode import decode, edit_distance


def _greedy_ids(log_probs: torch.Tensor, frames: torch.Tensor) -> list[list[int]]:
    """Best-path decodes of a batch, collapsed on the device, then read once."""
    best = log_probs.argmax(-1)                                            # (B, T)
    prev = F.pad(best, (1, 0), value=-1)[:, :-1]
    inside = torch.arange(best.shape[1], device=best.device)[None, :] < frames[:, None]
    keep = (best != prev) & (best != 0) & inside
    rows = torch.where(keep, best, -1).tolist()
    return [[k for k in row if k >= 0] for row in rows]


class SequenceRecognition(Task):
    """Unaligned sequence recognition with CTC: see the module docstring for the maths."""

    name = "sequence-recognition"
    input_names = ("x", "lengths")
    output_names = ("log_probs", "frame_lengths")
    main_metric = "cer"
    higher_is_better = False  # the trainer keeps the checkpoint of lowest validation CER
    losses = ("ctc",)
    answers_tensors = True  # zoo serve answers tensor requests with the decoded strings too

    def check_info(self, info: DataInfo) -> None:
        if not info.extra.get("num_symbols") or not info.extra.get("input_height"):
            raise ZooError("sequence-recognition needs a dataset of frames and label strings "
                           "(DataInfo.extra num_symbols and input_height)")

    @staticmethod
    def _per_sample(output, batch) -> torch.Tensor:
        log_probs, frames = output
        return F.ctc_loss(log_probs.float().transpose(0, 1), batch["target"], frames, batch["target_lengths"],
                          blank=0, reduction="none", zero_infinity=True)

    def loss(self, output, batch, loss_name=None):
        lengths = batch["target_lengths"].clamp(min=1).float()
        return (self._per_sample(output, batch) / lengths).mean()

    def metric_sums(self, output, batch, loss_name=None):
        log_probs, frames = output
        target, target_lengths = batch["target"], batch["target_lengths"]
        losses = self._per_sample(output, batch) / target_lengths.clamp(min=1).float()
        hyps = _greedy_ids(log_probs, frames)
        refs = [row[:n] for row, n in zip(target.tolist(), target_lengths.tolist())]
        edits = [edit_distance(h, r) for h, r in zip(hyps, refs)]
        device = target.device
        return {"sequences": torch.tensor(float(len(refs)), device=device),
                "chars": target_lengths.sum().float(),
                "edits": torch.tensor(float(sum(edits)), device=device),
                "exact": torch.tensor(float(sum(e == 0 for e in edits)), device=device),
                "loss_sum": losses.detach().sum()}

    def finalize(self, sums, loss_name=None):
        n = max(sums["sequences"], 1.0)
        return {"loss": sums["loss_sum"] / n, "cer": sums["edits"] / max(sums["chars"], 1.0),
                "exact_match": sums["exact"] / n}

    # -- export -----------------------------------------------------------------------------
    def dynamic_axes(self, info):
        return {"x": {0: "batch", 2: "width"}, "lengths": {0: "batch"},
                "log_probs": {0: "batch", 1: "frames"}, "frame_lengths": {0: "batch"}}

    def export_inputs(self, split: Split, sizes=((3, 37), (2, 20), (5, 83))):
        """``(batch, width)`` pairs: the first traced (both ≥ 2), the others differ in both; real
        samples cut or padded with 0 to the width, one row of each set using the full width."""
        out = []
        for size, width in sizes:
            batch = split.batch(torch.arange(size, device=split.device) % max(len(split), 1))
            x = batch["x"][:, :, :width]
            x = F.pad(x, (0, width - x.shape[2]))
            lengths = batch["lengths"].clamp(min=1, max=width)
            lengths = torch.where(torch.arange(size, device=lengths.device) == 0,
                                  torch.full_like(lengths, width), lengths)
            out.append((x.contiguous(), lengths.contiguous()))
        return out

    # -- serving ----------------------------------------------------------------------------
    def raw_inputs(self, data: Any, metadata: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """``{"x": ...}`` with or without ``lengths``: one ``[H, W]`` sample, a ``[B, H, W]``
        batch, or a list of ``[H, W_i]`` samples (padded here). ZooError on a height other than
        the model's, an empty sample or lengths outside ``1..W``."""
        if not (isinstance(data, dict) and "x" in data):
            return None
        height = metadata.get("onnx_input_height")
        samples = self._samples(data["x"])
        for i, s in enumerate(samples):
            if height and s.shape[0] != int(height):
                raise ZooError(f"sample {i} has {s.shape[0]} rows; this model takes {height} (features per frame)")
            if s.shape[1] < 1:
                raise ZooError(f"sample {i} is empty (no frames)")
        width = max(s.shape[1] for s in samples)
        x = np.zeros((len(samples), samples[0].shape[0], width), dtype=np.float32)
        for i, s in enumerate(samples):
            x[i, :, :s.shape[1]] = s
        lengths = np.array([s.shape[1] for s in samples], dtype=np.int64)
        if data.get("lengths") is not None:
            lengths = np.asarray(data["lengths"]).reshape(-1)
            if not np.issubdtype(lengths.dtype, np.integer) or lengths.shape != (len(samples),) or \
                    lengths.min() < 1 or lengths.max() > width:
                raise ZooError(f"lengths must be {len(samples)} integers between 1 and {width} (the width); "
                               f"got {np.asarray(data['lengths']).tolist()}")
        return {"x": x, "lengths": lengths.astype(np.int64)}

    @staticmethod
    def _samples(value: Any) -> list[np.ndarray]:
        try:
            array = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError):  # ragged: a list of samples of different widths
            if not isinstance(value, list) or not value:
                raise ZooError("input 'x' must be [H, W], [B, H, W] or a list of [H, W] samples") from None
            try:
                return [SequenceRecognition._samples(v)[0] for v in value]
            except ZooError:
                raise ZooError("input 'x' must be [H, W], [B, H, W] or a list of [H, W] samples") from None
        if array.ndim == 2:
            return [array]
        if array.ndim == 3 and array.shape[0] > 0:
            return list(array)
        raise ZooError(f"input 'x' has shape {list(array.shape)}; expected [H, W], [B, H, W] or a list of [H, W]")

    def postprocess(self, outputs, metadata):
        """The decoded string of each sample (symbols from ``onnx_alphabet``)."""
        log_probs, frames = outputs["log_probs"], outputs["frame_lengths"]
        beam = int(((metadata.get("config") or {}).get("model") or {}).get("beam_width", 1))
        alphabet = metadata.get("onnx_alphabet")
        ids = decode(log_probs, frames, beam)
        if not alphabet:
            return ids
        return ["".join(alphabet[k - 1] for k in row if 0 < k <= len(alphabet)) for row in ids]
