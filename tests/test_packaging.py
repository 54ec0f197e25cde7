"""The wheel carries the whole package: core, every plugin, registry.toml, the console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    # Build from a copy of the sources so the checkout gets no build/ or egg-info folders.
    ignore = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pyroot", ".whl", ".pytest_cache")
    shutil.copytree(ROOT, src / "zoo", ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(out), str(src / "zoo")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("zoo_ml-*.whl")
    return zipfile.ZipFile(path)


@pytest.mark.slow
def test_wheel_has_every_plugin_and_the_registry(wheel):
    names = set(wheel.namelist())
    assert "zoo/registry.toml" in names and "zoo/cli.py" in names and "zoo/__init__.py" in names
    assert "zoo/testing.py" in names  # the test API for plugin authors (zoo.testing)
    for source in [*ROOT.glob("core/*.py"), *ROOT.glob("plugins/**/*.py")]:
        assert f"zoo/{source.relative_to(ROOT).as_posix()}" in names, f"{source} missing from the wheel"
    assert not any(n.startswith("zoo/tests/") for n in names)
    for template in ROOT.glob("core/templates/**/*.tmpl"):  # zoo new-plugin writes these
        assert f"zoo/{template.relative_to(ROOT).as_posix()}" in names, f"{template} missing from the wheel"
    assert any(n.endswith("templates/plugin/__module__/models.py.tmpl") for n in names)


@pytest.mark.slow
def test_wheel_declares_the_console_script_and_dependencies(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "zoo = zoo.cli:main" in wheel.read(entry_points).decode()
    (metadata,) = [n for n in wheel.namelist() if n.endswith("METADATA")]
    text = wheel.read(metadata).decode()
    for dependency in ("torch", "pluggy", "pydantic", "click", "onnx", "onnxscript", "onnxruntime-gpu"):
        assert f"Requires-Dist: {dependency}" in text


def test_every_plugin_package_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for init in [*ROOT.glob("core/**/__init__.py"), *ROOT.glob("plugins/**/__init__.py")]:
        package = "zoo." + ".".join(init.parent.relative_to(ROOT).parts)
        assert package in listed, f"{package} is not in [tool.setuptools] packages"
