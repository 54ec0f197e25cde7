"""Plugin loading: third-party entry points, failures confined to the plugin, validation messages."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from helpers import run_cli
from zoo.core.contract.catalogue import load_catalogue
from zoo.core.contract.errors import ZooError
from zoo.core.contract.plugins import Registry, Zoo, _Collector


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
    # In front of, not instead of, the caller's PYTHONPATH (which may be where the zoo under test is).
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}


@pytest.mark.slow
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


TINY_MANIFEST = """
    [models.tiny-net]
    plugin = "tiny_plugin"
    task = "classification"
    dataset = "iris"
    summary = "A third-party model"
"""


@pytest.mark.slow
def test_third_party_models_are_listed_from_the_manifest_without_import(tmp_path):
    source = """
        raise RuntimeError("listing must not import me")
    """
    env = make_distribution(tmp_path, "tiny_plugin", source, TINY_MANIFEST)
    listed = run_cli("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    entry = {m["name"]: m for m in json.loads(listed.stdout)}["tiny-net"]
    assert entry["source"] == "tiny_plugin 0.1"


@pytest.mark.slow
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
    env = make_distribution(tmp_path, "tiny_plugin", source, TINY_MANIFEST)
    out = run_cli("train", "tiny-net", "--epochs", "2", "--out", str(tmp_path / "run"), "-q", "--json", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["status"] == "finished" and summary["plugin"] == "tiny_plugin"
    assert (tmp_path / "run" / "model.onnx").is_file()


@pytest.mark.slow
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
    from zoo.core.contract.config import ModelConfig

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
    with pytest.raises(ZooError, match="payload for 'd' is 'path'; expected 'text' or 'bytes'"):
        collector.register_dataset("d", lambda o, d: None, decoder=lambda m, p: {}, payload="path")
    collector.register_dataset("d", lambda o, d: None, decoder=lambda m, p: {}, payload="bytes")
    assert collector.datasets["d"].payload == "bytes"
    with pytest.raises(ZooError, match="expected a zoo.Task"):
        collector.register_task(object())


def test_a_failing_registration_commits_nothing():
    from torch import nn
    from zoo import hookimpl
    from zoo.core.contract.config import ModelConfig

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
    from zoo.core.train.data import DataInfo, Dataset, TensorSplit
    from zoo.core.train.tasks import Regression

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


# -- whatever a plugin raises is that plugin's failure (issue 18, item 12) ------------------------


@pytest.mark.parametrize("name, source, error", [
    ("exits_0", "import sys; sys.exit(0)\n", "SystemExit: 0"),
    ("exits_bye", "raise SystemExit('bye')\n", "SystemExit: bye"),
    ("interrupts", "raise KeyboardInterrupt\n", "KeyboardInterrupt"),
])
def test_exit_or_interrupt_at_import_fails_only_that_plugin(tmp_path, monkeypatch, name, source, error):
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    zoo = Zoo(load_catalogue())
    zoo._load_one(name, name, "test")
    assert (zoo.status[name].status, zoo.status[name].error) == ("failed", error)
    assert not zoo.pm.has_plugin(name)


def test_exit_in_a_registration_hook_fails_the_plugin():
    from zoo import hookimpl

    @hookimpl
    def register_models(register):
        raise SystemExit(3)

    status = _load_module(Zoo(load_catalogue()), "exits", register_models=register_models)
    assert (status.status, status.error) == ("failed", "register_models raised SystemExit: 3")


def _with_default_sigint():
    """Python's own SIGINT handler (raise KeyboardInterrupt), as a CLI process has it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set in the main thread")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    return lambda: signal.signal(signal.SIGINT, previous)


def test_a_real_ctrl_c_during_a_plugin_import_still_interrupts(tmp_path, monkeypatch):
    (tmp_path / "slow_import.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    restore = _with_default_sigint()
    try:
        with pytest.raises(KeyboardInterrupt):
            Zoo(load_catalogue())._load_one("slow_import", "slow_import", "test")
    finally:
        restore()


def _listener(epochs: list, failure: BaseException | None = None):
    """An ``on_epoch_end`` implementation that records each epoch, then raises ``failure``."""
    from zoo import hookimpl

    @hookimpl
    def on_epoch_end(run, epoch, metrics):
        epochs.append(epoch)
        if failure is not None:
            raise failure

    return on_epoch_end


@pytest.mark.parametrize("failure", [SystemExit(0), KeyboardInterrupt(), RuntimeError("tracker down")])
def test_a_failing_listener_is_reported_once_and_skipped_for_the_rest_of_the_run(failure, recwarn):
    from types import SimpleNamespace

    zoo, bad, good = Zoo(load_catalogue()), [], []
    _load_module(zoo, "bad_tracker", on_epoch_end=_listener(bad, failure))
    _load_module(zoo, "good_tracker", on_epoch_end=_listener(good))
    for epoch in (1, 2, 3):
        zoo.emit("on_epoch_end", run=SimpleNamespace(path="run-a"), epoch=epoch, metrics={})
    assert good == [1, 2, 3] and bad == [1]
    messages = [str(w.message) for w in recwarn if "bad_tracker" in str(w.message)]
    assert len(messages) == 1, messages
    assert f"plugin 'bad_tracker' failed in on_epoch_end: {type(failure).__name__}" in messages[0]
    assert "skipped for the rest of this run" in messages[0]
    zoo.emit("on_epoch_end", run=SimpleNamespace(path="run-b"), epoch=1, metrics={})
    assert bad == [1, 1]  # a new run hears it again


def test_a_real_ctrl_c_inside_a_listener_reaches_the_trainer():
    import os
    import signal
    import time
    from types import SimpleNamespace

    from zoo import hookimpl

    @hookimpl
    def on_epoch_end(run, epoch, metrics):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    zoo = Zoo(load_catalogue())
    _load_module(zoo, "presses_ctrl_c", on_epoch_end=on_epoch_end)
    restore = _with_default_sigint()
    try:
        with pytest.raises(KeyboardInterrupt):
            zoo.emit("on_epoch_end", run=SimpleNamespace(path="r"), epoch=1, metrics={})
    finally:
        restore()


def test_firstresult_hook_failures_name_the_plugin_and_user_errors_pass():
    from zoo import hookimpl
    from zoo.core.contract.plugins import PluginError

    @hookimpl
    def explain_model(model, model_name, task, sample, info, out_dir):
        if model_name == "user-error":
            raise ZooError("install matplotlib to explain this model")
        raise SystemExit(0)

    zoo = Zoo(load_catalogue())
    assert _load_module(zoo, "explainer", explain_model=explain_model).status == "loaded"
    args = dict(model=None, task=None, sample={}, info=None, out_dir=None)
    with pytest.raises(PluginError, match=r"^plugin 'explainer' failed in explain_model: SystemExit: 0"):
        zoo.pm.hook.explain_model(model_name="m", **args)
    with pytest.raises(ZooError, match="^install matplotlib to explain this model$"):
        zoo.pm.hook.explain_model(model_name="user-error", **args)


def test_builders_and_loaders_cannot_exit_zoo():
    from zoo import hookimpl
    from zoo.core.contract.config import ModelConfig
    from zoo.core.contract.plugins import PluginError

    def build(config, info):
        raise SystemExit(1) if info == "exit" else ValueError("bad width")

    def load(options, data_dir):
        raise KeyboardInterrupt

    @hookimpl
    def register_models(register):
        register("exiting-model", build, ModelConfig)

    @hookimpl
    def register_datasets(register):
        register("exiting-data", load)

    zoo = Zoo(load_catalogue())
    _load_module(zoo, "exiting", register_models=register_models, register_datasets=register_datasets)
    with pytest.raises(PluginError, match="plugin 'exiting' failed in the builder of model 'exiting-model': "
                                          "SystemExit: 1"):
        zoo.registry.model("exiting-model").builder(None, "exit")
    with pytest.raises(ValueError, match="bad width"):  # ordinary errors: the core says what it was doing
        zoo.registry.model("exiting-model").builder(None, None)
    with pytest.raises(PluginError, match="the loader of dataset 'exiting-data': KeyboardInterrupt"):
        zoo.registry.dataset("exiting-data").loader(None, None)


BROKEN_MANIFESTS = {
    "plugins_is_a_number": ("plugins = 5\n", "'plugins' must be a table of [plugins.NAME] tables, got 5"),
    "tags_is_a_number": ('[models.tagged]\nplugin = "tags_is_a_number"\ntask = "classification"\n'
                         'dataset = "iris"\ntags = 5\n', "[models.tagged] tags must be a list of strings, got 5"),
    "not_toml": ("[models.x\nplugin = 1\n", "not valid TOML"),
}


@pytest.mark.slow
def test_broken_third_party_plugins_never_stop_other_commands(tmp_path):
    """Issue 18 (12): exits at import, broken manifests and an exiting listener, all installed at
    once; `zoo list`, `zoo config`, `zoo plugins` and training work, and disabling helps."""
    env = make_distribution(tmp_path, "exits_at_import", "import sys\nsys.exit(0)\n")
    make_distribution(tmp_path, "interrupts_at_import", "raise KeyboardInterrupt\n")
    for name, (manifest, _) in BROKEN_MANIFESTS.items():
        make_distribution(tmp_path, name, "", manifest)
    make_distribution(tmp_path, "exits_in_listener", """
        import sys
        from zoo import hookimpl

        @hookimpl
        def on_epoch_end(run, epoch, metrics):
            sys.exit(0)
    """)
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "linear" in listed.stdout and "Traceback" not in listed.stderr
    assert run_cli("config", "linear", env=env).returncode == 0
    plugins = run_cli("plugins", "--json", env=env)
    assert plugins.returncode == 0, plugins.stderr
    status = {p["name"]: p for p in json.loads(plugins.stdout)}
    assert (status["exits_at_import"]["status"], status["exits_at_import"]["error"]) == ("failed", "SystemExit: 0")
    assert status["interrupts_at_import"]["error"] == "KeyboardInterrupt"
    for name, (_, error) in BROKEN_MANIFESTS.items():
        assert status[name]["status"] == "failed" and error in status[name]["error"], status[name]
    assert status["regression"]["status"] == status["exits_in_listener"]["status"] == "loaded"

    disabled = run_cli("plugins", "--json", env={**env, "ZOO_DISABLE_PLUGINS": ",".join(BROKEN_MANIFESTS)})
    assert {p["name"]: p["status"] for p in json.loads(disabled.stdout)}["plugins_is_a_number"] == "disabled"

    out = tmp_path / "run"
    trained = run_cli("train", "linear", "--epochs", "3", "--out", str(out), "-q", env=env)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert trained.stderr.count("plugin 'exits_in_listener' failed in on_epoch_end: SystemExit: 0") == 1


# -- a declared name belongs to its declarer (issue 20, point 7) -------------------------------


def _catalogue_declaring(plugin: str, model: str, dataset: str):
    from zoo.core.contract.catalogue import Catalogue

    catalogue = Catalogue()
    catalogue.add_manifest({"plugins": {plugin: {"module": plugin}},
                            "datasets": {dataset: {"plugin": plugin, "task": "classification"}},
                            "models": {model: {"plugin": plugin, "task": "classification", "dataset": dataset}}},
                           origin="test.toml", source="test")
    return catalogue


@pytest.mark.parametrize("squatter_first", [True, False])
@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_registering_a_name_another_plugin_declares_fails_only_the_registrant(kind, squatter_first):
    from torch import nn
    from zoo import hookimpl
    from zoo.core.contract.config import ModelConfig

    def loader(options, data_dir):
        raise AssertionError("never loaded")

    def hooks(model: str, dataset: str) -> dict:
        if kind == "model":
            return {"register_models": hookimpl(lambda register: register(model, lambda c, i: nn.Identity(),
                                                                          ModelConfig))}
        return {"register_datasets": hookimpl(lambda register: register(dataset, loader))}

    zoo = Zoo(_catalogue_declaring("owner", "owned-net", "owned-data"))
    load = [("squatter", hooks("owned-net", "owned-data")), ("owner", hooks("owned-net", "owned-data"))]
    for name, plugin_hooks in load if squatter_first else load[::-1]:
        _load_module(zoo, name, **plugin_hooks)
    assert zoo.status["owner"].status == "loaded", zoo.status["owner"].error
    assert zoo.status["squatter"].status == "failed"
    name = "owned-net" if kind == "model" else "owned-data"
    assert f"registers {kind} {name!r}, which plugin 'owner' declares" in zoo.status["squatter"].error
    table = zoo.registry.models if kind == "model" else zoo.registry.datasets
    assert table[name].plugin == "owner"


# -- broken manifests are visible (issue 20, point 8) -------------------------------------------

MISDECLARED = {
    "misspelt": """
        [models.misspelt-net]
        plugin = "misspelt"
        task = "classification"
        dataset = "iris"
        sumary = "a typo"
    """,
    "bad_toml": """
        [models.bad-toml-net]
        plugin = "bad_toml"
        task = "classification"
        dataset = "iris
    """,
    "no_task": """
        [models.no-task-net]
        plugin = "no_task"
        dataset = "iris"
    """,
}


@pytest.mark.slow
def test_each_broken_manifest_is_one_warning_line_and_its_model_names_it(tmp_path):
    for name, manifest in MISDECLARED.items():
        env = make_distribution(tmp_path, name, "", manifest)
    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "linear" in listed.stdout, listed.stderr
    warnings = [line for line in listed.stderr.splitlines() if line.startswith("warning: plugin ")]
    assert len(warnings) == 3 and listed.stderr.count("\n") == 3, listed.stderr
    for name, line in zip(sorted(MISDECLARED), warnings):
        assert line.startswith(f"warning: plugin {name}: manifest error") and line.endswith("; see zoo plugins")
    assert "sumary" in listed.stderr and "task" in listed.stderr

    for model, plugin in (("bad-toml-net", "bad_toml"), ("misspelt-net", "misspelt"), ("no-task-net", "no_task")):
        trained = run_cli("train", model, "--epochs", "1", env=env)
        assert trained.returncode == 2 and "Traceback" not in trained.stderr
        error = trained.stderr.splitlines()[-1]
        assert error.startswith(f"error: model {model!r} comes from plugin {plugin!r}, which failed to load: its "
                                f"manifest is broken"), error
        assert f"warning: plugin {plugin}: manifest error" in trained.stderr
    unknown = run_cli("train", "nowhere-net", env=env)
    assert unknown.returncode == 2
    assert "plugins with a broken manifest: bad_toml, misspelt, no_task" in unknown.stderr.splitlines()[-1]


@pytest.mark.slow
def test_valid_lists_are_deduplicated_and_point_to_zoo_list_when_long():
    from zoo.core.contract.errors import LONGEST_LIST, did_you_mean

    assert did_you_mean("cnx", ["cnn", "cnn", "mlp"], "model") == \
        "unknown model 'cnx'; did you mean: cnn? (valid: cnn, mlp)"
    many = [f"m{k}" for k in range(LONGEST_LIST + 5)] * 2
    message = did_you_mean("zz", many, "dataset", listed_by="zoo list --datasets")
    assert message == f"unknown dataset 'zz' (valid: {LONGEST_LIST + 5} names; `zoo list --datasets` shows them)"
    out = run_cli("train", "cnnn")
    assert out.returncode == 2
    assert "cnn, cnn" not in out.stderr and "..." not in out.stderr and "`zoo list`" in out.stderr


# -- zoo doctor checks each model's default dataset (issue 20, point 9) -------------------------


@pytest.mark.slow
def test_doctor_fails_a_model_whose_default_dataset_does_not_exist(tmp_path):
    source = """
        from torch import nn
        from zoo import hookimpl, ModelConfig

        @hookimpl
        def register_models(register):
            register("lost-net", lambda config, info: nn.Identity(), ModelConfig)
    """
    manifest = """
        [models.lost-net]
        plugin = "lost"
        task = "classification"
        dataset = "no-such-data"
    """
    env = make_distribution(tmp_path, "lost", source, manifest)
    doctor = run_cli("doctor", env=env)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "lost" in failed[0] and "default dataset 'no-such-data'" in failed[0]
    assert "all checks passed" not in doctor.stderr
