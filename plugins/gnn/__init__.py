"""GNN family: spectral (ChebNet, GCN) and spatial (GraphSAGE, GAT, GIN, NN4G, DCNN, MoNet) graph
networks on one message-passing base, for node and graph classification.

A graph is ``x [N, F]`` plus ``edge_index [2, E]`` (int64, messages flow from row 0 to row 1);
a batch of graphs adds ``batch [N]``. All aggregation is ``index_add_`` / ``scatter_reduce`` on
plain tensors, so every model exports to ONNX with dynamic node and edge counts.
"""

from __future__ import annotations

from functools import partial

from zoo import hookimpl
from zoo.plugins.gnn.data import (
    TU_DATASETS,
    PlanetoidOptions,
    TUOptions,
    load_karate,
    load_planetoid,
    load_tu,
)
from zoo.plugins.gnn.own import GraphOptions, GraphsOptions, load_graph, load_graphs
from zoo.plugins.gnn.models import MODELS, make_builder
from zoo.plugins.gnn.tasks import GraphClassification, NodeClassification


@hookimpl
def register_tasks(register):
    register(NodeClassification())
    register(GraphClassification())


@hookimpl
def register_datasets(register):
    for name in ("cora", "citeseer", "pubmed"):
        register(name, partial(load_planetoid, dataset=name), PlanetoidOptions)
    for name in TU_DATASETS:
        register(name, partial(load_tu, dataset=name), TUOptions)
    register("karate", load_karate, None)
    register("graph", load_graph, GraphOptions)      # the user's own: node table + edge list
    register("graphs", load_graphs, GraphsOptions)   # the user's own: TU folder or JSONL


@hookimpl
def register_models(register):
    for name, (cls, config_class) in MODELS.items():
        register(name, make_builder(cls), config_class)
