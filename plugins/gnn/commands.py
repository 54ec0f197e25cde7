"""``zoo sample``: the GNN family's graph-generation command.

Added through the ``register_commands`` hook and declared under ``[commands.sample]`` in
``registry.toml``. It runs the sampling loop of :mod:`zoo.plugins.gnn.graphgen_sample` around the
run's ONNX step networks in onnxruntime (no torch model is built) and writes the graphs as JSONL
edge lists (one ``{"num_nodes": n, "edges": [[u, v], ...]}`` per line, nodes numbered in generation
order) and a PNG grid of their drawings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from zoo.core.contract.errors import ZooError

COUNT = click.IntRange(1, 100_000)


def write_jsonl(graphs, path: Path) -> None:
    lines = [json.dumps({"num_nodes": g.number_of_nodes(), "edges": [[int(u), int(v)] for u, v in g.edges()]})
             for g in graphs]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def draw_grid(graphs, path: Path, seed: int = 0) -> bool:
    """Drawings of ``graphs`` (spring layout) in a square grid; ``False`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    import networkx as nx

    cols = max(1, math.ceil(math.sqrt(len(graphs))))
    rows = math.ceil(len(graphs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, graph in zip(axes.flat, graphs):
        nx.draw_networkx(graph, pos=nx.spring_layout(graph, seed=seed), ax=ax, node_size=25,
                         with_labels=False, width=0.6, node_color="#3b6ea5")
        ax.set_title(f"{graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-n", "--count", type=COUNT, default=16, show_default=True, help="How many graphs to generate.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seed of the sampler.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for graphs.jsonl and graphs.png (default: RUN_DIR/samples).")
@click.option("--json", "as_json", is_flag=True, help="Print the paths and graph sizes as JSON.")
def sample(run_dir, count, seed, out, as_json) -> None:
    """Generate graphs from a graph-generation run (graphrnn, graphrnn-s) with its ONNX files."""
    from zoo.plugins.gnn.graphgen_sample import sample_onnx

    if not Path(run_dir).is_dir():
        raise ZooError(f"{run_dir}: no such run directory")
    graphs = sample_onnx(run_dir, count, seed=seed)
    folder = Path(out) if out else Path(run_dir) / "samples"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(f"cannot create {folder}: {err.strerror}") from None
    jsonl, png = folder / "graphs.jsonl", folder / "graphs.png"
    write_jsonl(graphs, jsonl)
    drawn = draw_grid(graphs, png, seed=seed)
    report = {"graphs": str(jsonl), "png": str(png) if drawn else None,
              "nodes": [g.number_of_nodes() for g in graphs], "edges": [g.number_of_edges() for g in graphs]}
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{len(graphs)} graphs ({min(report['nodes'])}–{max(report['nodes'])} nodes) → {jsonl}")
    click.echo(f"drawings → {png}" if drawn else "drawings skipped (pip install matplotlib)")


def add_commands(cli: click.Group) -> None:
    """The ``register_commands`` hook's work: add ``sample`` to ``cli``."""
    cli.add_command(sample)
