"""benchmarks/pyg_sampler: torch-sparse's neighbour sampler, built at run time for PyG's NeighborLoader.

The fast tests need no compiler: the validity check is run against a reference sampler written
here (and against broken ones, which it must reject), the PyG switch is checked to touch only the
sampler module, and the benchmark's fallback is run. The slow one compiles the vendored C++.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def pyg_sampler(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import pyg_sampler

    return pyg_sampler


def reference_sample(colptr, row, seeds, fanouts, extra_draw=False, foreign_edge=False):
    """torch-sparse's output layout, in Python: seeds first, each new node draws
    ``min(k, degree)`` distinct in-edges; ``extra_draw``/``foreign_edge`` break it on purpose."""
    nodes, local, rows, cols, edges = list(map(int, seeds)), {}, [], [], []
    local.update({v: i for i, v in enumerate(nodes)})
    begin, end = 0, len(nodes)
    for k in fanouts:
        for i in range(begin, end):
            start, stop = int(colptr[nodes[i]]), int(colptr[nodes[i] + 1])
            offsets = torch.randperm(stop - start)[:k] + start
            if extra_draw and stop - start > k:
                offsets = torch.randperm(stop - start)[:k + 1] + start
            for offset in offsets.tolist():
                v = int(row[offset])
                if v not in local:
                    local[v] = len(nodes)
                    nodes.append(v)
                rows.append(local[v])
                cols.append(i)
                edges.append(offset)
        begin, end = end, len(nodes)
    if foreign_edge:
        rows[0] = (rows[0] + 1) % len(nodes)
    return tuple(torch.tensor(t, dtype=torch.long) for t in (nodes, rows, cols, edges))


def test_check_accepts_a_valid_sampler_and_rejects_broken_ones(pyg_sampler, monkeypatch):
    monkeypatch.setattr(pyg_sampler, "sample", reference_sample)
    assert pyg_sampler.check(num_nodes=80, degree=6) > 100
    for broken, message in [({"extra_draw": True}, "not min"), ({"foreign_edge": True}, "not in the graph")]:
        monkeypatch.setattr(pyg_sampler, "sample", lambda *a, b=broken: reference_sample(*a, **b))
        with pytest.raises(AssertionError, match=message):
            pyg_sampler.check(num_nodes=80, degree=6)


def test_only_pygs_neighbour_sampler_sees_torch_sparse(pyg_sampler, monkeypatch):
    pytest.importorskip("torch_geometric")
    import torch_geometric
    import torch_geometric.sampler.neighbor_sampler as module

    monkeypatch.setattr(module, "torch_geometric", module.torch_geometric)  # restored after the test
    before = torch_geometric.typing.WITH_TORCH_SPARSE
    pyg_sampler.pyg_uses_it()
    assert module.torch_geometric.typing.WITH_TORCH_SPARSE is True
    assert torch_geometric.typing.WITH_TORCH_SPARSE is before                # the rest of PyG unchanged
    assert module.torch_geometric.typing.WITH_PYG_LIB is torch_geometric.typing.WITH_PYG_LIB
    assert module.torch_geometric.data is torch_geometric.data                # everything else passes through


def test_build_says_why_in_one_line_without_a_compiler(pyg_sampler, monkeypatch, tmp_path):
    monkeypatch.setattr(pyg_sampler, "available", lambda: False)
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    why = pyg_sampler.build(tmp_path)
    assert why == "no C++ compiler ('no-such-compiler-here' not on PATH)"
    assert not any(tmp_path.iterdir())


def test_a_stale_build_lock_is_a_reason_not_a_hang(pyg_sampler, monkeypatch, tmp_path):
    if pyg_sampler.missing_tools():
        pytest.skip(pyg_sampler.missing_tools())
    monkeypatch.setattr(pyg_sampler, "available", lambda: False)
    lock = tmp_path / "lock"
    lock.touch()
    old = lock.stat().st_mtime - pyg_sampler.STALE_LOCK_S - 1
    os.utime(lock, (old, old))
    assert pyg_sampler.build(tmp_path) == f"{lock} is over 10 minutes old (a killed build?): delete it to rebuild"


def test_a_failed_build_is_one_line_with_the_compilers_error(pyg_sampler, monkeypatch, tmp_path):
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available() or shutil.which("g++") is None:
        pytest.skip("ninja or g++ is not installed")
    compiler = tmp_path / "cxx"  # answers --version like g++, fails every compilation
    compiler.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then exec g++ "$@"; fi\n'
                        'echo "x.cpp:3:10: fatal error: y.h: No such file or directory" >&2\nexit 1\n')
    compiler.chmod(0o755)
    monkeypatch.setattr(pyg_sampler, "available", lambda: False)
    monkeypatch.setenv("CXX", str(compiler))
    why = pyg_sampler.build(tmp_path / "build")
    assert why == f"building it in {tmp_path / 'build'} failed: x.cpp:3:10: fatal error: y.h: No such file or directory"


def _gnn_sampled():
    spec = importlib.util.spec_from_file_location("gnn_sampled", BENCH / "gnn_sampled.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(capsys, *extra):
    pytest.importorskip("torch_geometric")
    argv = ["--nodes", "600", "--epochs", "1", "--batch-size", "128", "--fanouts", "5", "3", *extra]
    assert _gnn_sampled().main(argv) == 0
    return capsys.readouterr()


@pytest.mark.slow
def test_benchmark_falls_back_with_a_reason(capsys):
    if "torch_sparse" in sys.modules or importlib.util.find_spec("pyg_lib"):
        pytest.skip("a real NeighborLoader backend is installed")
    out = _run(capsys, "--no-build")
    assert "PyG NeighborLoader row skipped: it needs pyg-lib or torch-sparse" in out.err
    assert "Traceback" not in out.err
    assert "| zoo sampler + zoo GraphSAGE |" in out.out and "| zoo sampler + PyG SAGEConv (models only) |" in out.out
    assert "PyG NeighborLoader (" not in out.out


@pytest.mark.slow
def test_vendored_sampler_builds_and_feeds_pygs_neighbor_loader(pyg_sampler, capsys, tmp_path, monkeypatch):
    """Compiles the C++ (a minute or more), so: slow, and skipped without g++/ninja."""
    why = pyg_sampler.missing_tools()
    if why:
        pytest.skip(why)
    pytest.importorskip("torch_geometric")
    import torch_geometric.sampler.neighbor_sampler as module

    monkeypatch.setattr(module, "torch_geometric", module.torch_geometric)  # the benchmark's switch, undone after
    assert pyg_sampler.build(tmp_path) is None
    assert pyg_sampler.check() > 1000
    out = _run(capsys, "--build-dir", str(tmp_path))
    assert "| PyG NeighborLoader (" in out.out and "+ PyG SAGEConv |" in out.out
