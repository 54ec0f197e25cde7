"""GNN family: spectral (ChebNet, GCN) and spatial (GraphSAGE, GAT, GIN, NN4G, DCNN, MoNet) graph
networks on one message-passing base, for node and graph classification.

A graph is ``x [N, F]`` plus ``edge_index [2, E]`` (int64, messages flow from row 0 to row 1);
a batch of graphs adds ``batch [N]``. All aggregation is ``index_add_`` / ``scatter_reduce`` on
plain tensors, so every model exports to ONNX with dynamic node and edge counts.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.gnn.data import (
    PlanetoidOptions,
    TUOptions,
    load_karate,
    load_planetoid,
    load_tu,
)
from zoo.plugins.gnn.models import MODELS, make_builder
from zoo.plugins.gnn.tasks import GraphClassification, NodeClassification


@hookimpl
def register_tasks(register):
    register(NodeClassification())
    register(GraphClassification())


@hookimpl
def register_datasets(register):
    register("cora", load_planetoid, PlanetoidOptions)
    register("mutag", load_tu, TUOptions)
    register("karate", load_karate, None)


@hookimpl
def register_models(register):
    for name, (cls, config_class) in MODELS.items():
        register(name, make_builder(cls), config_class)
