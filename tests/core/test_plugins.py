"""Plugin loading: third-party entry points, failures confined to the plugin, validation messages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from helpers import run_cli
from zoo.core.catalogue import load_catalogue
from zoo.core.errors import ZooError
from zoo.core.plugins import Registry, Zoo, _Collector


def make_distribution(root: Path, name: str, module_source: str, manifest: str | None = None) -> dict:
    """An installed-looking distribution on PYTHONPATH: a package, its zoo.toml manifest, and
    dist-info with an entry point in the ``zoo`` group."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{name} = {name}\n")
    records = [f"{name}/__init__.py,,", f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    if manifest is not None:
        (package / "zoo.toml").write_text(textwrap.dedent(manifest))
        records.append(f"{name}/zoo.toml,,")
    (info / "RECORD").write_text("\n".join(records) + "\n")
    return {"PYTHONPATH": str(root)}


def test_plugin_that_raises_on_import_is_recorded_and_the_rest_works(tmp_path):
    env = make_distribution(tmp_path, "broken_plugin", "raise RuntimeError('boom at import')\n")
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "linear" in listed.stdout, listed.stderr
    plugins = run_cli("plugins", "--json", env=env)
    assert plugins.returncode == 0, plugins.stderr
    status = {p["name"]: p for p in json.loads(plugins.stdout)}
    assert status["broken_plugin"]["status"] == "failed"
    assert "RuntimeError: boom at import" in status["broken_plugin"]["error"]
    assert status["regression"]["status"] == "loaded"
    assert run_cli("--help", env=env).returncode == 0


def test_third_party_models_are_listed_from_the_manifest_without_import(tmp_path):
    source = """
        raise RuntimeError("listing must not import me")
    """
    manifest = """
        [models.tiny-net]
        plugin = "tiny_plugin"
        task = "classification"
        dataset = "iris"
        summary = "A third-party model"
    """
    env = make_distribution(tmp_path, "tiny_plugin", source, manifest)
    listed = run_cli("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    entry = {m["name"]: m for m in json.loads(listed.stdout)}["tiny-net"]
    assert entry["source"] == "tiny_plugin 0.1"


def test_third_party_plugin_trains_like_a_builtin(tmp_path):
    source = """
        from torch import nn
        from zoo import hookimpl, ModelConfig

        class TinyConfig(ModelConfig):
            width: int = 4

        def build(config, info):
            return nn.Sequential(nn.Flatten(), nn.Linear(info.input_size, config.width), nn.ReLU(),
                                 nn.Linear(config.width, info.num_classes))

        @hookimpl
        def register_models(register):
            register("tiny-net", build, TinyConfig)
    """
    manifest = """
        [models.tiny-net]
        plugin = "tiny_plugin"
        task = "classification"
        dataset = "iris"
        summary = "A third-party model"
    """
    env = make_distribution(tmp_path, "tiny_plugin", source, manifest)
    out = run_cli("train", "tiny-net", "--epochs", "2", "--out", str(tmp_path / "run"), "-q", "--json", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["status"] == "finished" and summary["plugin"] == "tiny_plugin"
    assert (tmp_path / "run" / "model.onnx").is_file()


def test_disabled_and_strict(tmp_path):
    env = make_distribution(tmp_path, "broken_plugin", "raise RuntimeError('boom')\n")
    disabled = run_cli("plugins", "--json", env={**env, "ZOO_DISABLE_PLUGINS": "broken_plugin"})
    status = {p["name"]: p["status"] for p in json.loads(disabled.stdout)}
    assert status["broken_plugin"] == "disabled"
    strict = run_cli("plugins", env={**env, "ZOO_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "broken_plugin" in strict.stderr and "Traceback" not in strict.stderr


class _Module:
    """A stand-in plugin module for in-process manager tests."""


def _load_module(zoo: Zoo, name: str, **hooks):
    import types

    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, fn)
    zoo._load_one(name, name, "test", module=module)
    return zoo.status[name]


def test_duplicate_model_names_the_two_plugins():
    from torch import nn
    from zoo import hookimpl
    from zoo.core.config import ModelConfig

    zoo = Zoo(load_catalogue())

    @hookimpl
    def register_models(register):
        register("dup", lambda c, i: nn.Identity(), ModelConfig)

    assert _load_module(zoo, "first", register_models=register_models).status == "loaded"
    second = _load_module(zoo, "second", register_models=register_models)
    assert second.status == "failed"
    assert "plugin 'second' (register_models) registers model 'dup', which plugin 'first' already" in second.error
    assert zoo.registry.models["dup"].plugin == "first"


def test_unknown_hook_and_bad_signature_are_rejected():
    from zoo import hookimpl

    zoo = Zoo(load_catalogue())

    @hookimpl
    def register_modles(register):  # typo: not a zoo hook
        pass

    status = _load_module(zoo, "typo", register_modles=register_modles)
    assert status.status == "failed" and "unknown hook(s) ['register_modles']" in status.error

    @hookimpl
    def on_epoch_end(run, epoch, metrics, extra_argument):
        pass

    status = _load_module(zoo, "badsig", on_epoch_end=on_epoch_end)
    assert status.status == "failed" and "extra_argument" in status.error


def test_registration_is_validated():
    collector = _Collector(Registry(), "p")
    with pytest.raises(ZooError, match="must subclass zoo.ModelConfig"):
        collector.register_model("m", lambda c, i: None, dict)
    with pytest.raises(ZooError, match="not callable"):
        collector.register_dataset("d", "not a function")
    with pytest.raises(ZooError, match="expected a zoo.Task"):
        collector.register_task(object())


def test_a_failing_registration_commits_nothing():
    from torch import nn
    from zoo import hookimpl
    from zoo.core.config import ModelConfig

    zoo = Zoo(load_catalogue())

    @hookimpl
    def register_models(register):
        register("half-a", lambda c, i: nn.Identity(), ModelConfig)
        raise ValueError("oops")

    status = _load_module(zoo, "half", register_models=register_models)
    assert status.status == "failed" and "ValueError: oops" in status.error
    assert "half-a" not in zoo.registry.models


def test_datasets_and_tasks_register_through_hooks():
    import torch
    from zoo import hookimpl
    from zoo.core.data import DataInfo, Dataset, TensorSplit
    from zoo.core.tasks import Regression

    class Huber(Regression):
        name = "huber-regression"

    def load(options, data_dir):
        x = torch.randn(8, 2)
        return Dataset(TensorSplit(x=x, y=x.sum(1)), TensorSplit(x=x, y=x.sum(1)), DataInfo((2,), output_dim=1))

    @hookimpl
    def register_datasets(register):
        register("eight-points", load)

    @hookimpl
    def register_tasks(register):
        register(Huber())

    zoo = Zoo(load_catalogue())
    status = _load_module(zoo, "extras", register_datasets=register_datasets, register_tasks=register_tasks)
    assert status.status == "loaded" and status.datasets == ["eight-points"] and status.tasks == ["huber-regression"]
    assert len(zoo.registry.dataset("eight-points").loader(None, None).train) == 8
    clash = _load_module(zoo, "extras2", register_tasks=register_tasks)
    assert clash.status == "failed" and "task 'huber-regression', which plugin 'extras' already" in clash.error
