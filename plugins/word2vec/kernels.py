"""Fused CPU kernels of the skip-gram and CBOW training step (numba): word2vec's inner loop.

The torch path (:class:`zoo.plugins.word2vec.models._CBOWLoss`, ``_SkipGramLoss``) computes the
batched step as a chain of tensor ops: it gathers ``[B, C, D]`` and ``[B, J, D]`` blocks and
materialises one ``D``-vector per (row, occurrence) for the sparse gradients, so it moves several
times the memory that word2vec's C loop touches. On a CPU that traffic, not arithmetic, bounds it
(docs/results.md, "Notes moved from docstrings", has the per-position times). Two kernels, one
pass over the batch each, the way word2vec's ``cbow``/``skip-gram`` loops go:

* :func:`fused_step`: the *same* batched step as the torch ops, the loss and the exact gradients
  at the batch's weights; each touched row's gradient is written once and returned as
  ``rows [R]`` (unique per thread) and ``values [R, D]``, which become one sparse (or dense)
  gradient for whatever optimizer the trainer runs.
* :func:`sgd_step_words` (and :func:`sgd_step` on given targets): word2vec's own update. Centre
  after centre, each one's SGD step (the lr of the optimizer's param group) is written into the
  tables before the next centre reads them, so there is no gradient left for the optimizer
  (``models._NegativeSampling.attach_sgd`` says when that equals what plain SGD would do). Each
  centre's targets are found as word2vec finds them: k noise words drawn with word2vec's
  generator from the unigram table, or the centre's Huffman path read from the tree's tables.

The loss is computed exactly, with one exp and, per centre, one log (:func:`score`, :func:`fold`).

Threads: the batch is cut into one chunk per ``torch.get_num_threads()`` thread. In
:func:`fused_step` each chunk has its own row slots and the chunks' rows are concatenated (a row
touched by two chunks appears twice; its gradients are summed when applied); in the SGD kernels
the chunks update the shared tables without locks (Hogwild, as gensim's worker threads do), each
with its own generator stream. The attached models run word2vec's update at several threads on
persistent worker threads instead (:mod:`zoo.plugins.word2vec.workers`): one whole batch per
worker, one chunk, and no meeting of the threads per batch.

numba is optional (``pip install 'zoo-ml[word2vec]'``): without it, on CUDA, or with
``model.kernel = "torch"`` the torch path runs; :mod:`zoo.plugins.word2vec.models` imports this
module only when a kernel is used (importing numba and compiling are slow the first time; the
compiled kernels are cached next to this file). The tests check both kernels against the torch ops and against
word2vec's loop written out in torch.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

_KINDS = {"cbow": 0, "skipgram": 1}

# numba starts its OpenMP threads on first use and then sets the OpenMP thread count, which torch
# shares, to its own (all cores): a `torch.set_num_threads(1)` or OMP_NUM_THREADS=1 made before
# was silently undone, and a "1 thread" run used two. Start them now and give torch its count
# back: torch's setting decides the kernels' chunks (and torch's own ops) from here on.
_TORCH_THREADS = torch.get_num_threads()
numba.get_num_threads()
torch.set_num_threads(_TORCH_THREADS)
# fastmath: the dot products and axpys vectorise (their order of summation is free)
_jit = numba.njit(cache=True, fastmath=True, nogil=True)


@_jit
def take_slot(slot, rows, values, used, row, base):
    """The slot of ``row`` in this chunk's gradient block (a fresh zero row the first time)."""
    k = slot[row]
    if k < 0:
        k = base + used
        slot[row] = k
        rows[k] = row
        values[k, :] = 0
        used += 1
    return k, used


@_jit
def context_mean(w_in, context, weight, b, h):
    """h ← the weighted mean of centre b's context vectors; returns their total weight n (0: no
    context, h untouched)."""
    real = h.dtype.type  # the weights may come as a bool mask
    n = 0.0
    for c in range(context.shape[1]):
        n += real(weight[b, c])
    if n <= 0:
        return n
    h[:] = 0
    for c in range(context.shape[1]):
        wc = real(weight[b, c])
        if wc != 0:
            row = context[b, c]
            for d in range(h.shape[0]):
                h[d] += wc * w_in[row, d]
    inv = h.dtype.type(1.0 / n)
    for d in range(h.shape[0]):
        h[d] *= inv
    return n


@_jit
def row_dot(table, row, v):
    """table[row] · v, accumulated in the table's precision (the loop vectorises)."""
    s = table.dtype.type(0)
    for d in range(v.shape[0]):
        s += table[row, d] * v[d]
    return s


@_jit
def score(w_out, t, v, label, weight):
    """One (input vector ``v``, output row ``t``) term, s = u_t·v and z = (2·label − 1)·s.

    Its loss −weight·log σ(z) = weight·(log(1 + e) + max(−z, 0)) with e = exp(−|s|) is returned
    in two parts, the factor 1 + e and weight·max(−z, 0): callers multiply a centre's factors
    and take one log (:func:`fold`), as one exp and one log per term cost as much as the rest of
    the step. Also returns d loss / d s = weight·(σ(s) − label).
    """
    s = row_dot(w_out, t, v)
    e = math.exp(-abs(s))
    sig = 1.0 / (1.0 + e) if s >= 0 else e / (1.0 + e)
    z = s * (2.0 * label - 1.0)
    return 1.0 + e, weight * max(-z, 0.0), weight * (sig - label)


@_jit
def fold(product, loss, factor, weight):
    """Add a term's weight·log(``factor``) to the loss: into ``product`` (logged once per centre,
    at most 2^(terms of a centre), far from overflow) when the weight is 1, else directly."""
    if weight == 1:
        return product * factor, loss
    return product, loss + weight * math.log(factor)


@_jit
def gradient_targets(w_out, v, rows, row_labels, row_mask, weight, acc, loss, want_grad, slot_out, rows_out,
                     values_out, used_out, base_out, hits, count_hits):
    """The batched gradient of one input vector ``v``'s targets: each target t's loss is folded
    in; with ``want_grad``, ``acc`` (zeroed here) gets Σ g·u_t (∂/∂v) and t's gradient slot g·v
    (and one hit per target with ``count_hits``). Returns the loss and the slots used."""
    real = w_out.dtype.type
    acc[:] = 0
    product = 1.0  # of the factors 1 + e of the terms (see score)
    for j in range(rows.shape[0]):
        m = row_mask[j]
        if m == 0:
            continue
        t = rows[j]
        factor, term, g = score(w_out, t, v, row_labels[j], weight * m)
        product, loss = fold(product, loss + term, factor, weight * m)
        if not want_grad:
            continue
        g = real(g)
        for d in range(v.shape[0]):
            acc[d] += g * w_out[t, d]
        k, used_out = take_slot(slot_out, rows_out, values_out, used_out, t, base_out)
        for d in range(v.shape[0]):
            values_out[k, d] += g * v[d]
        if count_hits:
            hits[k] += m
    return loss + math.log(product), used_out


@_jit
def sgd_targets(w_out, v, rows, row_labels, row_mask, weight, lr, acc, loss):
    """word2vec's inner loop for one input vector ``v``: each target t's loss is folded in, ``acc``
    (zeroed here) gets Σ lr·g·u_t (the step of v) and u_t steps by −lr·g·v at once, before the
    next target is scored. Returns the loss."""
    real = w_out.dtype.type
    acc[:] = 0
    product = 1.0  # of the factors 1 + e of the terms (see score)
    for j in range(rows.shape[0]):
        m = row_mask[j]
        if m == 0:
            continue
        t = rows[j]
        factor, term, g = score(w_out, t, v, row_labels[j], weight * m)
        product, loss = fold(product, loss + term, factor, weight * m)
        g = real(lr * g)
        for d in range(v.shape[0]):
            acc[d] += g * w_out[t, d]
            w_out[t, d] -= g * v[d]
    return loss + math.log(product)


@_jit
def cbow_chunk(w_in, w_out, context, weight, targets, labels, tmask, exact, want_grad, b0, b1,
               slot_in, slot_out, rows_in, values_in, rows_out, values_out, hits, base_in, base_out):
    """Centres ``b0..b1``: loss, and the gradient rows written from ``base_in``/``base_out`` on."""
    c_width, dim = context.shape[1], w_in.shape[1]
    real = w_in.dtype.type  # the inner loops stay in the tables' precision (they vectorise)
    h = np.zeros_like(w_in[0])
    gh = np.zeros_like(w_in[0])
    used_in, used_out, loss = 0, 0, 0.0
    for b in range(b0, b1):
        n = context_mean(w_in, context, weight, b, h)
        if n <= 0:
            continue
        inv = real(1.0 / n)
        loss, used_out = gradient_targets(w_out, h, targets[b], labels[b], tmask[b], 1.0, gh, loss, want_grad,
                                          slot_out, rows_out, values_out, used_out, base_out, hits, True)
        if not want_grad:
            continue
        if exact:
            for d in range(dim):
                gh[d] *= inv
        for c in range(c_width):
            wc = weight[b, c]
            if wc != 0:
                k, used_in = take_slot(slot_in, rows_in, values_in, used_in, context[b, c], base_in)
                for d in range(dim):
                    values_in[k, d] += wc * gh[d]
    return loss, used_in, used_out


@_jit
def skipgram_chunk(w_in, w_out, context, weight, targets, labels, tmask, exact, want_grad, b0, b1,
                   slot_in, slot_out, rows_in, values_in, rows_out, values_out, hits, base_in, base_out):
    """As ``cbow_chunk``: every valid context word's input vector predicts the centre's targets."""
    c_width, j_width, dim = context.shape[1], targets.shape[1], w_in.shape[1]
    gv = np.zeros_like(w_in[0])
    used_in, used_out, loss = 0, 0, 0.0
    for b in range(b0, b1):
        any_valid = False
        for c in range(c_width):
            wc = weight[b, c]
            if wc == 0:
                continue
            any_valid = True
            row = context[b, c]
            loss, used_out = gradient_targets(w_out, w_in[row], targets[b], labels[b], tmask[b], wc, gv, loss,
                                              want_grad, slot_out, rows_out, values_out, used_out, base_out, hits,
                                              False)
            if want_grad:
                k, used_in = take_slot(slot_in, rows_in, values_in, used_in, row, base_in)
                for d in range(dim):
                    values_in[k, d] += gv[d]
        if any_valid and want_grad:
            for j in range(j_width):
                if tmask[b, j] != 0:
                    hits[slot_out[targets[b, j]]] += tmask[b, j]
    return loss, used_in, used_out


@_jit
def next_random(state):
    """word2vec's (and gensim's) generator: state · 25214903917 + 11 (mod 2^64)."""
    return state * np.uint64(25214903917) + np.uint64(11)


@_jit
def chunk_state(seed, chunk):
    """The generator's start for one chunk of a batch (a different stream per chunk)."""
    return np.uint64(seed) ^ (np.uint64(chunk + 1) * np.uint64(2654435761))


@_jit
def draw(noise, state):
    """One word from the noise table (a uniform slot: unigram^α, as word2vec draws)."""
    state = next_random(state)
    return noise[(state >> np.uint64(16)) % np.uint64(noise.shape[0])], state


#: An alias entry kept with certainty (any 48-bit draw's quotient is below it).
_ALWAYS = 1 << 62


@_jit
def _stack_slot(q, i, small, large, n_small, n_large):
    """Push slot ``i`` on the stack of slots below the mean (``q_i < 1``) or of the others;
    the new stack heights."""
    if q[i] < 1.0:
        small[n_small] = i
        return n_small + 1, n_large
    large[n_large] = i
    return n_small, n_large + 1


@_jit
def alias_table(probs):
    """Walker's alias table of the distribution ``probs [V]`` (Vose's construction): ``keep
    [V]`` (int64) and ``other [V]`` (int32), for :func:`draw_alias`.

    Slot i is drawn uniformly; it yields word i with probability q_i = keep_i / ⌊2^48 / V⌋ and
    word ``other[i]`` otherwise, with q and ``other`` chosen so that every word's total is
    exactly its probability (up to 2^−48 / V per slot). The table is 12 bytes a word, so it
    stays in cache where word2vec's unigram table (≥ 10^6 slots, 4 MB) does not: each noise
    word of that table is a cache miss.
    """
    v = probs.shape[0]
    span = float((1 << 48) // v)
    q = probs * (v / probs.sum())
    keep = np.full(v, _ALWAYS, np.int64)
    other = np.arange(v).astype(np.int32)
    small, large = np.empty(v, np.int64), np.empty(v, np.int64)
    n_small, n_large = 0, 0
    for i in range(v):
        n_small, n_large = _stack_slot(q, i, small, large, n_small, n_large)
    while n_small > 0 and n_large > 0:
        n_small -= 1
        n_large -= 1
        s, big = small[n_small], large[n_large]
        keep[s], other[s] = np.int64(q[s] * span), big
        q[big] = q[big] + q[s] - 1.0
        n_small, n_large = _stack_slot(q, big, small, large, n_small, n_large)
    return keep, other  # the slots left over keep their own word: q = 1 up to rounding


@_jit
def draw_alias(keep, other, state):
    """One word from an alias table (:func:`alias_table`) with word2vec's generator: the 48 bits
    x = state >> 16 give the slot x mod V and, from x div V, the coin that keeps it."""
    state = next_random(state)
    x = state >> np.uint64(16)
    v = np.uint64(keep.shape[0])
    i = x % v
    if x // v < np.uint64(keep[i]):
        return np.int64(i), state
    return np.int64(other[i]), state


@_jit
def alias_words(keep, other, seed, chunks, batch, negatives):
    """``[batch, negatives]``: the noise words :func:`cbow_negative_part` draws for a batch of
    ``chunks`` chunks (same streams)."""
    out = np.empty((batch, negatives), np.int64)
    for i in range(chunks):
        state = chunk_state(seed, i)
        for b in range(batch * i // chunks, batch * (i + 1) // chunks):
            for j in range(negatives):
                out[b, j], state = draw_alias(keep, other, state)
    return out


@_jit
def centre_targets(b, centre, targets, labels, tmask, by_centre, noise, state, drawn):
    """Centre ``b``'s output rows, labels and mask (``[J]`` each) and the generator's state.

    With a noise table: the centre word (label 1) then J − 1 words drawn from it, into
    ``drawn``, with the one row of ``labels``/``tmask`` ([1, 0, …], ones). Otherwise row ``b`` of
    the batch's ``targets``/``labels``/``tmask``, or row ``centre[b]`` (``by_centre``: the
    Huffman paths of hierarchical softmax, ``[V, L]``).
    """
    if noise.shape[0] > 0:
        drawn[0] = centre[b]
        for j in range(1, drawn.shape[0]):
            drawn[j], state = draw(noise, state)
        return drawn, labels[0], tmask[0], state
    key = centre[b] if by_centre else b
    return targets[key], labels[key], tmask[key], state


@_jit
def cbow_sgd_chunk(w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, state,
                   exact, lr, b0, b1):
    """word2vec's CBOW loop (gensim's ``fast_sentence_cbow_neg``/``_hs``) over centres ``b0..b1``:
    each centre's SGD update is applied to the tables at once, before the next centre is read.
    Returns the loss and the centres that had a context."""
    c_width, dim = context.shape[1], w_in.shape[1]
    real = w_in.dtype.type
    h = np.zeros_like(w_in[0])
    gh = np.zeros_like(w_in[0])
    drawn = np.empty(labels.shape[1], np.int64)
    loss, count = 0.0, 0.0
    for b in range(b0, b1):
        # drawn for every centre, so that the draws depend on the batch's positions only
        rows, row_labels, row_mask, state = centre_targets(b, centre, targets, labels, tmask, by_centre, noise,
                                                           state, drawn)
        n = context_mean(w_in, context, weight, b, h)
        if n <= 0:
            continue
        count += 1
        inv = real(1.0 / n)
        loss = sgd_targets(w_out, h, rows, row_labels, row_mask, 1.0, lr, gh, loss)
        if exact:
            for d in range(dim):
                gh[d] *= inv
        for c in range(c_width):
            wc = real(weight[b, c])
            if wc != 0:
                row = context[b, c]
                for d in range(dim):
                    w_in[row, d] -= wc * gh[d]
    return loss, count


@_jit
def skipgram_sgd_chunk(w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, state,
                       exact, lr, b0, b1):
    """word2vec's skip-gram loop (gensim's ``fast_sentence_sg_neg``/``_hs``): each context word's
    input vector predicts the centre's targets, updated in place pair by pair. Returns the loss
    and the (weighted) pairs."""
    c_width, dim = context.shape[1], w_in.shape[1]
    real = w_in.dtype.type
    gv = np.zeros_like(w_in[0])
    drawn = np.empty(labels.shape[1], np.int64)
    loss, count = 0.0, 0.0
    for b in range(b0, b1):
        rows, row_labels, row_mask, state = centre_targets(b, centre, targets, labels, tmask, by_centre, noise,
                                                           state, drawn)
        for c in range(c_width):
            wc = real(weight[b, c])
            if wc == 0:
                continue
            count += wc
            row = context[b, c]
            loss = sgd_targets(w_out, w_in[row], rows, row_labels, row_mask, wc, lr, gv, loss)
            for d in range(dim):
                w_in[row, d] -= gv[d]
    return loss, count


@_jit
def cbow_negative_chunk(w_in, w_out, centre, context, mask, keep, other, negatives, state, exact, lr, b0, b1):
    """:func:`cbow_sgd_chunk` for negative sampling, the default objective, written as gensim's
    ``fast_sentence_cbow_neg`` is: centres ``b0..b1``, each one's context vectors summed once into
    ``h`` (then ``h /= n``), its ``1 + negatives`` targets (the centre word, label 1, then words
    drawn from ``noise`` with word2vec's generator, label 0) scored and stepped in turn,

        s = u_t · h,   g = lr·(σ(s) − label),   work += g·u_t,   u_t −= g·h,

    and each context vector stepped by ``−work`` (``−work / n`` with ``exact``). Every centre draws
    its words, with or without a context, so the draws depend on the positions only
    (:func:`alias_words` gives them). Everything stays in the tables'
    precision and nothing is allocated or sliced per centre. Returns the loss (each term taken
    before its own update) and the centres that had a context.
    """
    real = w_in.dtype.type
    dim, width = w_in.shape[1], context.shape[1]
    h = np.empty(dim, w_in.dtype)
    work = np.empty(dim, w_in.dtype)
    rows = np.empty(width, np.int64)
    loss, count = 0.0, 0.0
    for b in range(b0, b1):
        n = 0
        for c in range(width):
            if mask[b, c]:
                rows[n] = context[b, c]
                n += 1
        if n == 0:
            for j in range(negatives):
                _, state = draw_alias(keep, other, state)
            continue
        count += 1.0
        r = rows[0]
        for d in range(dim):
            h[d] = w_in[r, d]
        for i in range(1, n):
            r = rows[i]
            for d in range(dim):
                h[d] += w_in[r, d]
        inv = real(1.0 / n)
        for d in range(dim):
            h[d] *= inv
            work[d] = 0
        product = 1.0  # of the terms' factors 1 + e (see score): one log per centre
        for j in range(negatives + 1):
            if j == 0:
                t, label = centre[b], 1.0
            else:
                t, state = draw_alias(keep, other, state)
                label = 0.0
            s = real(0)
            for d in range(dim):
                s += w_out[t, d] * h[d]
            e = math.exp(-abs(s))
            sig = 1.0 / (1.0 + e) if s >= 0 else e / (1.0 + e)
            product *= 1.0 + e
            loss += max(-s if label else s, 0.0)
            g = real(lr * (sig - label))
            for d in range(dim):
                work[d] += g * w_out[t, d]
                w_out[t, d] -= g * h[d]
        loss += math.log(product)
        if exact:
            for d in range(dim):
                work[d] *= inv
        for i in range(n):
            r = rows[i]
            for d in range(dim):
                w_in[r, d] -= work[d]
    return loss, count


@_jit
def cbow_negative_part(w_in, w_out, centre, context, mask, keep, other, negatives, seed, exact, lr, i, chunks):
    """Chunk ``i`` of ``chunks`` of the batch, with its own generator stream (:func:`chunk_state`,
    computed here: a uint64 passed in from Python would arrive as an int64)."""
    batch = context.shape[0]
    return cbow_negative_chunk(w_in, w_out, centre, context, mask, keep, other, negatives, chunk_state(seed, i),
                               exact, lr, batch * i // chunks, batch * (i + 1) // chunks)


@numba.njit(cache=True, nogil=True, parallel=True)
def _cbow_negative_parallel(w_in, w_out, centre, context, mask, keep, other, negatives, seed, exact, lr, chunks):
    """:func:`cbow_negative_part` on ``chunks`` parallel chunks (Hogwild, as in :func:`_sgd_parallel`)."""
    losses, counts = np.zeros(chunks), np.zeros(chunks)
    for i in numba.prange(chunks):
        losses[i], counts[i] = cbow_negative_part(w_in, w_out, centre, context, mask, keep, other, negatives,
                                                  seed, exact, lr, i, chunks)
    return losses.sum(), counts.sum()


@_jit
def sgd_chunk(kind, w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, seed, exact,
              lr, i, chunks):
    """Chunk ``i`` of ``chunks`` of the batch (``kind`` 0: CBOW, 1: skip-gram): its loss and count."""
    batch = context.shape[0]
    b0, b1 = batch * i // chunks, batch * (i + 1) // chunks
    state = chunk_state(seed, i)
    if kind == 0:
        return cbow_sgd_chunk(w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, state,
                              exact, lr, b0, b1)
    return skipgram_sgd_chunk(w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, state,
                              exact, lr, b0, b1)


@numba.njit(cache=True, nogil=True, parallel=True)
def _sgd_parallel(kind, w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, seed, exact,
                  lr, chunks):
    """The batch in ``chunks`` parallel chunks that update the shared tables without locks
    (Hogwild, as gensim's worker threads do)."""
    losses, counts = np.zeros(chunks), np.zeros(chunks)
    for i in numba.prange(chunks):
        losses[i], counts[i] = sgd_chunk(kind, w_in, w_out, centre, context, weight, targets, labels, tmask,
                                         by_centre, noise, seed, exact, lr, i, chunks)
    return np.array([losses.sum(), counts.sum()])


def _sgd(kind, w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, seed, exact, lr,
         chunks) -> np.ndarray:
    """``[loss, count]`` of the batch; a single chunk runs on the calling thread, outside numba's
    parallel region."""
    args = (kind, w_in, w_out, centre, context, weight, targets, labels, tmask, by_centre, noise, seed, exact, lr)
    if chunks == 1:
        return np.array(sgd_chunk(*args, 0, 1))
    return _sgd_parallel(*args, chunks)


@_jit
def noise_words(noise, seed, chunks, batch, negatives):
    """``[batch, negatives]``: the noise words :func:`_sgd` draws for a batch (same streams)."""
    out = np.empty((batch, negatives), np.int64)
    for i in range(chunks):
        state = chunk_state(seed, i)
        for b in range(batch * i // chunks, batch * (i + 1) // chunks):
            for j in range(negatives):
                out[b, j], state = draw(noise, state)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _step(kind, w_in, w_out, context, weight, targets, labels, tmask, exact, mean_out, want_grad, chunks):
    """The whole batch in ``chunks`` parallel chunks (``kind`` 0: CBOW, 1: skip-gram); the chunks'
    gradient rows are then compacted into one block."""
    batch, c_width, j_width = context.shape[0], context.shape[1], targets.shape[1]
    dim = w_in.shape[1]
    rows_in = np.empty(batch * c_width, np.int64)
    values_in = np.empty((batch * c_width, dim), w_in.dtype)
    rows_out = np.empty(batch * j_width, np.int64)
    values_out = np.empty((batch * j_width, dim), w_in.dtype)
    hits = np.zeros(batch * j_width, w_in.dtype)
    losses = np.zeros(chunks)
    used = np.zeros((chunks, 2), np.int64)
    # Each chunk's own row → slot maps: a row touched by two chunks gets a slot in each.
    slots_in = np.full((chunks, w_in.shape[0]), -1, np.int64)
    slots_out = np.full((chunks, w_out.shape[0]), -1, np.int64)
    for i in numba.prange(chunks):
        b0, b1 = batch * i // chunks, batch * (i + 1) // chunks
        if kind == 0:
            loss, n_in, n_out = cbow_chunk(w_in, w_out, context, weight, targets, labels, tmask, exact, want_grad,
                                           b0, b1, slots_in[i], slots_out[i], rows_in, values_in, rows_out,
                                           values_out, hits, b0 * c_width, b0 * j_width)
        else:
            loss, n_in, n_out = skipgram_chunk(w_in, w_out, context, weight, targets, labels, tmask, exact,
                                               want_grad, b0, b1, slots_in[i], slots_out[i], rows_in, values_in,
                                               rows_out, values_out, hits, b0 * c_width, b0 * j_width)
        losses[i] = loss
        used[i, 0], used[i, 1] = n_in, n_out
    # Compact: each chunk's rows move next to the previous chunk's (the first chunk's stay put).
    n_in, n_out = 0, 0
    for i in range(chunks):
        start = batch * i // chunks
        for k in range(start * j_width, start * j_width + used[i, 1]):
            if mean_out:
                scale = 1.0 / max(hits[k], 1.0)
                for d in range(dim):
                    values_out[k, d] *= scale
            if k != n_out:
                rows_out[n_out] = rows_out[k]
                values_out[n_out] = values_out[k]
            n_out += 1
        for k in range(start * c_width, start * c_width + used[i, 0]):
            if k != n_in:
                rows_in[n_in] = rows_in[k]
                values_in[n_in] = values_in[k]
            n_in += 1
    return losses.sum(), rows_in[:n_in], values_in[:n_in], rows_out[:n_out], values_out[:n_out]


@_jit
def gather_windows(padded, pos, offsets, reach, centre, context, mask):
    """The windows of centres at slots ``pos [G]`` of a padded corpus (``padded [M]``, −1
    between documents, :meth:`WindowSplit.padded_corpus <zoo.plugins.word2vec.corpus.WindowSplit.padded_corpus>`):
    ``centre [G]`` ← ``padded[pos]``, ``context [G, O]`` ← ``padded[pos + offsets]`` with −1 read
    as word 0, and ``mask [G, O]`` ← the slot holds a word and ``|offset| ≤ reach[g]`` (``reach
    [G, 1]``, int8; an empty ``reach``: every offset). One pass, what the split's torch ops
    compute in six: the trainer's thread builds the windows while the workers train."""
    full = reach.shape[0] == 0
    for g in range(pos.shape[0]):
        p = pos[g]
        centre[g] = padded[p]
        for c in range(offsets.shape[0]):
            word = padded[p + offsets[c]]
            mask[g, c] = word >= 0 and (full or abs(offsets[c]) <= reach[g, 0])
            context[g, c] = max(word, 0)


def _arrays(w_in, w_out, context, weight, targets, labels, tmask):
    """numpy views of the tables (shared memory: in-place updates reach the parameters) and
    contiguous copies of the batch, in the tables' dtype."""
    dtype = w_in.dtype
    as_np = lambda t, dt: np.ascontiguousarray(t.detach().numpy(), dtype=dt)  # noqa: E731
    real = w_in.detach().numpy().dtype
    if tmask is None:
        tmask = torch.ones(targets.shape, dtype=dtype)
    return (w_in.detach().numpy(), w_out.detach().numpy(), as_np(context, np.int64), as_np(weight, real),
            as_np(targets, np.int64), as_np(labels.expand(targets.shape), real), as_np(tmask, real))


def _chunks(batch: int) -> int:
    return max(1, min(torch.get_num_threads(), batch))


def fused_step(kind: str, w_in: torch.Tensor, w_out: torch.Tensor, context: torch.Tensor, weight: torch.Tensor,
               targets: torch.Tensor, labels: torch.Tensor, tmask: torch.Tensor | None, exact: bool,
               mean_out: bool, want_grad: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor],
                                                        tuple[torch.Tensor, torch.Tensor]]:
    """One batch of ``kind`` (``"cbow"`` or ``"skipgram"``) on the CPU, shapes as in ``models``.

    :returns: ``loss`` (0-d, summed), ``(rows_in [R], values_in [R, D])`` and
        ``(rows_out [S], values_out [S, D])``: the gradient of ``loss`` w.r.t. ``w_in`` and
        ``w_out`` restricted to the rows it touches (empty when ``want_grad`` is False).
    """
    # mean_out divides a row's update by its hits in the whole batch: one chunk sees them all.
    chunks = 1 if mean_out else _chunks(context.shape[0])
    loss, rows_in, values_in, rows_out, values_out = _step(
        _KINDS[kind], *_arrays(w_in, w_out, context, weight, targets, labels, tmask), exact, mean_out, want_grad,
        chunks)
    return (torch.tensor(loss, dtype=w_in.dtype), (torch.from_numpy(rows_in), torch.from_numpy(values_in)),
            (torch.from_numpy(rows_out), torch.from_numpy(values_out)))


def sgd_step(kind: str, w_in: torch.Tensor, w_out: torch.Tensor, context: torch.Tensor, weight: torch.Tensor,
             targets: torch.Tensor, labels: torch.Tensor, tmask: torch.Tensor | None, exact: bool,
             lr: float) -> float:
    """word2vec's own training step on given targets (``[B, J]``, as :func:`fused_step`): the
    batch's centres one after the other, each one's SGD update (step ``lr``) applied to
    ``w_in``/``w_out`` in place before the next (gensim's loop).

    :returns: the batch's summed loss, each term taken before its own update.
    """
    arrays = _arrays(w_in, w_out, context, weight, targets, labels, tmask)
    centre = np.zeros(context.shape[0], np.int64)
    loss, _ = _sgd(_KINDS[kind], *arrays[:2], centre, *arrays[2:], False, _NO_NOISE, 0, exact, lr,
                   _chunks(context.shape[0]))
    return float(loss)


def sgd_step_words(kind: str, w_in: torch.Tensor, w_out: torch.Tensor, centre: torch.Tensor, context: torch.Tensor,
                   mask: torch.Tensor, exact: bool, lr: float, seed: int, noise: torch.Tensor | None = None,
                   negatives: int = 0, huffman: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                   alias: tuple[np.ndarray, np.ndarray] | None = None, workers=None) -> torch.Tensor:
    """word2vec's own training step straight from a batch of windows (``centre [B]``,
    ``context [B, C]`` (int32 or int64), ``mask [B, C]`` bool), its targets found inside the
    kernel as word2vec finds them: ``negatives`` words per centre drawn with word2vec's generator
    (started from ``seed``) from the ``noise`` table (:func:`noise_words` gives the same draws)
    or, for CBOW, from the alias table ``alias = (keep, other)`` of the same distribution
    (:func:`alias_table`; :func:`alias_words` gives the draws), or the centre's Huffman path
    (``huffman = (points, labels, mask)``, ``[V, L]`` each). No ``[B, J]`` tensor is built.

    ``workers`` (:class:`~zoo.plugins.word2vec.workers.UpdateWorkers`): the batch becomes one
    job, run whole by one of the persistent worker threads (one chunk: its draws are those of
    ``chunks = 1``), and the call returns without waiting for it; otherwise the batch is cut
    into one chunk per ``torch.get_num_threads()`` thread and run now.

    :returns: ``[2]`` (float64): the batch's summed loss and its count (CBOW: centres with a
        context; skip-gram: pairs), as the models' forward returns them; with ``workers``, the
        totals of the jobs that finished since the last call instead (the rest come from
        ``workers.drain()``).
    """
    chunks = 1 if workers is not None else _chunks(context.shape[0])
    kernel, args = _words_job(kind, w_in, w_out, centre, context, mask, exact, lr, seed, noise, negatives, huffman,
                              alias)
    if workers is not None:
        workers.submit(kernel, (*args, 0, 1))
        return torch.tensor(workers.collect(), dtype=torch.float64)
    if chunks == 1:
        return torch.tensor(kernel(*args, 0, 1), dtype=torch.float64)
    parallel = _cbow_negative_parallel if kernel is cbow_negative_part else _sgd_parallel
    # no per-value tensor construction (a Python-level cost per step)
    return torch.from_numpy(np.asarray(parallel(*args, chunks), dtype=np.float64))


def _words_job(kind, w_in, w_out, centre, context, mask, exact, lr, seed, noise, negatives, huffman, alias):
    """The kernel of :func:`sgd_step_words` and its arguments, all but ``(chunk, chunks)``: the
    numpy views of the tables (in-place updates reach the parameters) and of the batch."""
    real = w_in.detach().numpy().dtype
    as_np = lambda t, dt: np.ascontiguousarray(t.numpy(), dtype=dt)  # noqa: E731  (no copy when it fits)
    ids = context.numpy()
    if not (ids.dtype in (np.int32, np.int64) and ids.flags.c_contiguous):
        ids = as_np(context, np.int64)
    tables, mask = (w_in.detach().numpy(), w_out.detach().numpy()), np.ascontiguousarray(mask.numpy())
    if kind == "cbow" and alias is not None:  # gensim's fast_sentence_cbow_neg
        return cbow_negative_part, (*tables, as_np(centre, np.int64), ids, mask, *alias, negatives, seed, exact, lr)
    if huffman is not None:
        points, labels, tmask = huffman
        targets, labels, tmask, by_centre, table = (as_np(points, np.int64), as_np(labels, real),
                                                    as_np(tmask, real), True, _NO_NOISE)
    else:
        targets = np.zeros((0, 1 + negatives), np.int64)
        labels = np.zeros((1, 1 + negatives), real)
        labels[0, 0] = 1
        tmask, by_centre, table = np.ones((1, 1 + negatives), real), False, as_np(noise, np.int32)
    return sgd_chunk, (_KINDS[kind], *tables, as_np(centre, np.int64), ids, mask, targets, labels, tmask, by_centre,
                       table, seed, exact, lr)


_NO_NOISE = np.zeros(0, np.int32)


def warm_up(dtype: torch.dtype = torch.float32) -> None:
    """Compile (or load from numba's cache) every kernel for ``dtype`` on a tiny batch, so that a
    timed run does not include it (gensim's C loop is compiled when it is installed)."""
    table = torch.zeros(3, 2, dtype=dtype)
    context, weight = torch.zeros(2, 2, dtype=torch.int64), torch.ones(2, 2, dtype=dtype)
    targets, labels = torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 2, dtype=dtype)
    padded, pos, offsets = np.array([-1, 0, 1, -1], np.int32), np.array([1, 2]), np.array([-1, 1])
    for reach in (np.ones((2, 1), np.int8), np.zeros((0, 1), np.int8)):
        gather_windows(padded, pos, offsets, reach, np.empty(2, np.int64), np.empty((2, 2), np.int32),
                       np.empty((2, 2), np.bool_))
    for kind in _KINDS:
        fused_step(kind, table, table, context, weight, targets, labels, None, False, False, True)
        sgd_step(kind, table.clone(), table.clone(), context, weight, targets, labels, None, False, 0.0)
        # what the models call: a bool mask, noise words or Huffman paths
        centre, mask = torch.zeros(2, dtype=torch.int64), torch.ones(2, 2, dtype=torch.bool)
        sgd_step_words(kind, table.clone(), table.clone(), centre, context, mask, False, 0.0, 0,
                       noise=torch.zeros(4, dtype=torch.int32), negatives=1)
        sgd_step_words(kind, table.clone(), table.clone(), centre, context, mask, False, 0.0, 0,
                       huffman=(targets, labels, torch.ones(2, 2, dtype=dtype)))
        for ids in (context, context.int()):  # the corpus gives int32 contexts
            sgd_step_words(kind, table.clone(), table.clone(), centre, ids, mask, False, 0.0, 0,
                           noise=torch.zeros(4, dtype=torch.int32), negatives=1,
                           alias=alias_table(np.ones(3)) if kind == "cbow" else None)
