"""Third-party plugin authoring: the scaffold works end to end; broken plugins are reported clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import run_cli

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow

MANIFEST = """
    [models.{model}]
    plugin = "{name}"
    task = "classification"
    dataset = "iris"
    summary = "test model"
    paper = "https://example.org"
    reference = {{ metric = "test_accuracy", value = 0.9, source = "-" }}
"""

GOOD = """
    from torch import nn
    from zoo import hookimpl, ModelConfig

    def build(config, info):
        return nn.Sequential(nn.Linear(info.input_size, info.num_classes))

    @hookimpl
    def register_models(register):
        register("{model}", build, ModelConfig)
"""


def install_fake(site: Path, name: str, source: str, manifest: str | None, version: str = "0.3") -> None:
    """A distribution as pip would leave it in a site directory: package, dist-info, entry point."""
    package = site / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{name} = {name}\n")
    records = [f"{name}/__init__.py,,"]
    if manifest is not None:
        (package / "zoo.toml").write_text(textwrap.dedent(manifest))
        records.append(f"{name}/zoo.toml,,")
    (info / "RECORD").write_text("\n".join(records) + "\n")


@pytest.fixture
def site(tmp_path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


def _status(site: Path) -> dict:
    out = run_cli("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    return {p["name"]: p for p in json.loads(out.stdout)}


def test_scaffolded_plugin_installs_lists_trains_exports(tmp_path):
    created = run_cli("new-plugin", "shapes", "--dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    root = tmp_path / "zoo-shapes"
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(root)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    # The zoo under test (a worktree on PYTHONPATH) is imported, not the installed zoo-ml.
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    listed = run_cli("list", "--plugin", "shapes", env=env)
    assert listed.returncode == 0 and "shapes-net" in listed.stdout
    status = _status(site)["shapes"]
    assert (status["status"], status["version"], status["models"]) == ("loaded", "0.1.0", ["shapes-net"])
    assert status["source"] == "zoo-shapes 0.1.0" and status["problems"] == []

    run = tmp_path / "run"
    trained = run_cli("train", "shapes-net", "--out", str(run), "-q", "--json", env=env)
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["metrics"]["accuracy"] > 0.8
    exported = run_cli("export", str(run), env=env)
    assert exported.returncode == 0 and "parity" in exported.stdout, exported.stderr

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                           capture_output=True, text=True, env={**__import__("os").environ, **env},
                           cwd=tmp_path, timeout=600)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert run_cli("doctor", env=env).returncode == 0


def test_new_plugin_rejects_bad_names_and_existing_folders(tmp_path):
    bad = run_cli("new-plugin", "My-Plugin", "--dir", str(tmp_path))
    assert bad.returncode == 2 and "lower-case" in bad.stderr
    assert run_cli("new-plugin", "ok", "--dir", str(tmp_path)).returncode == 0
    again = run_cli("new-plugin", "ok", "--dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_broken_plugins_are_each_reported_and_the_rest_unaffected(site, tmp_path):
    install_fake(site, "imports_badly", "import no_such_module_anywhere\n",
                 MANIFEST.format(model="ib-model", name="imports_badly"))
    install_fake(site, "wrong_argname", """
        from zoo import hookimpl

        @hookimpl
        def register_models(registr):
            pass
    """, None)
    install_fake(site, "duplicate", GOOD.format(model="mlp"), None)
    install_fake(site, "never_registers", "", MANIFEST.format(model="ghost-model", name="never_registers"))
    install_fake(site, "builder_raises", """
        from zoo import hookimpl, ModelConfig

        def build(config, info):
            raise ValueError("cannot build today")

        @hookimpl
        def register_models(register):
            register("raiser", build, ModelConfig)
    """, MANIFEST.format(model="raiser", name="builder_raises"))
    install_fake(site, "bad_manifest", GOOD.format(model="bm"), "[models.bm\nplugin = 1\n")
    install_fake(site, "fine", GOOD.format(model="fine-model"), MANIFEST.format(model="fine-model", name="fine"))
    # The zoo under test (a worktree on PYTHONPATH) is imported, not the installed zoo-ml.
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    status = _status(site)
    assert status["imports_badly"]["status"] == "failed"
    assert "No module named 'no_such_module_anywhere'" in status["imports_badly"]["error"]
    assert status["wrong_argname"]["status"] == "failed"
    assert "registr" in status["wrong_argname"]["error"] and "register_models" in status["wrong_argname"]["error"]
    assert status["duplicate"]["status"] == "failed"
    assert "registers model 'mlp', which plugin 'regression' declares" in status["duplicate"]["error"]
    assert status["never_registers"]["status"] == "loaded"
    assert any("'ghost-model' is declared" in p for p in status["never_registers"]["problems"])
    assert status["bad_manifest"]["status"] == "failed" and "manifest" in status["bad_manifest"]["error"]
    assert status["fine"]["status"] == status["regression"]["status"] == "loaded"

    raised = run_cli("train", "raiser", "--out", str(tmp_path / "r"), env=env)
    assert raised.returncode == 2 and "Traceback" not in raised.stderr
    assert "plugin 'builder_raises' failed building model 'raiser': ValueError: cannot build today" in raised.stderr

    listed = run_cli("list", env=env)
    assert listed.returncode == 0 and "fine-model" in listed.stdout and "linear" in listed.stdout
    assert run_cli("--help", env=env).returncode == 0
    doctor = run_cli("doctor", env=env)
    assert doctor.returncode == 1
    for name in ("imports_badly", "wrong_argname", "duplicate", "never_registers", "bad_manifest"):
        assert name in doctor.stdout
    trained = run_cli("train", "fine-model", "--epochs", "1", "--out", str(tmp_path / "f"), "-q", env=env)
    assert trained.returncode == 0, trained.stderr


def test_list_with_several_third_party_plugins_stays_light(site):
    for i in range(5):
        install_fake(site, f"plugin_{i}", "raise RuntimeError('must not be imported by zoo list')\n",
                     MANIFEST.format(model=f"model-{i}", name=f"plugin_{i}"))
    code = ("import sys, time; t = time.perf_counter(); from zoo.cli import main\n"
            "try:\n    main(['list'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules, 'PLUGINS', [m for m in sys.modules if m.startswith('plugin_')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert "TORCH False PLUGINS []" in out.stdout
    assert all(f"model-{i}" in out.stdout for i in range(5))
