"""CTC decoding and scoring on per-frame log-probabilities (Graves et al. 2006).

A CTC network emits, at each of ``T`` frames, a distribution over ``K`` = symbols + 1 labels,
where label 0 is the *blank* ("no symbol here"). A frame path ``π ∈ {0..K-1}^T`` maps to a label
string by ``B``: merge repeated labels, then drop blanks (``a a - a b -`` → ``a a b``), so
``p(l | x) = Σ_{π: B(π) = l} Π_t y^t_{π_t}``.

* :func:`greedy_decode` (best path): ``B(argmax_k y^t_k)`` — the most likely *path*, not
  necessarily the most likely *string*.
* :func:`prefix_beam_search` keeps the ``beam_width`` most likely string prefixes, each with two
  probabilities — of ending in a blank (``p_b``) and in a symbol (``p_nb``) — so that all the
  paths that collapse to one prefix are summed (Hannun et al. 2014, "First-pass large vocabulary
  continuous speech recognition using bi-directional recurrent DNNs", Algorithm 1). A repeated
  symbol only extends a prefix across a blank.
* :func:`edit_distance` is the Levenshtein distance (insertions, deletions, substitutions);
  the character error rate is ``Σ distance(hyp, ref) / Σ |ref|``.

Everything here is numpy / Python: it runs after the ONNX session in ``zoo predict`` and ``zoo
serve``, with no torch.
"""

from __future__ import annotations

import numpy as np

BLANK = 0


def collapse(path) -> list[int]:
    """``B``: merge repeats, drop blanks. ``[1, 1, 0, 1, 2, 0] → [1, 1, 2]``."""
    out, prev = [], None
    for label in path:
        label = int(label)
        if label != prev and label != BLANK:
            out.append(label)
        prev = label
    return out


def greedy_decode(log_probs: np.ndarray, length: int | None = None) -> list[int]:
    """Best-path decoding of one sequence.

    Args:
        log_probs (np.ndarray): ``[T, K]`` per-frame log-probabilities (blank = 0).
        length (int, optional): frames that are real (the rest is padding).
    """
    frames = log_probs[:length] if length is not None else log_probs
    return collapse(np.asarray(frames).argmax(-1))


def prefix_beam_search(log_probs: np.ndarray, beam_width: int = 8, length: int | None = None) -> list[int]:
    """The most likely label string under CTC found by prefix beam search.

    Args:
        log_probs (np.ndarray): ``[T, K]`` per-frame log-probabilities (blank = 0).
        beam_width (int): prefixes kept after each frame; 1 gives (nearly) the best path.
        length (int, optional): frames that are real (the rest is padding).
    """
    frames = np.asarray(log_probs[:length] if length is not None else log_probs, dtype=np.float64)
    neg_inf = -np.inf
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg_inf)}  # prefix → (log p_b, log p_nb)
    for row in frames:
        grown: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, blank_end: bool, value: float) -> None:
            entry = grown.setdefault(prefix, [neg_inf, neg_inf])
            i = 0 if blank_end else 1
            entry[i] = np.logaddexp(entry[i], value)

        for prefix, (p_b, p_nb) in beams.items():
            total = np.logaddexp(p_b, p_nb)
            add(prefix, True, total + row[BLANK])              # a blank keeps the prefix
            last = prefix[-1] if prefix else None
            for k in range(1, row.shape[0]):
                if k == last:
                    add(prefix, False, p_nb + row[k])           # a a → a (merged)
                    add(prefix + (k,), False, p_b + row[k])     # a - a → a a
                else:
                    add(prefix + (k,), False, total + row[k])
        ranked = sorted(grown.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:max(1, beam_width)]
        beams = {prefix: (p[0], p[1]) for prefix, p in ranked}
    best = max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))
    return list(best[0])


def decode(log_probs: np.ndarray, lengths=None, beam_width: int = 1) -> list[list[int]]:
    """Decode a batch ``[B, T, K]``: greedy when ``beam_width`` is 1, else prefix beam search."""
    out = []
    for i, frames in enumerate(log_probs):
        n = int(lengths[i]) if lengths is not None else None
        out.append(greedy_decode(frames, n) if beam_width <= 1 else prefix_beam_search(frames, beam_width, n))
    return out


def edit_distance(hyp, ref) -> int:
    """Levenshtein distance between two sequences (unit costs)."""
    hyp, ref = list(hyp), list(ref)
    row = list(range(len(ref) + 1))
    for i, h in enumerate(hyp, 1):
        prev, row[0] = row[0], i
        for j, r in enumerate(ref, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (h != r))
    return row[-1]


def character_error_rate(hyps, refs) -> float:
    """``Σ edit_distance(h, r) / Σ |r|`` over a corpus (0 when every reference is empty and matched)."""
    edits = sum(edit_distance(h, r) for h, r in zip(hyps, refs))
    chars = sum(len(r) for r in refs)
    return edits / chars if chars else float(edits > 0)
