"""The ``zoo`` command line: parse, call ``zoo.core``, render. No ML logic lives here.

Module-level imports are limited to click and the TOML catalogue, so ``zoo list`` and
``zoo info`` never import torch; every other command imports what it needs inside its body.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback

import click
from zoo import __version__
from zoo.core.contract.catalogue import load_catalogue
from zoo.core.contract.errors import ZooError


class ZooGroup(click.Group):
    """Turns ZooError into a one-line message and its exit code; ``--debug`` shows tracebacks.

    Also the home of plugin commands (``register_commands``): ``zoo --help`` lists the commands
    declared in manifests (``[commands.NAME]``) without importing any plugin; ``zoo NAME`` loads
    the plugins and takes the command from its plugin's hook (:mod:`zoo.core.contract.commands`).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        from zoo.core.contract.commands import declared

        return sorted({*self.commands, *declared()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        from zoo.core.contract import commands

        if name not in commands.declared():
            return None
        return commands.load(name, set(self.commands))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``zoo --help``: plugin commands from their declarations only."""
        from zoo.core.contract.commands import declared, help_stub

        plugin = declared()
        listed = [(n, self.commands.get(n) or help_stub(plugin[n])) for n in self.list_commands(ctx)]
        listed = [(n, c) for n, c in listed if not c.hidden]
        if listed:
            limit = formatter.width - 6 - max(len(n) for n, _ in listed)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in listed])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ZooError as err:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            click.echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `zoo list | head`: the reader has all it wanted; exit as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
            ctx.exit(141)
        except OSError as err:  # a file the user named: missing, unreadable, disk full, read-only
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            where = f"{err.filename}: " if err.filename else ""
            click.echo(f"error: {where}{err.strerror or err}", err=True)
            ctx.exit(2)


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


#: ``--json`` of the commands that list or show something (each use adds its own option).
_json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _warn_broken_manifests() -> None:
    """One stderr line per third-party plugin whose manifest is broken (its models are missing)."""
    from zoo.core.contract import discovery

    import os

    load_catalogue()  # reads (and records the errors of) every manifest
    if os.environ.get("RANK", "0") != "0":
        return  # a distributed worker other than the first: one warning per run, not per process
    for line in discovery.manifest_warnings():
        click.echo(f"warning: {line}", err=True)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """zoo: a declarative model zoo. Families of models are plugins; registry.toml lists them."""
    ctx.ensure_object(dict)["debug"] = debug
    if debug:
        import os

        os.environ["ZOO_DEBUG"] = "1"


# -- catalogue (no torch) ----------------------------------------------------------------------


@main.command("list")
@click.argument("pattern", required=False)
@click.option("--plugin", help="Only models of this plugin.")
@click.option("--task", help="Only models for this task.")
@click.option("--tag", help="Only models with this tag.")
@click.option("--datasets", "show_datasets", is_flag=True, help="List datasets instead of models.")
@_json_option
def list_models(pattern, plugin, task, tag, show_datasets, as_json) -> None:
    """List the models (or datasets) of the catalogue, optionally filtered."""
    catalogue = load_catalogue()
    _warn_broken_manifests()
    if show_datasets:
        rows = [d for d in catalogue.datasets.values() if not pattern or pattern in d.name]
        if as_json:
            _emit_json([d.as_dict() for d in rows])
            return
        width = max((len(d.name) for d in rows), default=4)
        for d in rows:
            click.echo(f"{d.name:<{width}}  {d.task:<26}  {d.summary}")
        return
    models = catalogue.filter(pattern, plugin, task, tag)
    if as_json:
        _emit_json([m.as_dict() for m in models])
        return
    if not models:
        click.echo("no models match", err=True)
        return
    width = max(len(m.name) for m in models)
    for m in models:
        recipes = f" [recipes: {', '.join(m.recipes)}]" if m.recipes else ""
        click.echo(f"{m.name:<{width}}  {m.plugin:<11} {'/'.join(m.tasks):<26} {m.summary}{recipes}")


@main.command()
@click.argument("model")
@_json_option
def info(model, as_json) -> None:
    """Show a model's catalogue entry: task, dataset, paper, defaults, reference result."""
    entry = load_catalogue().resolve_trainable(model)
    if as_json:
        _emit_json(entry.as_dict())
        return
    click.echo(f"{entry.name}  ({entry.plugin} plugin, {entry.source})")
    click.echo(f"  {entry.summary}")
    click.echo(f"  task:     {', '.join(entry.tasks)}")
    click.echo(f"  dataset:  {entry.dataset}")
    if entry.paper:
        click.echo(f"  paper:    {entry.paper}")
    if entry.tags:
        click.echo(f"  tags:     {', '.join(entry.tags)}")
    if entry.reference:
        ref = entry.reference
        click.echo(f"  reference: {ref.get('metric')} = {ref.get('value')} ({ref.get('source', '')})")
    if entry.defaults:
        from zoo.core.contract.toml_io import dumps_toml

        click.echo("  defaults:")
        for line in dumps_toml(entry.defaults).splitlines():
            click.echo(f"    {line}")
    for dataset, recipe in entry.recipes.items():  # merged over the defaults for --dataset DATASET
        from zoo.core.contract.toml_io import dumps_toml

        click.echo(f"  recipe for --dataset {dataset}:")
        for line in dumps_toml(recipe).splitlines():
            click.echo(f"    {line}")


# -- public datasets: zoo data (no torch) --------------------------------------------------------


@main.group("data")
def data_group() -> None:
    """Public datasets: list, fetch into the cache (checksums verified), verify, locate, remove."""


@data_group.command("list")
@_json_option
def data_list(as_json) -> None:
    """Every declared dataset: task, download size, license, cached or not, checksums published or not."""
    from zoo.core.train import fetch

    rows = [fetch.status(d) for d in load_catalogue().datasets.values()]
    if as_json:
        _emit_json(rows)
        return
    width = max((len(r["name"]) for r in rows), default=4)
    click.echo(f"{'name':<{width}}  {'task':<24}  {'size':>8}  {'license':<16}  {'cached':<6}  checksums")
    for r in rows:
        cached = ("yes" if r["cached"] else "no") if r["checksums"] else "-"
        click.echo(f"{r['name']:<{width}}  {r['task']:<24}  {fetch.human_size(r['size']):>8}  "
                   f"{_clip(r['license'] or '-', 16):<16}  {cached:<6}  {r['checksums'] or '- (no download)'}")


@data_group.command("info")
@click.argument("name")
@_json_option
def data_info(name, as_json) -> None:
    """A dataset's sources, checksums and where they were published, license, citation, cache."""
    from zoo.core.train import fetch

    data = fetch.info(name)
    if as_json:
        _emit_json(data)
        return
    click.echo(f"{data['name']}  ({data['task']}, plugin {data['plugin']})")
    click.echo(f"  {data['summary']}")
    for key in ("license", "citation", "homepage"):
        if data[key]:
            click.echo(f"  {key + ':':<10}{data[key]}")
    if ref := data.get("reference"):
        click.echo(f"  reference: {ref.get('model', '')} {ref.get('metric', '')} {ref.get('value', '')} "
                   f"({ref.get('source', '')})")
    if not data["files"]:
        click.echo("  files:    none (generated, or comes with a package)")
        return
    click.echo(f"  found:    {data['found'] or 'not found'} (cache: {data['cache']})")
    for f in data["files"]:
        checksum = f.get("sha256") and f"sha256:{f['sha256']}" or f.get("md5") and f"md5:{f['md5']}"
        click.echo(f"  - {f['path']}  ({fetch.human_size(f.get('size'))}, {'cached' if f['cached'] else 'not cached'})")
        click.echo(f"      url:      {f['url']}")
        click.echo(f"      checksum: {checksum or 'none published (unverified)'}"
                   + (f"  from {f['checksum_source']}" if f.get("checksum_source") else ""))
        if f.get("unpack"):
            click.echo(f"      unpack:   {f['unpack']} -> {', '.join(f.get('provides', [])) or 'its folder'}")


@data_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--mirror", metavar="URL|DIR",
              help="Fetch from this folder (DIR/<path>, laid out like the cache) or base URL instead.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def data_fetch(names, mirror, quiet) -> None:
    """Download datasets into the cache, checked against their published checksums."""
    from zoo.core.train import fetch

    entries = [fetch.declared(n) for n in names]  # every name checked before the first download
    for entry in entries:
        root = fetch.fetch(entry.name, mirror=mirror, progress=not quiet)
        click.echo(f"{entry.name}: {root}")


@data_group.command("verify")
@click.argument("name", required=False)
@_json_option
def data_verify(name, as_json) -> None:
    """Re-hash cached files (of NAME, or of every cached dataset) against the published checksums."""
    from zoo.core.train import fetch

    rows = fetch.verify(name)
    if as_json:
        _emit_json(rows)
    else:
        for r in rows:
            detail = f" (expected {r['expected']}, got {r['got']})" if r["status"] == "mismatch" else (
                f" ({r['got']})" if r["status"] == "unverified" else "")
            click.echo(f"{r['dataset']}  {r['path']}  {r['status']}{detail}")
        if not rows:
            click.echo("nothing cached", err=True)
    bad = [r for r in rows if r["status"] in ("mismatch", "missing")]
    if bad:
        names = " ".join(dict.fromkeys(r["dataset"] for r in bad))
        raise ZooError(f"{len(bad)} cached file(s) missing or not matching their checksum "
                       f"(first: {bad[0]['path']}); run `zoo data fetch {names}`")


@data_group.command("path")
@click.argument("name")
@click.option("--data-dir", help="Also look in this folder first (as `zoo train --data-dir`).")
def data_path(name, data_dir) -> None:
    """The data root holding NAME's files (--data-dir, $ZOO_DATA_DIR, then the cache)."""
    from zoo.core.train import fetch

    click.echo(str(fetch.path(name, data_dir)))


@data_group.command("rm")
@click.argument("name")
def data_rm(name) -> None:
    """Delete NAME's files from the cache (never from --data-dir or $ZOO_DATA_DIR folders)."""
    from zoo.core.train import fetch

    removed = fetch.remove(name)
    click.echo(f"{name}: removed {len(removed)} file(s) from {fetch.cache_root()}")


# -- plugins and configs -----------------------------------------------------------------------


@main.command()
@_json_option
def plugins(as_json) -> None:
    """Show every plugin: source, status (loaded / failed / disabled), models, hooks."""
    from zoo.core.contract.plugins import get_zoo

    zoo = get_zoo()
    catalogue = load_catalogue()
    declared = {s.name: {kind: [n for n, e in getattr(catalogue, kind).items() if e.plugin == s.name]
                         for kind in ("loggers", "commands")} for s in zoo.status.values()}
    rows = [{**vars(s), **declared[s.name]} for s in zoo.status.values()]
    if as_json:
        _emit_json(rows)
        return
    width = max(len(s.name) for s in zoo.status.values())
    for s in zoo.status.values():
        click.echo(f"{s.name:<{width}}  {s.status:<8}  {s.version:<8}  {s.source}")
        if s.status == "loaded":
            for label, items in (("models", s.models), ("datasets", s.datasets), ("tasks", s.tasks),
                                 ("loggers", declared[s.name]["loggers"]),
                                 ("commands", declared[s.name]["commands"]), ("hooks", s.hooks)):
                if items:
                    click.echo(f"{'':<{width}}  {label}: {', '.join(items)}")
            for problem in s.problems:
                click.echo(f"{'':<{width}}  problem: {problem}")
        else:
            click.echo(f"{'':<{width}}  {s.error}")


@main.group(invoke_without_command=True)
@click.option("--root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder holding run directories.")
@click.option("--model", help="Only runs of this model.")
@click.option("--sort", "sort_by", help="Sort by this test metric (descending), e.g. accuracy.")
@_json_option
@click.pass_context
def runs(ctx, root, model, sort_by, as_json) -> None:
    """A table of the runs under --root; `zoo runs show RUN`, `zoo runs compare RUN RUN...`."""
    if ctx.invoked_subcommand is not None:
        return
    from zoo.core.train.runs import describe, find_runs

    rows = [describe(r) for r in find_runs(root)]
    if model:
        rows = [r for r in rows if r["model"] == model]
    if sort_by:
        rows.sort(key=lambda r: r["metrics"].get(sort_by, float("-inf")), reverse=True)
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"no runs under {root}", err=True)
        return
    keys = sorted({k for r in rows for k in r["metrics"]})[:4]
    header = ["run", "model", "dataset", "date", "status", "epochs", "device", "wall s", "parity", *keys]
    table = [[r["run"], r["model"], r["dataset"], (r["started"] or "-").replace("T", " ")[:16], r["status"],
              str(r["epochs"]), str(r["device"] or "-"),
              f"{r['wall_seconds']:.1f}" if r["wall_seconds"] else "-",
              f"{r['parity']:.1e}" if r["parity"] is not None else
              "export failed" if r.get("export") == "failed" else "-",
              *[f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "-" for k in keys]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    for line in [header, *table]:
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())


@runs.command("show")
@click.argument("run_dir", type=click.Path(file_okay=False))
@_json_option
def runs_show(run_dir, as_json) -> None:
    """A run's config, per-epoch metrics, test metrics and files (RUN_DIR or hub:NAME[:TAG])."""
    from zoo.core.hub import resolve_target
    from zoo.core.train.runs import Run, describe
    from zoo.core.contract.toml_io import dumps_toml

    run = Run.open(resolve_target(run_dir, log=_stderr))
    row = describe(run)
    row["config"] = run.read_config()
    row["history"] = run.read_metrics()
    row["files"] = sorted(p.name for p in run.path.iterdir() if p.is_file())
    if as_json:
        _emit_json(row)
        return
    click.echo(f"{row['run']}: {row['model']} on {row['dataset']} ({row['status']}, {row['epochs']} epochs)")
    click.echo("test: " + "  ".join(f"{k} {v:.4f}" for k, v in row["metrics"].items()))
    if row.get("export") == "failed":
        click.echo(f"export: failed: {run.read_summary().get('export_error', '')} (see {run.path / 'export.log'})")
    for record in row["history"]:
        click.echo("  " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
    click.echo("files: " + ", ".join(row["files"]))
    click.echo(dumps_toml(row["config"]), nl=False)


@runs.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@_json_option
def runs_compare(run_dirs, as_json) -> None:
    """Config values that differ between runs (or hub:NAME[:TAG]), and their test metrics side by side."""
    from zoo.core.hub import resolve_target
    from zoo.core.train.runs import Run, describe
    from zoo.core.contract.toml_io import flatten

    loaded = [Run.open(resolve_target(d, log=_stderr)) for d in run_dirs]

    configs = [flatten(r.read_config()) for r in loaded]
    keys = sorted({k for c in configs for k in c})
    differ = {k: [c.get(k) for c in configs] for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1}
    metrics = [describe(r)["metrics"] for r in loaded]
    names = sorted({k for m in metrics for k in m})
    result = {"runs": [r.name for r in loaded], "config": differ,
              "metrics": {k: [m.get(k) for m in metrics] for k in names}}
    if as_json:
        _emit_json(result)
        return
    width = max([len(k) for k in [*differ, *names]] + [6])
    click.echo(" " * width + "  " + "  ".join(f"{n:>14}" for n in result["runs"]))
    for key, values in differ.items():
        click.echo(f"{key:<{width}}  " + "  ".join(f"{json.dumps(v):>14}" for v in values))
    for key, values in result["metrics"].items():
        click.echo(f"{key:<{width}}  " + "  ".join(f"{v:>14.4f}" if v is not None else f"{'-':>14}" for v in values))


@main.command()
@_json_option
def doctor(as_json) -> None:
    """Check every plugin: loading, hook signatures, manifests, declared vs registered, defaults.

    Exits with 1 when a check fails.
    """
    from zoo.core.doctor import run_checks

    findings = run_checks()
    if as_json:
        _emit_json([vars(f) for f in findings])
    else:
        for f in findings:
            click.echo(f"{'ok ' if f.ok else 'FAIL'}  {f.plugin:<12} {f.check:<12} {f.message}")
    failed = sum(not f.ok for f in findings)
    if not as_json:
        click.echo(f"{failed} problem(s)" if failed else "all checks passed", err=True)
    if failed:
        sys.exit(1)


@main.command("new-plugin")
@click.argument("name")
@click.option("--dir", "directory", default=".", type=click.Path(file_okay=False),
              help="Where to create the zoo-NAME folder.")
def new_plugin(name, directory) -> None:
    """Write a pip-installable plugin package zoo-NAME (manifest, model, dataset, tests, README).

    NAME may use dashes or underscores: `my-family` gives the distribution zoo-my-family and the
    module zoo_my_family.
    """
    import shlex

    from zoo.core.scaffold import PluginNames
    from zoo.core.scaffold import new_plugin as scaffold

    root = scaffold(name, directory)
    names = PluginNames.derive(name)
    click.echo(f"created {root}: distribution {names.distribution}, module {names.module}, plugin "
               f"(entry point) {names.plugin}, model {names.model}, dataset {names.dataset}")
    where = shlex.quote(str(root) if root.is_absolute() else f"./{root}")  # pip: a path, not a name
    click.echo("next steps:")
    for step in (f"pip install -e {where}", f"zoo list --plugin {shlex.quote(names.plugin)}",
                 f"pytest {shlex.quote(str(root / 'tests'))}", f"zoo train {names.model} --out runs/{names.model}"):
        click.echo(f"  {step}")


def _train_options(epochs, dataset, device, seed, lr, batch_size, data_dir, no_export, quiet) -> dict:
    """The train command's shortcut options as config overrides: each one given, at its ``section.key``."""
    given = {("train", "epochs"): epochs, ("train", "batch_size"): batch_size, ("train", "device"): device,
             ("train", "seed"): seed, ("train", "progress"): False if quiet else None, ("optim", "lr"): lr,
             ("data", "name"): dataset, ("data", "data_dir"): data_dir,
             ("export", "enabled"): False if no_export else None}
    options: dict = {}
    for (section, key), value in given.items():
        if value is not None:
            options.setdefault(section, {})[key] = value
    return options


@main.command("config")
@click.argument("model")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file to merge.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override, e.g. optim.lr=0.01.")
@click.option("--dataset", help="data.name, as `zoo train --dataset` (its recipe and options).")
@click.option("--schema", is_flag=True, help="Print the JSON schema of the config instead.")
def config_cmd(model, config_file, sets, dataset, schema) -> None:
    """Print MODEL's resolved config as TOML (defaults < --config < --set), with its dataset's options."""
    from zoo.core import api

    options = {"data": {"name": dataset}} if dataset else None
    if schema:
        _emit_json(api.config_schema(model, config_file=config_file, sets=sets, options=options))
        return
    from zoo.core.contract.toml_io import dumps_toml

    click.echo(dumps_toml(api.show_config(model, config_file=config_file, sets=sets, options=options)), nl=False)


# -- training, export, prediction ---------------------------------------------------------------


@main.command()
@click.argument("model", required=False)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config value (TOML literal), e.g. --set optim.lr=0.01. Repeatable.")
@click.option("--epochs", type=int, help="train.epochs")
@click.option("--dataset", help="data.name (see `zoo list --datasets`).")
@click.option("--data-dir", help="data.data_dir: folder with local dataset files.")
@click.option("--device", help="train.device: auto, cpu, cuda, cuda:N.")
@click.option("--seed", type=int, help="train.seed")
@click.option("--lr", type=float, help="optim.lr")
@click.option("--batch-size", type=int, help="train.batch_size")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/MODEL-TIME).")
@click.option("--resume", type=click.Path(file_okay=False),
              help="Continue the run in this directory (or finish its test and export). --epochs, "
              "--lr, --set optim.*/schedule.*/train.*/export.* apply; model, data, optimizer name, "
              "seed and batch size cannot change.")
@click.option("--force", is_flag=True, help="Use an --out folder that is not empty (and not a run).")
@click.option("--init", "init", metavar="RUN_DIR|hub:NAME[:TAG]",
              help="train.init: fine-tune from these weights (pulled and verified for hub:); every "
              "tensor must fit: re-size a different head with --set model.*.")
@click.option("--no-export", is_flag=True, help="Skip the ONNX export.")
@click.option("--offline", is_flag=True,
              help="Never download: a public dataset missing locally is an error (also ZOO_OFFLINE=1).")
@click.option("--log", "loggers", multiple=True, metavar="NAME",
              help="train.log: enable a declared logger ([loggers.NAME] of a plugin), e.g. --log "
              "tensorboard or --log mlflow (`zoo plugins` lists them). Repeatable.")
@click.option("--quiet", "-q", is_flag=True, help="No per-epoch lines or progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON at the end.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]),
              help="train.precision: autocast to bf16 (CUDA/CPU) or fp16 with gradient scaling (CUDA).")
@click.option("--compile", "compile_", is_flag=True, default=None,
              help="train.compile: torch.compile the model (eager fallback with a warning).")
@click.option("--compile-mode", type=click.Choice(["default", "reduce-overhead", "max-autotune"]),
              help="train.compile_mode (implies --compile); reduce-overhead = CUDA graphs.")
@click.option("--nproc-per-node", type=click.IntRange(1, 1024),
              help="Data-parallel training in N processes per node through torchrun + DDP (gloo on "
              "CPU, NCCL on CUDA: one GPU each); --batch-size is the global batch.")
@click.option("--nnodes", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="Number of nodes (with --nproc-per-node; run the same command on every node).")
@click.option("--node-rank", type=click.IntRange(0, 100_000), help="This node's rank (multi-node).")
@click.option("--rdzv-endpoint", metavar="HOST:PORT",
              help="Rendezvous address shared by all nodes (needed with --nnodes > 1).")
@click.option("--rdzv-id", metavar="ID", help="Job id for the rendezvous (default: zoo).")
@click.pass_context
def train(ctx, model, config_file, sets, epochs, dataset, data_dir, device, seed, lr, batch_size, out,
          resume, force, init, no_export, offline, loggers, quiet, as_json, precision, compile_, compile_mode, nproc_per_node,
          nnodes, node_rank, rdzv_endpoint, rdzv_id) -> None:
    """Train MODEL (or a PLUGIN's first model), test it and export a parity-checked ONNX file.

    Config merge order: model defaults < --config FILE < --set KEY=VALUE < explicit options.
    With --nproc-per-node N the command re-runs itself in N worker processes through
    `python -m torch.distributed.run` (the same as `torchrun --nproc-per-node N -m zoo train ...`).
    """
    from zoo.core import api

    if nproc_per_node is not None:
        from zoo.core.train.distributed import launch

        ctx.exit(launch(_worker_argv(ctx), nproc_per_node, nnodes, node_rank, rdzv_endpoint, rdzv_id))
    _warn_broken_manifests()
    if nnodes > 1 or node_rank is not None or rdzv_endpoint or rdzv_id:
        raise ZooError("--nnodes/--node-rank/--rdzv-endpoint/--rdzv-id need --nproc-per-node")
    options = _train_options(epochs, dataset, device, seed, lr, batch_size, data_dir, no_export, quiet)
    if loggers:
        for name in loggers:  # a typo is exit 2 at once, before any plugin or torch is loaded
            load_catalogue().logger(name)
        options.setdefault("train", {})["log"] = list(loggers)
    if precision is not None:
        options.setdefault("train", {})["precision"] = precision
    if init is not None:
        options.setdefault("train", {})["init"] = init
    if compile_ or compile_mode is not None:
        options.setdefault("train", {})["compile"] = True
    if compile_mode is not None:
        options.setdefault("train", {})["compile_mode"] = compile_mode
    log = None if (quiet or as_json) else (lambda line: click.echo(line, err=True))
    from zoo.core.train.fetch import offline as offline_mode

    # stdout is this command's output (the --json summary): whatever the run prints goes to stderr.
    with offline_mode(bool(offline)), contextlib.redirect_stdout(sys.stderr):
        summary = api.train(model, config_file=config_file, sets=sets, options=options, out=out,
                            resume=resume, log=log, force=force)
    if summary.get("rank", 0) > 0:  # a torchrun worker other than rank 0: rank 0 reports
        return
    if as_json:
        _emit_json(summary)
        return
    run_dir = summary.get("onnx") and str(summary["onnx"]).rsplit("/", 1)[0]
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items())
    click.echo(f"{summary['model']} on {summary['dataset']}: {metrics}")
    if summary.get("learned"):
        click.echo("learned: " + json.dumps(summary["learned"]))
    if summary.get("onnx"):
        click.echo(f"onnx: {summary['onnx']} (parity {summary['parity']:.2e})")
    elif run_dir:
        click.echo(f"run: {run_dir}")


def _worker_argv(ctx: click.Context) -> list[str]:
    """The `zoo train` command line of a worker: this command's options minus the launcher's."""
    from zoo.core.train.distributed import LAUNCH_OPTIONS

    argv = ["--debug"] if ctx.obj and ctx.obj.get("debug") else []
    argv.append(ctx.info_name or "train")
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in LAUNCH_OPTIONS or param.name == "nnodes" or value is None or value is False:
            continue
        if isinstance(param, click.Argument):
            argv.append(str(value))
        elif getattr(param, "is_flag", False):
            argv.append(param.opts[0])
        elif getattr(param, "multiple", False):
            for item in value:
                argv += [param.opts[0], str(item)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


@main.command("export")
@click.argument("run_dir", metavar="RUN_DIR|hub:NAME[:TAG]")
@click.option("--opset", type=click.IntRange(17, 23), help="ONNX opset (default: the run's export.opset).")
@click.option("--triton", "triton_repo", type=click.Path(file_okay=False),
              help="Also write a Triton model repository entry into this folder.")
@click.option("--triton-name", help="Model name in the Triton repository (default: the run folder's name).")
@click.option("--triton-max-batch", type=click.IntRange(0, 1 << 20), default=64, show_default=True,
              help="Triton max_batch_size (0 disables batching).")
@click.option("--triton-gpu", is_flag=True, help="instance_group of KIND_GPU instead of KIND_CPU.")
def export_cmd(run_dir, opset, triton_repo, triton_name, triton_max_batch, triton_gpu) -> None:
    """Re-export RUN_DIR's best checkpoint to RUN_DIR/model.onnx, with the parity check.

    A pulled model (hub:NAME[:TAG]) is not re-exported: its verified, parity-checked model.onnx
    goes to --triton as it is (`zoo pull NAME --out DIR` gives a run directory to re-export).
    """
    from pathlib import Path

    from zoo.core import api
    from zoo.core.hub import HubRef, is_hub_target, resolve_target

    if is_hub_target(run_dir):
        if opset is not None:
            raise ZooError("--opset: a pulled model is read-only; `zoo pull NAME --out DIR`, then "
                           "`zoo export DIR --opset N`")
        name = HubRef.parse(run_dir).name
        run_dir = resolve_target(run_dir, log=_stderr)
        summary = {"onnx": str(Path(run_dir) / "model.onnx"),
                   "parity": json.loads((Path(run_dir) / "summary.json").read_text())["parity"]}
    else:
        name = Path(run_dir).resolve().name
        summary = api.reexport(run_dir, opset)
    click.echo(f"onnx: {summary['onnx']} (parity {summary['parity']:.2e})")
    if triton_repo:
        from zoo.core.deploy.triton import write_repository

        folder = write_repository(Path(summary["onnx"]), Path(triton_repo),
                                  triton_name or name, triton_max_batch, triton_gpu)
        click.echo(f"triton: {folder}/config.pbtxt and {folder}/1/model.onnx")


@main.command()
@click.argument("targets", nargs=-1, required=True, metavar="[NAME=]RUN_DIR|MODEL.onnx|hub:NAME[:TAG]...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-batch", type=click.IntRange(1, 1 << 16), default=32, show_default=True,
              help="Dynamic batching: most rows merged into one onnxruntime call (1 = off).")
@click.option("--max-delay-ms", type=click.FloatRange(0, 10_000), default=2.0, show_default=True,
              help="Dynamic batching: longest a request is held back for company, from its arrival. "
                   "A request that finds the model idle runs at once; requests that arrive during a "
                   "call go together in the next, which waits (at most this long) for the clients "
                   "just answered to come back. Time waiting for a busy model is not bounded by it.")
@click.option("--max-body-mb", type=click.FloatRange(0.001, 4096), default=64.0, show_default=True,
              help="Largest request body, and largest tensor a request's shapes may claim (413 beyond).")
@click.option("--max-json-mb", type=click.FloatRange(0.001, 4096), default=8.0, show_default=True,
              help="Largest JSON part of a request (413 beyond): JSON tensors take up to 20x their size "
                   "in memory while decoded; large tensors go as binary data (tritonclient's default).")
@click.option("--read-timeout-s", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Each request, headers and body, must arrive within this long of the connection being "
                   "ready for it (beyond: 408, or the connection closed).")
@click.option("--idle-timeout-s", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True,
              help="Close a keep-alive connection idle this long.")
@click.option("--api-key", envvar="ZOO_API_KEY", metavar="KEY",
              help="Require 'Authorization: Bearer KEY' on every route but /v2/health/* (401 otherwise). "
                   "Prefer the ZOO_API_KEY environment variable: arguments show in ps.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS with this PEM certificate (chain).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False),
              help="The unencrypted PEM private key of --ssl-certfile (if not inside it).")
@click.option("--max-connections", type=click.IntRange(1, 1 << 20), default=1024, show_default=True,
              help="Open connections (or requests in flight) beyond which a request is answered 503 at once.")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="onnxruntime intra-op threads per model (default: one per core). On a small CPU "
                   "machine 1 leaves a core to the HTTP event loop and serves more requests/s.")
def serve(targets, host, port, max_batch, max_delay_ms, max_body_mb, max_json_mb, read_timeout_s,
          idle_timeout_s, api_key, ssl_certfile, ssl_keyfile, max_connections, threads) -> None:
    """Serve exported models over the Open Inference Protocol (KServe v2, as Triton speaks it).

    Malformed requests get a 400 with a one-line JSON error; a busy port is exit 2.
    """
    from zoo.core.hub import serve_targets
    from zoo.core.serve import serve as run_server

    run_server(serve_targets(list(targets)), host, port, max_batch, max_delay_ms, int(max_body_mb * 1024 * 1024),
               log=lambda line: click.echo(line, err=True), threads=threads,
               max_json=int(max_json_mb * 1024 * 1024), api_key=api_key, ssl_certfile=ssl_certfile,
               ssl_keyfile=ssl_keyfile, idle_timeout=idle_timeout_s, read_timeout=read_timeout_s,
               max_connections=max_connections)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--index", "-i", type=int, default=0, show_default=True, help="Test sample to explain.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the pictures (default RUN_DIR/explain-I).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def explain(run_dir, index, out, as_json) -> None:
    """Write pictures of what RUN_DIR's model learned (e.g. filters, saliency) for one test sample."""
    from zoo.core import api

    report = api.explain(run_dir, index, out)
    if as_json:
        _emit_json(report)
        return
    pred, true = report.get("prediction"), report.get("true")
    if pred:
        line = f"sample {index}: predicted {pred.get('label')} (p={pred.get('probability')})"
        if true:
            line += f", true {true.get('label')}"
        click.echo(line)
    for name, path in report.get("files", {}).items():
        click.echo(f"{name:<10} {path}")


@main.command()
@click.argument("target", metavar="RUN_DIR|MODEL.onnx|hub:NAME[:TAG]")
@click.option("--input", "input_file", required=True, type=click.Path(),
              help=".npy array or JSON (a list, or {input_name: list}); raw input for runs that "
                   "learned to read it: CSV rows, text lines, an image or a folder of images.")
@click.option("--json", "as_json", is_flag=True,
              help="Print predictions as JSON (always valid JSON: NaN and infinities become null).")
def predict(target, input_file, as_json) -> None:
    """Run RUN_DIR/model.onnx (or a model.onnx, or a pulled hub:NAME) in onnxruntime on INPUT."""
    from zoo.core import api
    from zoo.core.hub import resolve_target
    from zoo.core.deploy.runtime import json_safe, serving_process

    serving_process()  # this process only predicts: its thread may flush denormals (make_session)
    predictions, metadata = api.predict(resolve_target(target, log=_stderr), input_file)
    click.echo(f"predict: ran on onnxruntime's {metadata['provider']}", err=True)
    if as_json:
        safe, replaced = json_safe(predictions)
        if replaced:
            click.echo(f"warning: {replaced} NaN or infinite value(s) printed as null", err=True)
        _emit_json(safe)
        return
    for i, p in enumerate(predictions):
        click.echo(f"{i}\t{json.dumps(p) if not isinstance(p, str) else p}")


def _stderr(line: str) -> None:
    click.echo(line, err=True)


# -- the model hub: zoo push / zoo pull / zoo hub ------------------------------------------------


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("target", required=False, metavar="[HUB/]NAME[:TAG]")
@click.option("--force", is_flag=True, help="Replace TAG if it exists (tags are immutable otherwise).")
@click.option("--license", "license_", help="The card's license (default: the dataset's, else 'other').")
@_json_option
def push(run_dir, target, force, license_, as_json) -> None:
    """Publish a finished run: model card, model.onnx, best weights, config, summary, SHA-256 manifest.

    HUB is a folder, an fsspec URL (file://, s3://, gs://, ...) or hf://USER; without it the
    default hub ($ZOO_HUB, else the user data dir). NAME defaults to MODEL-DATASET, TAG to the
    next vN.
    """
    from zoo.core import hub

    result = hub.push(run_dir, target, force=force, license_=license_, log=None if as_json else _stderr)
    if as_json:
        _emit_json(result)
        return
    click.echo(f"pushed {result['ref']} ({len(result['files'])} files, manifest sha256 "
               f"{result['manifest_sha256'][:16]}...)")


@main.command()
@click.argument("target", metavar="[HUB/]NAME[:TAG]")
@click.option("--out", type=click.Path(file_okay=False),
              help="Also copy the verified model into this (new) folder: a run directory of your own.")
@click.option("--offline", is_flag=True, help="Use the cache only (also ZOO_OFFLINE=1); needs a TAG.")
def pull(target, out, offline) -> None:
    """Download a pushed model into the cache, every SHA-256 verified (refused, exit 2, otherwise).

    Prints the folder: a run directory for predict, serve, export, runs show (or use hub:NAME).
    """
    from zoo.core import hub
    from zoo.core.train.fetch import offline as offline_mode

    with offline_mode(bool(offline)):
        pulled = hub.pull(target, out=out, log=_stderr)
    click.echo(f"{'pulled' if pulled.downloaded else 'cached'} {pulled.ref}: {pulled.path}")


@main.group("hub")
def hub_group() -> None:
    """Browse a hub: `zoo hub list [HUB]`, `zoo hub show [HUB/]NAME[:TAG]`."""


@hub_group.command("list")
@click.argument("hub_url", required=False, metavar="[HUB]")
@_json_option
def hub_list(hub_url, as_json) -> None:
    """The models and tags on HUB (default: $ZOO_HUB, else the user data dir)."""
    from zoo.core import hub

    rows = hub.list_models(hub_url)
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"no models on {hub_url or hub.default_hub()}", err=True)
    for r in rows:
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in (r.get("metrics") or {}).items())
        click.echo(f"{r['name']}:{r['tag']}{' (latest)' if r['latest'] else ''}  {r.get('model', '')} on "
                   f"{r.get('dataset', '')}  {metrics}")


@hub_group.command("show")
@click.argument("target", metavar="[HUB/]NAME[:TAG]")
@_json_option
def hub_show(target, as_json) -> None:
    """A pushed model's card, tags and files with their SHA-256, read without pulling it."""
    from zoo.core import hub

    data = hub.show(target)
    if as_json:
        _emit_json(data)
        return
    card = data["card"]["zoo"]
    click.echo(f"{data['ref']}: {card['model']} ({card['family']}) on {card['dataset']}, pushed {data['pushed']}")
    click.echo("  test:   " + "  ".join(f"{k} {v:.4f}" for k, v in card["metrics"].items()))
    click.echo(f"  parity: {card['parity']}  license: {data['card']['license']}  tags: {', '.join(data['tags'])}")
    click.echo(f"  reproduce: {card['command']}")
    for name, facts in data["files"].items():
        click.echo(f"  {name:<20} {facts['size']:>10}  sha256:{facts['sha256']}")
# -- tuning and reproducing ----------------------------------------------------------------------


class _SweepGroup(click.Group):
    """``zoo sweep MODEL ...`` is ``zoo sweep run MODEL ...``; ``zoo sweep show`` reads a study."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@main.group("sweep", cls=_SweepGroup)
def sweep_group() -> None:
    """Tune MODEL on Optuna: `zoo sweep MODEL --space FILE`, then `zoo sweep show` (docs/sweep.md)."""


@sweep_group.command("run")
@click.argument("model")
@click.option("--space", "space_file", required=True, type=click.Path(dir_okay=False),
              help="TOML search space: KEY = { log_uniform|uniform|int|log_int = [lo, hi] | choice = [...] }.")
@click.option("--trials", type=click.IntRange(1), default=20, show_default=True,
              help="Finished trials the study should have (a rerun continues up to this number).")
@click.option("--out", "folder", type=click.Path(file_okay=False),
              help="Sweep folder: trial runs and the SQLite study (default sweeps/MODEL).")
@click.option("--storage", metavar="URL", help="SQLAlchemy URL of the study's database (default "
              "sqlite:///FOLDER/study.db); the same URL on several machines shares one study.")
@click.option("--study", help="Study name (default: the model's name).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes on this machine running trials of the same study.")
@click.option("--sampler", type=click.Choice(["tpe", "random"]), default="tpe", show_default=True)
@click.option("--pruner", type=click.Choice(["median", "halving", "none"]), default="median", show_default=True,
              help="Stop unpromising trials early on the per-epoch validation metric.")
@click.option("--prune-after", type=click.IntRange(0), default=1, show_default=True,
              help="Epochs a trial trains before the pruner may stop it.")
@click.option("--seed", type=int, help="Sampler seed (worker i uses seed + i).")
@click.option("--epochs", type=click.IntRange(1), help="train.epochs of every trial.")
@click.option("--dataset", help="data.name of every trial.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config merged under the space.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Fixed override for every trial. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the study summary as JSON.")
def sweep_run(model, space_file, trials, folder, storage, study, workers, sampler, pruner, prune_after, seed,
              epochs, dataset, config_file, sets, as_json) -> None:
    """Search MODEL's hyperparameters; each trial is a run directory in the sweep folder."""
    from zoo.core.tune import sweep
    from zoo.core.contract.toml_io import read_toml

    options = {"export": {"enabled": False}}
    options.update({"train": {"epochs": epochs}} if epochs else {})
    options.update({"data": {"name": dataset}} if dataset else {})
    settings = sweep.SweepSettings(
        model=model, space=read_toml(space_file), folder=folder or f"sweeps/{model}", trials=trials,
        storage=storage, study=study, sampler=sampler, pruner=pruner, prune_after=prune_after, seed=seed,
        sets=tuple(sets), config_file=config_file, options=options, space_source=space_file)
    with contextlib.redirect_stdout(sys.stderr):
        result = sweep.sweep(settings, workers, log=lambda line: click.echo(line, err=True))
    _show_sweep(result, as_json)


def _show_sweep(result: dict, as_json: bool) -> None:
    if as_json:
        _emit_json(result)
        return
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result["counts"].items()))
    click.echo(f"study {result['study']} ({result['model']}, {result['direction']} {result['monitor']}): "
               f"{counts}; {result['epochs_trained']} epochs trained")
    for row in result["top"]:
        values = " ".join(f"{k}={json.dumps(v)}" for k, v in row["values"].items())
        click.echo(f"  trial {row['trial']:>4}  {row['value']:.4f}  {row['epochs']} epochs  {values}  {row['run']}")
    if result["best"]:
        click.echo(f"best: {result['best']['run']} (zoo export / zoo push it like any run)")


@sweep_group.command("show")
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option("--storage", metavar="URL", help="The study's database (default sqlite:///FOLDER/study.db).")
@click.option("--study", help="Study name (needed when the storage holds several).")
@click.option("--top", type=click.IntRange(1), default=5, show_default=True, help="Best trials to list.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Write sweep-history/importance/parallel PNGs into FOLDER (matplotlib).")
@_json_option
def sweep_show(folder, storage, study, top, plots, as_json) -> None:
    """The best trials of a study and its plots (optimisation history, importance, parallel coordinates)."""
    from pathlib import Path

    from zoo.core.tune import sweep

    if folder is None and storage is None:
        raise ZooError("name the sweep FOLDER or pass --storage URL")
    if storage is None and not (Path(folder) / "study.db").is_file():
        raise ZooError(f"{folder}: no study.db (not a sweep folder; pass --storage URL for another database)")
    url = storage or f"sqlite:///{Path(folder).resolve() / 'study.db'}"
    result = sweep.summary(url, study, top)
    if plots and folder is not None:
        result["plots"] = [str(p) for p in sweep.plots(url, result["study"], folder)]
    _show_sweep(result, as_json)
    if not as_json:
        for path in result.get("plots", []):
            click.echo(f"plot: {path}")


@main.command()
@click.argument("model", required=False)
@click.option("--all", "all_models", is_flag=True, help="Every model of the catalogue (with --quick: a CI smoke check).")
@click.option("--seeds", type=click.IntRange(1), help="Runs with train.seed 0..N-1.")
@click.option("--folds", type=click.IntRange(2), help="Runs on folds 0..K-1 of a K-fold split (data.options.fold).")
@click.option("--quick", is_flag=True, help="One run at smoke size: checks that the recipe runs, not the number.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the runs, reproduce.json and "
              "reproduce.md (default reproduce/MODEL or reproduce/all).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override the recipe. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print reproduce.json.")
@click.pass_context
def reproduce(ctx, model, all_models, seeds, folds, quick, out, sets, as_json) -> None:
    """Train MODEL's reference recipe and compare mean ± std with the catalogue's reference.

    Exit 1 (with the table) when a result is outside the tolerance declared in the catalogue.
    """
    from zoo.core.tune import reproduce as rep

    if bool(model) == all_models:
        raise ZooError("name one MODEL or pass --all")
    models = sorted(load_catalogue().models) if all_models else [model]
    out = out or f"reproduce/{'all' if all_models else model}"
    kwargs = {"seeds": seeds, "folds": folds, "quick": quick, "sets": tuple(sets)}
    with contextlib.redirect_stdout(sys.stderr):
        log = lambda line: click.echo(line, err=True)  # noqa: E731
        results = rep.reproduce_many(models, out, log, **kwargs) if all_models else \
            [rep.reproduce(model, out=out, log=log, **kwargs)]
    paths = rep.write(results, out, _device_label())
    if as_json:
        _emit_json({"results": results})
    else:
        click.echo(rep.table(results))
        click.echo(f"wrote {paths[0]} and {paths[1]}")
    if rep.failed(results):
        ctx.exit(1)


def _device_label() -> str:
    import torch

    return f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (the whole of it is in ``zoo data info``)."""
    return text if len(text) <= width else text[:width - 1] + "…"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def reference_markdown() -> str:
    """The CLI reference (docs/cli.md): every command's --help at a fixed width."""
    from click.testing import CliRunner

    runner = CliRunner()
    parts = ["# zoo command-line reference\n",
             "Generated from `--help` by `python scripts/cli_reference.py`; a test keeps it in sync.\n"]

    def walk(command: click.Command, path: list[str]) -> None:
        result = runner.invoke(main, [*path, "--help"], prog_name="zoo", terminal_width=100)
        title = " ".join(["zoo", *path])
        parts.append(f"## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=title)
            for name in command.list_commands(ctx):  # plugin commands (register_commands) too
                walk(command.get_command(ctx, name), [*path, name])

    walk(main, [])
    return "\n".join(parts)
