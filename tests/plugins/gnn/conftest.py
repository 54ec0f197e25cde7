"""Fixtures of the gnn data tests: tiny TU-format folders written at test time."""

from __future__ import annotations

import pytest


@pytest.fixture
def write_tu():
    """``write_tu(folder, name, labels=True, attributes=False, graphs=6)`` writes a TU-format set."""
    return _write_tu


def _write_tu(folder, name: str, labels: bool = True, attributes: bool = False, graphs: int = 6) -> None:
    """``graphs`` triangles and paths (classes 1 / -1 alternating), 3 nodes each, in TU format."""
    folder.mkdir(parents=True, exist_ok=True)
    edges, indicator, graph_labels, node_labels, attrs = [], [], [], [], []
    for g in range(graphs):
        first = 3 * g + 1
        pairs = [(0, 1), (1, 2)] + ([(2, 0)] if g % 2 == 0 else [])
        for a, b in pairs:
            edges += [f"{first + a}, {first + b}", f"{first + b}, {first + a}"]
        indicator += [str(g + 1)] * 3
        graph_labels.append("1" if g % 2 == 0 else "-1")
        node_labels += ["2", "3", "5"]
        attrs += [f"{0.5 * g},{g}.0"] * 3
    files = {"A": edges, "graph_indicator": indicator, "graph_labels": graph_labels}
    if labels:
        files["node_labels"] = node_labels
    if attributes:
        files["node_attributes"] = attrs
    for table, lines in files.items():
        (folder / f"{name}_{table}.txt").write_text("\n".join(lines) + "\n")
