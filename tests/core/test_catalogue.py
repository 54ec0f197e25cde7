"""The declarative catalogue: readable without torch, and in one-to-one agreement with the code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import cli_in_fresh_interpreter
from zoo.core.contract.catalogue import Catalogue, load_catalogue
from zoo.core.contract.errors import ZooError
from zoo.core.contract.plugins import get_zoo


def test_declared_models_are_registered_one_to_one():
    zoo = get_zoo()
    catalogue = load_catalogue()
    failed = {n: s.error for n, s in zoo.status.items() if s.status == "failed"}
    assert not failed, failed
    assert zoo.declaration_problems() == []
    for name, entry in catalogue.models.items():
        assert name in zoo.registry.models, f"{name} declared but not registered"
        assert zoo.registry.models[name].plugin == entry.plugin
    for name, spec in zoo.registry.models.items():
        assert name in catalogue.models, f"{name} registered by {spec.plugin} but not declared"


def test_declared_datasets_are_registered_and_tasks_exist():
    zoo = get_zoo()
    catalogue = load_catalogue()
    assert set(catalogue.datasets) == set(zoo.registry.datasets)
    for entry in catalogue.datasets.values():
        assert entry.task in zoo.registry.tasks, f"dataset {entry.name}: unknown task {entry.task}"
    for entry in catalogue.models.values():
        assert entry.dataset in catalogue.datasets, f"{entry.name}: unknown default dataset"
        assert catalogue.datasets[entry.dataset].task in entry.tasks
        for task in entry.tasks:
            assert task in zoo.registry.tasks


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(load_catalogue().models))
def test_catalogue_conventions(name):
    """Every model has the metadata `zoo info` shows (torchvision-style convention test)."""
    entry = load_catalogue().models[name]
    assert name == name.lower() and " " not in name
    assert entry.summary and entry.paper.startswith("http")
    if entry.reference:  # optional: some models have no published number on our datasets
        assert entry.reference.get("metric") and "value" in entry.reference and entry.reference.get("source")
    assert set(entry.defaults) <= {"model", "data", "optim", "schedule", "train", "export"}


@pytest.mark.slow
def test_list_does_not_import_torch():
    code = (
        "import sys; from zoo.cli import main\n"
        "try:\n    main(['list', '--json'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'pydantic', 'zoo.plugins.regression')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    models = json.loads(out.stdout.split("HEAVY")[0])
    assert {m["name"] for m in models} == set(load_catalogue().models)


@pytest.mark.slow
def test_info_does_not_import_torch():
    printed, modules = cli_in_fresh_interpreter("info", "linear")
    assert "torch" not in modules and "synthetic-linear" in printed


def test_filters():
    catalogue = load_catalogue()
    assert {m.name for m in catalogue.filter(task="regression")} >= {"linear", "mlp"}
    assert [m.name for m in catalogue.filter("lin*")] == ["linear"]
    assert all(m.plugin == "regression" for m in catalogue.filter(plugin="regression"))
    assert catalogue.filter(tag="no-such-tag") == []


def test_unknown_model_suggests_close_names():
    with pytest.raises(ZooError, match="did you mean: mlp"):
        load_catalogue().model("mpl")


def test_plugin_name_resolves_to_its_first_model():
    assert load_catalogue().resolve_trainable("regression").name == "linear"
    assert load_catalogue().resolve_trainable("regression/mlp").name == "mlp"
    with pytest.raises(ZooError, match="belongs to plugin"):
        load_catalogue().model("datasets/mlp")


def test_manifest_validation_names_the_problem():
    catalogue = Catalogue()
    with pytest.raises(ZooError, match=r"unknown key\(s\) \['taks'\]"):
        catalogue.add_manifest({"models": {"m": {"plugin": "p", "taks": "x", "dataset": "d"}}}, "x.toml")
    with pytest.raises(ZooError, match="missing task"):
        catalogue.add_manifest({"models": {"m": {"plugin": "p", "dataset": "d"}}}, "x.toml")
    catalogue.add_manifest({"models": {"m": {"plugin": "p", "task": "t", "dataset": "d"}}}, "a.toml")
    with pytest.raises(ZooError, match="declared twice: by built-in and by b.toml"):
        catalogue.add_manifest({"models": {"m": {"plugin": "p", "task": "t", "dataset": "d"}}}, "b.toml")


MODEL = {"plugin": "p", "task": "t", "dataset": "d"}


@pytest.mark.parametrize("manifest, message", [
    ({"plugins": 5}, r"x.toml: 'plugins' must be a table of \[plugins.NAME\] tables, got 5"),
    ({"models": {"m": 5}}, r"\[models.m\] must be a table, got 5"),
    ({"models": {"m": {**MODEL, "tags": 5}}}, r"\[models.m\] tags must be a list of strings, got 5"),
    ({"models": {"m": {**MODEL, "tags": ["ok", 1]}}}, r"tags must be a list of strings"),
    ({"models": {"m": {**MODEL, "task": ["a"]}}}, r"\[models.m\] task must be a string, got \['a'\]"),
    ({"models": {"m": {**MODEL, "plugin": 5}}}, r"\[models.m\] plugin must be a string, got 5"),
    ({"models": {"m": {**MODEL, "defaults": "fast"}}}, r"\[models.m\] defaults must be a table"),
    ({"models": {"m\nx": {**MODEL, "summary": 1}}}, r"\[models.'m\\nx'\] summary must be a string"),
    ({"plugins": {"p": {"module": 5}}}, r"\[plugins.p\] module must be a string, got 5"),
    ({"plugins": {"core": {"module": "x"}}}, r"plugin name 'core' is reserved"),
    ({"datasets": {"d": {"plugin": "p", "task": 5}}}, r"\[datasets.d\] task must be a string, got 5"),
    ({"datasets": {"d": {"plugin": "p"}}}, r"\[datasets.d\] is missing task"),
])
def test_manifest_value_types_are_checked(manifest, message):
    with pytest.raises(ZooError, match=message) as raised:
        Catalogue().add_manifest(manifest, "x.toml")
    assert "\n" not in str(raised.value)


def test_a_rejected_manifest_adds_nothing():
    catalogue = Catalogue()
    with pytest.raises(ZooError, match="tags must be"):
        catalogue.add_manifest({"plugins": {"p": {"module": "p"}}, "datasets": {"d": {"plugin": "p", "task": "t"}},
                                "models": {"m": {**MODEL, "tags": 5}}}, "x.toml")
    assert (catalogue.plugins, catalogue.models, catalogue.datasets) == ({}, {}, {})
    catalogue.add_manifest({"plugins": {"p": {"module": "p"}}, "models": {"m": MODEL}}, "y.toml")
    assert set(catalogue.plugins) == {"p"} and catalogue.models["m"].tasks == ("t",)
