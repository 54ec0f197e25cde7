"""Issue 20 (3, 4, 5, 11): a run context on every training event, declared loggers, stdout kept
for the command's output, and plugin commands through ``register_commands``."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import cli_in_fresh_interpreter, run_cli, with_plugin
from zoo import hookimpl
from zoo.core import api
from zoo.core.contract.catalogue import NamedEntry
from zoo.core.contract.errors import ZooError
from zoo.core.contract.plugins import get_zoo
from zoo.core.contract.toml_io import dumps_toml

OPTIONS = {"train": {"epochs": 2, "progress": False}, "data": {"limit": 64}, "export": {"enabled": False}}


def make_distribution(root: Path, name: str, module_source: str, manifest: str) -> dict:
    """An installed-looking third-party plugin on PYTHONPATH: package, zoo.toml, dist-info."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(module_source))
    (package / "zoo.toml").write_text(textwrap.dedent(manifest))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{name} = {name}\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n{name}/zoo.toml,,\n{info.name}/RECORD,,\n")
    # Keep the PYTHONPATH that found this zoo (a checkout, not necessarily the installed one).
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}


# -- 3. the run context ------------------------------------------------------------------------


class ContextRecorder:
    """Names ``ctx`` in every event, next to the older arguments."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    @hookimpl
    def on_train_start(self, ctx, model):
        ctx.state["recorder"] = ["start"]
        self.seen.append(("start", ctx))

    @hookimpl
    def on_epoch_end(self, ctx, epoch):
        ctx.state["recorder"].append(epoch)
        self.seen.append(("epoch", ctx))

    @hookimpl
    def on_checkpoint_saved(self, ctx, path):
        assert path.parent == ctx.path
        self.seen.append(("checkpoint", ctx))

    @hookimpl
    def on_train_end(self, run, ctx, summary):
        assert run.path == ctx.path
        self.seen.append(("end", ctx))


@pytest.mark.slow
def test_every_event_gets_the_run_context(tmp_path):
    recorder = ContextRecorder()
    out = tmp_path / "run"
    with_plugin(recorder, lambda: api.train("logistic", options=OPTIONS, out=str(out), log=None))
    kinds = {kind for kind, _ in recorder.seen}
    assert kinds == {"start", "epoch", "checkpoint", "end"}
    contexts = {id(ctx) for _, ctx in recorder.seen}
    assert len(contexts) == 1  # one context per run, kept from start to end
    ctx = recorder.seen[-1][1]
    assert ctx.path == out.resolve() or ctx.path == out
    assert (ctx.model_name, ctx.plugin, ctx.task) == ("logistic", "regression", "classification")
    assert ctx.dataset_name == ctx.config["data"]["name"] and ctx.dataset_name
    assert ctx.config["train"]["epochs"] == 2 and ctx.config["model"]["name"] == "logistic"
    assert (ctx.rank, ctx.world_size, ctx.resumed, ctx.loggers) == (0, 1, False, [])
    assert ctx.state["recorder"] == ["start", 1, 2]


class OwnRunsOnly:
    """A third-party tracker that writes only into runs of its own model (here: ``linear``)."""

    @hookimpl
    def on_epoch_end(self, ctx, epoch, metrics):
        if ctx.model_name != "linear":
            return
        with open(ctx.path / "own-log.csv", "a") as fh:
            fh.write(f"{epoch},{metrics['train_loss']}\n")


@pytest.mark.slow
def test_a_plugin_acts_only_on_its_own_runs(tmp_path):
    plugin = OwnRunsOnly()
    for model in ("logistic", "linear"):
        with_plugin(plugin, lambda: api.train(model, options=OPTIONS, out=str(tmp_path / model), log=None))
    assert not (tmp_path / "logistic" / "own-log.csv").exists()  # a built-in model's run: untouched
    assert len((tmp_path / "linear" / "own-log.csv").read_text().splitlines()) == 2


# -- 4. loggers are declared -------------------------------------------------------------------


def test_builtin_loggers_are_declared_by_their_plugins():
    from zoo.core.contract.catalogue import load_catalogue

    loggers = load_catalogue().loggers
    assert {n: e.plugin for n, e in loggers.items()} == {"tensorboard": "tensorboard", "mlflow": "mlflow"}
    from zoo.cli import main

    result = CliRunner().invoke(main, ["plugins", "--json"])
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tensorboard"]["loggers"] == ["tensorboard"] and rows["mlflow"]["loggers"] == ["mlflow"]
    assert rows["word2vec"]["commands"] == ["similar", "analogy"]


@pytest.mark.slow
def test_a_misspelt_logger_is_exit_2_with_the_valid_names(tmp_path):
    from zoo.cli import main

    result = CliRunner().invoke(main, ["train", "logistic", "--log", "tensorbaord", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: unknown logger 'tensorbaord'; did you mean: tensorboard? "
                                     "(valid: mlflow, tensorboard)")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ZooError, match="unknown logger 'nope'"):  # --set / config files too
        api.train("logistic", sets=('train.log=["nope"]',), options=OPTIONS, out=str(tmp_path / "s"), log=None)


PRINTING_LOGGER = """
    from zoo import hookimpl

    print("csvlog: imported")  # a plugin that talks on stdout, at import and in every hook

    @hookimpl
    def on_train_start(ctx):
        print("csvlog: start", ctx.model_name)

    @hookimpl
    def on_checkpoint_saved(path):
        print("csvlog: checkpoint", path)

    @hookimpl
    def on_epoch_end(ctx, epoch, metrics):
        print("csvlog: epoch", epoch)
        if ctx.logs_to("csvlog"):
            with open(ctx.path / "csvlog.csv", "a") as fh:
                fh.write(f"{epoch},{metrics['train_loss']}\\n")

    @hookimpl
    def on_train_end(summary):
        print("csvlog: end", summary["status"])
"""

CSVLOG_MANIFEST = dumps_toml({"loggers": {"csvlog": {"plugin": "csvlog",
                                                      "summary": "train_loss per epoch in RUN_DIR/csvlog.csv"}}})


@pytest.mark.slow
def test_a_third_party_logger_and_a_printing_plugin_keep_json_stdout(tmp_path):
    env = make_distribution(tmp_path, "csvlog", PRINTING_LOGGER, CSVLOG_MANIFEST)
    out = tmp_path / "run"
    result = run_cli("train", "linear", "--epochs", "2", "--set", "data.limit=64", "--no-export",
                     "--log", "csvlog", "--out", str(out), "-q", "--json", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # 5: the hooks' prints did not corrupt stdout
    assert summary["status"] == "finished"
    assert "csvlog: imported" in result.stderr and "csvlog: end finished" in result.stderr
    assert len((out / "csvlog.csv").read_text().splitlines()) == 2  # 4: --log csvlog enabled it
    plain = run_cli("train", "linear", "--epochs", "1", "--set", "data.limit=64", "--no-export",
                    "--out", str(tmp_path / "plain"), "-q", env=env)
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / "plain" / "csvlog.csv").exists()  # not enabled for this run


@pytest.mark.slow
def test_plugin_prints_go_to_stderr_in_process(tmp_path, capsys):
    class Chatty:
        @hookimpl
        def on_epoch_end(self, epoch):
            print("chatty epoch", epoch)

    with_plugin(Chatty(), lambda: api.train("logistic", options=OPTIONS, out=str(tmp_path / "r"), log=None))
    captured = capsys.readouterr()
    assert "chatty epoch 1" in captured.err and "chatty" not in captured.out


# -- 11. plugin commands ------------------------------------------------------------------------


@pytest.mark.slow
def test_help_lists_plugin_commands_without_importing_plugins_or_torch():
    printed, modules = cli_in_fresh_interpreter("--help")
    assert "torch" not in modules and not any(m.startswith("zoo.plugins") for m in modules)
    listed = {line.split()[0] for line in printed.splitlines() if line.startswith("  ")}
    assert {"similar", "analogy", "train"} <= listed
    assert "(word2vec plugin) Nearest neighbours" in printed


def test_similar_and_analogy_left_the_core_cli():
    from zoo import cli

    assert "similar" not in cli.main.commands and "analogy" not in cli.main.commands
    assert not hasattr(cli, "_print_ranked")
    assert "similar" not in Path(cli.__file__).read_text()


HELLO_PLUGIN = """
    import click
    from zoo import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command()
        @click.argument("who")
        def hello(who):
            '''Greet WHO.'''
            click.echo(f"hello {who}")
"""

HELLO_MANIFEST = dumps_toml({"commands": {"hello": {"plugin": "hello_plugin", "summary": "Greets someone"}}})


@pytest.mark.slow
def test_a_third_party_plugin_adds_a_command(tmp_path):
    env = make_distribution(tmp_path, "hello_plugin", HELLO_PLUGIN, HELLO_MANIFEST)
    helped = run_cli("--help", env=env)
    assert helped.returncode == 0 and "(hello_plugin plugin) Greets someone" in helped.stdout
    result = run_cli("hello", "world", env=env)
    assert (result.returncode, result.stdout) == (0, "hello world\n"), result.stderr
    disabled = run_cli("hello", "world", env={**env, "ZOO_DISABLE_PLUGINS": "hello_plugin"})
    assert disabled.returncode == 2 and "No such command 'hello'" in disabled.stderr


def _declare(monkeypatch, **commands):
    from zoo.core.contract import commands as plugin_commands

    entries = {name: NamedEntry(name, plugin, "") for name, plugin in commands.items()}
    monkeypatch.setattr(plugin_commands, "declared", lambda: entries)
    return plugin_commands


class _Adds:
    def __init__(self, *names: str) -> None:
        self.names = names

    @hookimpl
    def register_commands(self, cli):
        for name in self.names:
            cli.add_command(click.Command(name, callback=lambda: click.echo("ran")))


@pytest.mark.slow
@pytest.mark.parametrize("adds, declared, error", [
    (("extra",), {"ours": "adder"}, "adds command 'extra' that its manifest does not declare"),
    (("train",), {"train": "adder"}, "adds command 'train', which is a zoo command"),
    ((), {"ours": "adder"}, "declares command 'ours' ([commands.ours]) but its register_commands hook does not"),
])
def test_plugin_commands_are_checked(monkeypatch, adds, declared, error):
    commands = _declare(monkeypatch, **declared)
    zoo = get_zoo()
    plugin = _Adds(*adds)
    zoo.pm.register(plugin, name="adder")
    zoo.status["adder"] = type(zoo.status["regression"])("adder", "adder", "test", status="loaded")
    try:
        with pytest.raises(ZooError, match=re.escape(error)):
            commands.load(next(iter(declared)), {"train", "list"})
    finally:
        zoo.pm.unregister(plugin)
        del zoo.status["adder"]
