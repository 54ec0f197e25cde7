"""GNN family: spectral (ChebNet, GCN) and spatial (GraphSAGE, GAT, GIN, NN4G, DCNN, MoNet) graph
networks on one message-passing base, for node and graph classification; and graph generation
(GraphRNN, GraphRNN-S) with its own task, datasets, export of the step networks and ``zoo sample``.

A graph is ``x [N, F]`` plus ``edge_index [2, E]`` (int64, messages flow from row 0 to row 1);
a batch of graphs adds ``batch [N]``. All aggregation is ``index_add_`` / ``scatter_reduce`` on
plain tensors, so every model exports to ONNX with dynamic node and edge counts; full-batch GCN
and GAT training on the CPU computes the same sums as sparse (CSR) matrix products (``csr.py``).
"""

from __future__ import annotations

from functools import partial

from zoo import hookimpl
from zoo.plugins.gnn.data import (
    TU_DATASETS,
    KarateOptions,
    PlanetoidOptions,
    TUOptions,
    load_karate,
    load_planetoid,
    load_tu,
)
from zoo.plugins.gnn.own import GraphOptions, GraphsOptions, load_graph, load_graphs
from zoo.plugins.gnn.graphgen_data import GENERATORS as GRAPH_SETS
from zoo.plugins.gnn.graphgen_data import GenerationOptions, load_generation  # (networkx imported when used)
from zoo.plugins.gnn.graphgen_task import GraphGeneration
from zoo.plugins.gnn.graphrnn import GraphRNNConfig, GraphRNNSConfig, build_graphrnn, build_graphrnn_s
from zoo.plugins.gnn.models import MODELS, GraphSAGEConfig, build_sampled_graphsage, make_builder
from zoo.plugins.gnn.tasks import GraphClassification, NodeClassification

GENERATIVE = ("graphrnn", "graphrnn-s")


@hookimpl
def register_tasks(register):
    register(NodeClassification())
    register(GraphClassification())
    register(GraphGeneration())


@hookimpl
def register_datasets(register):
    for name in ("cora", "citeseer", "pubmed"):
        register(name, partial(load_planetoid, dataset=name), PlanetoidOptions)
    for name in TU_DATASETS:
        register(name, partial(load_tu, dataset=name), TUOptions)
    register("karate", load_karate, KarateOptions)
    register("graph", load_graph, GraphOptions)      # the user's own: node table + edge list
    register("graphs", load_graphs, GraphsOptions)   # the user's own: TU folder or JSONL
    for name in GRAPH_SETS:                          # generated with networkx (graph generation)
        register(name, partial(load_generation, dataset=name), GenerationOptions)


@hookimpl
def register_models(register):
    for name, (cls, config_class) in MODELS.items():
        register(name, make_builder(cls), config_class)
    register("graphsage-sampled", build_sampled_graphsage, GraphSAGEConfig)
    register("graphrnn", build_graphrnn, GraphRNNConfig)
    register("graphrnn-s", build_graphrnn_s, GraphRNNSConfig)


@hookimpl
def export_model(model, task, model_name, path, opset):
    """Graph generators export their step networks (model.onnx + GraphRNN's edge_step.onnx)."""
    if model_name not in GENERATIVE:
        return None
    from zoo.plugins.gnn.graphgen_export import export_generator

    return export_generator(model, task, path, opset)


@hookimpl
def register_commands(cli):
    from zoo.plugins.gnn.commands import add_commands

    add_commands(cli)
