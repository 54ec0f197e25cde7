"""``zoo similar`` and ``zoo analogy``: the word2vec family's own commands.

Added to ``zoo`` through the ``register_commands`` hook and declared under ``[commands.similar]``
and ``[commands.analogy]`` in ``registry.toml`` (which is what ``zoo --help`` lists, without
importing this plugin). Both read ``vectors.txt`` of a finished skip-gram, CBOW or GloVe run.
"""

from __future__ import annotations

import click
from zoo.core.contract.errors import ZooError

TOPN = click.IntRange(1, 1_000_000)


def _vectors(run_dir: str, command: str):
    """The word vectors of ``run_dir``; a run of another family is a one-line error."""
    from zoo.core.train.runs import Run
    from zoo.plugins.word2vec import MODELS
    from zoo.plugins.word2vec.evaluate import WordVectors

    run = Run.open(run_dir)
    model = run.read_config().get("model", {}).get("name")
    if model not in MODELS:
        raise ZooError(f"{run_dir} is a run of {model!r}; `zoo {command}` needs a run of "
                       f"{', '.join(MODELS)}")
    return WordVectors.from_run(run.path)


def _print_ranked(rows) -> None:
    for word, score in rows:
        click.echo(f"{word}\t{score:.4f}")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("word")
@click.option("--topn", type=TOPN, default=10, show_default=True, help="How many neighbours.")
def similar(run_dir, word, topn) -> None:
    """Nearest neighbours of WORD (cosine) in the word vectors of RUN_DIR."""
    _print_ranked(_vectors(run_dir, "similar").most_similar(word, topn=topn))


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("a")
@click.argument("b")
@click.argument("c")
@click.option("--topn", type=TOPN, default=5, show_default=True, help="How many answers.")
def analogy(run_dir, a, b, c, topn) -> None:
    """A is to B as C is to ?  (3CosAdd: nearest to B - A + C in RUN_DIR's word vectors)."""
    _print_ranked(_vectors(run_dir, "analogy").analogy(a, b, c, topn=topn))


def add_commands(cli: click.Group) -> None:
    """The ``register_commands`` hook's work: add ``similar`` and ``analogy`` to ``cli``."""
    cli.add_command(similar)
    cli.add_command(analogy)
