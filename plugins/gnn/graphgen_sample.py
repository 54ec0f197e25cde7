"""Sampling graphs from GraphRNN / GraphRNN-S: one loop, run by torch or by onnxruntime.

The loop (You et al. 2018, Algorithm 1) is written once over three step functions, so that the
trained module and its ONNX files (``model.onnx``: the graph-level step; ``edge_step.onnx``:
GraphRNN's edge-level step) generate the same graphs from the same seed::

    h ← 0;  S ← SOS (ones)
    for node i = 1 … N_max − 1:
        h, out ← graph_step(S, h)
        S ← edges of node i to the min(i, M) nodes before it, drawn
            GraphRNN-S: at once, S_j ~ Bernoulli(σ(out_j))
            GraphRNN:   one by one, g ← edge_start(out); e ← 1;
                        for j: logit, g ← edge_step(e, g); e ~ Bernoulli(σ(logit))
        stop the graph at the first node with no edge (EOS)

Random numbers come from one ``numpy.random.Generator`` seeded by the caller, drawn in the same
order by both engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import networkx as nx
import numpy as np

from zoo.core.contract.errors import ZooError
from zoo.plugins.gnn.graphgen_data import sequence_to_graph

Array = np.ndarray


@dataclass
class Steps:
    """What the loop needs from a model, on numpy arrays."""

    max_prev: int
    max_nodes: int
    hidden_shape: tuple[int, int]                   # (L, H) of the graph-level state
    graph_step: Callable[[Array, Array], tuple[Array, Array]]          # row, h → h, out
    edge_step: Callable[[Array, Array], tuple[Array, Array]] | None    # e, g → logit, g (GraphRNN)
    edge_layers: int = 0                                                # Le (GraphRNN)


def _sigmoid(z: Array) -> Array:
    return np.exp(-np.logaddexp(0.0, -z))                   # σ(z) without overflow for large |z|


def sample_sequences(steps: Steps, count: int, rng: np.random.Generator) -> Array:
    """``[count, N_max − 1, M]`` generated rows (zero after each graph's EOS)."""
    m, rows = steps.max_prev, max(steps.max_nodes - 1, 0)
    layers, hidden = steps.hidden_shape
    seqs = np.zeros((count, rows, m), dtype=np.float32)
    h = np.zeros((layers, count, hidden), dtype=np.float32)
    row = np.ones((count, m), dtype=np.float32)                          # SOS
    done = np.zeros(count, dtype=bool)
    for i in range(rows):
        h, out = steps.graph_step(row, h)
        width = min(i + 1, m)
        new = np.zeros((count, m), dtype=np.float32)
        if steps.edge_step is None:                                      # GraphRNN-S
            draws = rng.random((count, m))
            new[:, :width] = (draws < _sigmoid(out))[:, :width]
        else:                                                            # GraphRNN
            g = np.zeros((steps.edge_layers, count, out.shape[1]), dtype=np.float32)
            g[0] = out                                                   # edge_start
            edge = np.ones((count, 1), dtype=np.float32)
            for j in range(width):
                logit, g = steps.edge_step(edge, g)
                edge = (rng.random((count, 1)) < _sigmoid(logit)).astype(np.float32)
                new[:, j] = edge[:, 0]
        new[done] = 0.0
        seqs[:, i] = new
        done |= ~new.any(axis=1)
        if done.all():
            break
        row = new
    return seqs


def to_graphs(seqs: Array) -> list[nx.Graph]:
    return [sequence_to_graph(seq) for seq in seqs]


# -- torch -------------------------------------------------------------------------------------


def torch_steps(model) -> Steps:
    """The steps of a GraphRNN / GraphRNN-S module (on its device, no gradients)."""
    import torch

    device = next(model.parameters()).device

    def wrap(fn):
        def call(a: Array, b: Array) -> tuple[Array, Array]:
            with torch.no_grad():
                out = fn(torch.from_numpy(a).to(device), torch.from_numpy(b).to(device))
            return tuple(t.float().cpu().numpy() for t in out)
        return call

    edge = getattr(model, "edge_step", None)
    return Steps(model.max_prev, model.max_nodes, (model.layers, model.hidden), wrap(model.step),
                 wrap(edge) if edge is not None else None, getattr(model, "edge_layers", 0))


def sample_torch(model, count: int, seed: int = 0, batch: int = 1024) -> list[nx.Graph]:
    """``count`` graphs from a module (eval mode), generated ``batch`` at a time."""
    was_training = model.training
    model.eval()
    try:
        rng = np.random.default_rng(seed)
        steps = torch_steps(model)
        return [g for start in range(0, count, batch)
                for g in to_graphs(sample_sequences(steps, min(batch, count - start), rng))]
    finally:
        model.train(was_training)


# -- onnxruntime -------------------------------------------------------------------------------

EDGE_FILE = "edge_step.onnx"


def onnx_steps(run_dir: str | Path) -> Steps:
    """The steps of a run's exported files, run by onnxruntime."""
    from zoo.core.deploy.runtime import make_session, read_metadata

    run_dir = Path(run_dir)
    model_path = run_dir / "model.onnx"
    if not model_path.is_file():
        raise ZooError(f"{run_dir}: no model.onnx there (train or `zoo export` first)")
    session = make_session(model_path)
    meta = read_metadata(session)
    if meta.get("task") != "graph-generation":
        raise ZooError(f"{run_dir} is a run of {meta.get('model')!r} ({meta.get('task')}); `zoo sample` "
                       f"needs a graph-generation run (graphrnn, graphrnn-s)")
    layers, _, hidden = session.get_inputs()[1].shape

    def graph_step(row, h):
        return tuple(session.run(["hidden_out", "output"], {"row": row, "hidden": h}))

    edge, edge_layers = None, 0
    if (run_dir / EDGE_FILE).is_file():
        edge_session = make_session(run_dir / EDGE_FILE)
        edge_layers = edge_session.get_inputs()[1].shape[0]

        def edge(e, g):
            return tuple(edge_session.run(["logit", "edge_hidden_out"], {"edge": e, "edge_hidden": g}))
    elif meta.get("model") == "graphrnn":
        raise ZooError(f"{run_dir}: {EDGE_FILE} is missing (re-export with `zoo export {run_dir}`)")
    return Steps(int(meta["onnx_max_prev_node"]), int(meta["onnx_max_nodes"]), (int(layers), int(hidden)),
                 graph_step, edge, int(edge_layers))


def sample_onnx(run_dir: str | Path, count: int, seed: int = 0) -> list[nx.Graph]:
    return to_graphs(sample_sequences(onnx_steps(run_dir), count, np.random.default_rng(seed)))
