"""Test helpers for plugin authors: ``from zoo import testing``.

A plugin's tests need three things, and each is one call here, so they never reach into
``zoo.core``::

    from zoo import testing


    def test_declarations():
        testing.check_plugin("shapes")              # what `zoo doctor` checks, for this plugin


    def test_trains(tmp_path):
        summary = testing.train("shapes-mlp", epochs=5, out=tmp_path / "run")
        assert summary["metrics"]["accuracy"] > 0.5


    def test_exports():
        result = testing.check_parity("shapes-mlp")  # ONNX export + parity at untraced shapes
        assert result["parity"] < 1e-4

Everything runs on the CPU unless the options say otherwise; errors are zoo's own
(:class:`zoo.ZooError` and its :class:`~zoo.core.contract.errors.ExportError`), so a failing test shows
the same one-line message a user of ``zoo train`` would see.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

__all__ = ["train", "plugin_problems", "check_plugin", "check_parity"]


def _quick_options(model: str, epochs: int | None, limit: int | None, options: dict | None) -> dict:
    """CPU, no progress bar, the manifest's ``[models.NAME.smoke]``, then the caller's options."""
    from zoo.core.contract.catalogue import load_catalogue
    from zoo.core.contract.config import deep_merge

    entry = load_catalogue().resolve_trainable(model)
    quick = deep_merge({"train": {"epochs": 1, "progress": False, "device": "cpu"}}, entry.smoke)
    if epochs is not None:
        quick = deep_merge(quick, {"train": {"epochs": epochs}})
    if limit is not None:
        quick = deep_merge(quick, {"data": {"limit": limit}})
    return deep_merge(quick, options or {})


def train(model: str, *, epochs: int | None = None, limit: int | None = None, options: dict | None = None,
          sets: tuple[str, ...] = (), out: str | Path | None = None, export: bool = True) -> dict[str, Any]:
    r"""Train ``model`` quickly, test and export it, and return the run's summary.

    The run uses the CPU, no progress bar and the model's ``[models.NAME.smoke]`` overrides
    (tiny sizes), then the arguments below; it trains into ``out`` or a new temporary folder.

    Args:
        model (str): the model's catalogue name.
        epochs (int, optional): ``train.epochs`` (default: the smoke table's, else 1).
        limit (int, optional): ``data.limit``, at most this many training samples.
        options (dict, optional): config overrides, ``{"optim": {"lr": 0.1}}``.
        sets (tuple of str, optional): ``--set`` strings, ``("model.hidden=8",)``.
        out (str or Path, optional): the run directory (must not hold a run yet).
        export (bool, optional): export and parity-check ``model.onnx`` (default ``True``).

    Returns:
        dict: ``summary.json`` (``status``, ``metrics``, ``parity``, ...) plus ``run_dir``, the
        run directory's path.

    Raises:
        zoo.ZooError: the message ``zoo train`` would print (exit 2; a failed export is an
            :class:`~zoo.core.contract.errors.ExportError` whose ``summary`` holds the test metrics).
    """
    from zoo.core import api
    from zoo.core.contract.config import deep_merge

    quick = _quick_options(model, epochs, limit, options)
    if not export:
        quick = deep_merge(quick, {"export": {"enabled": False}})
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"zoo-test-{model}-"))
    summary = api.train(model, sets=tuple(sets), options=quick, out=str(run_dir), log=None)
    return {**summary, "run_dir": str(run_dir)}


def plugin_problems(plugin: str) -> list[str]:
    """What ``zoo doctor`` finds wrong with one plugin, one line each (``[]``: nothing).

    Covers loading (import, registration hooks, manifest), hook signatures, declared vs
    registered models and datasets, and the manifest's defaults and recipes validating against
    the config classes.

    Args:
        plugin (str): the plugin's name (its entry-point name, ``plugin = "..."`` in manifests).
    """
    from zoo.core.doctor import run_checks
    from zoo.core.contract.plugins import get_zoo

    if plugin not in get_zoo().status:
        return [f"{plugin}: not installed (no entry point {plugin!r} in the group 'zoo'; "
                f"`pip install -e .` the plugin's package)"]
    return [f"{f.plugin}: {f.check}: {f.message}" for f in run_checks() if f.plugin == plugin and not f.ok]


def check_plugin(plugin: str) -> None:
    """Assert that ``plugin`` is loaded and ``zoo doctor`` finds nothing wrong with it.

    Raises:
        AssertionError: listing every problem (see :func:`plugin_problems`).
    """
    problems = plugin_problems(plugin)
    assert not problems, f"plugin {plugin!r} has {len(problems)} problem(s):\n" + "\n".join(problems)


def check_parity(model: str, module: Any = None, *, options: dict | None = None, sets: tuple[str, ...] = (),
                 out: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    r"""Export a built model to ONNX exactly as a run does and check it against torch.

    The export goes through the plugins' ``export_model`` hook (or the default exporter), then
    ``onnx.checker``, the check that no dynamic axis was frozen, and parity with torch on the
    task's example inputs at shapes other than the traced one (``export.atol``/``export.rtol``).

    Args:
        model (str): the model's catalogue name; its config and dataset are resolved as for
            ``zoo train`` (with its smoke overrides, ``options`` and ``sets``).
        module (torch.nn.Module, optional): the module to export (e.g. after your own training);
            by default a fresh one from the model's builder, seeded with ``seed``.
        out (str or Path, optional): folder for ``model.onnx`` and ``export.log`` (default: a new
            temporary folder).

    Returns:
        dict: ``path`` (the ONNX file), ``parity`` (max \|torch − onnxruntime\|),
        ``checked_shapes``, ``provider`` and ``log`` (the exporter's console output).

    Raises:
        zoo.core.contract.errors.ExportError: the export or a check failed (one line; details in the log).
    """
    import torch
    from zoo.core import api
    from zoo.core.contract.plugins import get_zoo
    from zoo.core.train.runs import Run

    quick = _quick_options(model, None, None, options)
    entry, spec, run_config = api.resolve_config(model, sets=tuple(sets), options=quick)
    dataset, task = api.load_data(run_config, entry)
    if module is None:
        torch.manual_seed(seed)
        module = api.build_model(spec, run_config, dataset.info)
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"zoo-parity-{model}-"))
    folder.mkdir(parents=True, exist_ok=True)
    run = Run(folder)
    result = api.export_model(run, module.eval(), task, dataset, run_config, entry, get_zoo())
    return {"path": str(result.path), "parity": result.parity, "checked_shapes": result.checked_shapes,
            "provider": result.provider, "log": str(run.file(Run.EXPORT_LOG))}
