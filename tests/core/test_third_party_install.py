"""A plugin made by ``zoo new-plugin``, installed for real by pip into a throwaway environment.

Each kind of install is tried (regular, ``--target``, and setuptools' three editable modes: the
default finder, ``compat`` and ``strict``): the manifest must be found for all of them. The
``pip install -e`` one then runs the steps ``zoo new-plugin`` prints, verbatim, as the author would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import site
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow

# The throwaway environments reach no index: the build runs with the setuptools already installed,
# and the plugin's dependency (zoo-ml) is the zoo under test. Settings, not flags, so that the
# printed commands still run verbatim.
PIP_SETTINGS = {"PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
SCRIPTS = {"pip": "pip._internal.cli.main", "zoo": "zoo.cli", "pytest": "pytest"}


def make_venv(root: Path) -> dict:
    """A fresh virtual environment at ``root`` that sees this interpreter's packages (torch, pip,
    setuptools, the zoo under test through PYTHONPATH or its own install) behind its own; its
    ``bin`` holds ``pip``, ``zoo`` and ``pytest``. Returns the environment to run commands in."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    # Processed after the venv's own .pth files (editable finders), so its packages come first.
    Path(purelib, "zzz_outer_site.pth").write_text(f"import site; list(map(site.addsitedir, {outer!r}))\n")
    for script, module in SCRIPTS.items():
        path = root / "bin" / script
        path.write_text(f"#!{python}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        path.chmod(0o755)
    return {**os.environ, **PIP_SETTINGS, "VIRTUAL_ENV": str(root),
            "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def shell(command: str, env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def new_plugin(name: str, cwd: Path, env: dict) -> list[str]:
    """Run ``zoo new-plugin NAME`` in ``cwd``; returns the next steps it printed."""
    created = shell(f"zoo new-plugin {name}", env, cwd)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    return [line.strip() for line in lines[lines.index("next steps:") + 1:]]


def imported_modules(stderr: str) -> set[str]:
    """Top-level module names from ``python -X importtime`` lines (``... | torch.nn``)."""
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s*([\w]+)", stderr, re.MULTILINE)}


def test_editable_install_then_the_printed_next_steps_verbatim(tmp_path):
    env = make_venv(tmp_path / "venv")
    steps = new_plugin("my-family", tmp_path, env)
    assert steps == ["pip install -e ./zoo-my-family", "zoo list --plugin my-family", "pytest zoo-my-family/tests",
                     "zoo train my-family-net --out runs/my-family-net"]
    install, listing, tests, train = steps

    installed = shell(install, env, tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    record = next((tmp_path / "venv").glob("lib/*/site-packages/zoo_my_family-0.1.0.dist-info/RECORD")).read_text()
    assert "zoo.toml" not in record  # an editable install: the manifest is not among its files

    listed = shell(listing, {**env, "PYTHONPROFILEIMPORTTIME": "1"}, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:2] == ["my-family-net", "my-family"]
    assert "torch" not in imported_modules(listed.stderr)  # read from zoo.toml; the plugin is not imported

    passed = shell(tests, env, tmp_path)
    assert passed.returncode == 0 and "3 passed" in passed.stdout, passed.stdout + passed.stderr

    trained = shell(train, env, tmp_path)
    assert trained.returncode == 0, trained.stderr
    summary = json.loads((tmp_path / "runs" / "my-family-net" / "summary.json").read_text())
    assert (summary["status"], summary["plugin"]) == ("finished", "my-family")
    assert (tmp_path / "runs" / "my-family-net" / "model.onnx").is_file()


@pytest.mark.parametrize("kind", ["regular", "target", "editable-compat", "editable-strict"])
def test_manifest_is_found_for_every_kind_of_install(tmp_path, kind):
    env = make_venv(tmp_path / "venv")
    new_plugin("shapes", tmp_path, env)
    command = {
        "regular": "pip install ./zoo-shapes",
        "target": "pip install --target site ./zoo-shapes",
        "editable-compat": "pip install -e ./zoo-shapes --config-settings editable_mode=compat",
        "editable-strict": "pip install -e ./zoo-shapes --config-settings editable_mode=strict",
    }[kind]
    installed = shell(command, env, tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    if kind == "target":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "site"), env.get("PYTHONPATH")]))

    listed = shell("zoo list --plugin shapes --json", env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [m["name"] for m in json.loads(listed.stdout)] == ["shapes-net"]
    plugins = shell("zoo plugins --json", env, tmp_path)
    status = {p["name"]: p for p in json.loads(plugins.stdout)}["shapes"]
    assert (status["status"], status["models"], status["problems"]) == ("loaded", ["shapes-net"], [])


def test_new_plugin_accepts_dashes_and_says_what_it_derived(tmp_path):
    created = run_cli("new-plugin", "my-family", "--dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    first = created.stdout.splitlines()[0]
    for derived in ("distribution zoo-my-family", "module zoo_my_family", "my-family-net", "my-family-blobs"):
        assert derived in first
    root = tmp_path / "zoo-my-family"
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "zoo-my-family"' in pyproject and '"my-family" = "zoo_my_family"' in pyproject
    assert 'plugin = "my-family"' in (root / "zoo_my_family" / "zoo.toml").read_text()
    assert f"pip install -e {shlex.quote(str(root))}" in created.stdout
    for bad in ("My-Family", "my--family", "my-family-", "2x", "my.family"):
        refused = run_cli("new-plugin", bad, "--dir", str(tmp_path))
        assert refused.returncode == 2 and "lower-case" in refused.stderr and "Traceback" not in refused.stderr
