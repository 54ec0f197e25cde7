"""torch-sparse's CPU neighbour sampler, compiled at run time, so PyG's real ``NeighborLoader`` runs
without ``pyg-lib`` or ``torch-sparse`` installed (README.md here says what was vendored).

:func:`build` compiles ``csrc/`` with :func:`torch.utils.cpp_extension.load` (g++ and ninja; the
build folder is kept, so a second run only loads the library) and registers the operator
``torch.ops.torch_sparse.neighbor_sample``, the name PyG's homogeneous ``NeighborSampler`` calls.
:func:`pyg_uses_it` makes only ``torch_geometric.sampler.neighbor_sampler`` see
``WITH_TORCH_SPARSE = True``: the rest of PyG (``EdgeIndex``'s sparse matmul, ``ToSparseTensor``,
the cluster and ShaDow loaders) keeps its ``WITH_TORCH_SPARSE = False`` paths, since only this one
operator exists. :func:`check` samples a small random graph and asserts the output is a valid
neighbour sample.

The sampler (Hamilton et al. 2017, Alg. 2, as torch-sparse writes it): seeds first; for hop
``l`` with fan-out ``k_l``, every node added at hop ``l - 1`` draws ``min(k_l, d)`` of its ``d``
in-neighbours without replacement (Floyd's algorithm, ``torch::randint`` so
``torch.manual_seed`` fixes it); a node reached twice is one node; edges are
(neighbour → node) in local ids, with their positions in the CSC ``row`` array.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
NAME = "zoo_pyg_neighbor_sample"
STALE_LOCK_S = 600  # a build lock older than this is taken for a killed build
SOURCES = [HERE / "csrc" / "neighbor_sample.cpp", HERE / "csrc" / "cpu" / "neighbor_sample_cpu.cpp"]


def default_build_dir() -> Path:
    """``$ZOO_CACHE_DIR/.pyg_sampler``, else the user cache (``~/.cache/zoo/pyg_sampler``), one
    folder per torch version."""
    if os.environ.get("ZOO_CACHE_DIR"):
        root = Path(os.environ["ZOO_CACHE_DIR"]).expanduser() / ".pyg_sampler"
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("zoo")) / "pyg_sampler"
    return root / f"torch-{torch.__version__}"


def available() -> bool:
    """Whether ``torch.ops.torch_sparse.neighbor_sample`` exists in this process."""
    try:
        torch.ops.torch_sparse.neighbor_sample  # noqa: B018 - the lookup raises when it does not
    except (AttributeError, RuntimeError):
        return False
    return True


def missing_tools() -> str | None:
    """Why a build cannot start (no C++ compiler or no ninja), or None."""
    from torch.utils.cpp_extension import is_ninja_available

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler!r} not on PATH)"
    if not is_ninja_available():
        return "ninja is not installed"
    return None


def build(build_dir: str | Path | None = None, verbose: bool = False) -> str | None:
    """Compile (or reuse) and load the sampler; None on success, else one line saying why not.

    A compiler's own messages go to stderr only with ``verbose``; the returned line names the
    build folder, whose ``build.ninja`` reproduces the failure.
    """
    if available():
        return None
    why = missing_tools()
    if why:
        return why
    folder = Path(build_dir) if build_dir else default_build_dir()
    lock = folder / "lock"  # torch waits on it forever; a build takes a minute or two
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        return f"{lock} is over {STALE_LOCK_S // 60} minutes old (a killed build?): delete it to rebuild"
    logger = logging.getLogger("torch.utils.cpp_extension")   # its multi-line compiler warnings
    level = logger.level
    if not verbose:
        logger.setLevel(logging.ERROR)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        from torch.utils.cpp_extension import load

        load(NAME, [str(s) for s in SOURCES], extra_cflags=["-O3"],
             extra_include_paths=[str(HERE / "third_party")], build_directory=str(folder),
             is_python_module=False, verbose=verbose)
    except Exception as error:  # noqa: BLE001 - any build or load failure means "fall back"
        lines = str(error).strip().splitlines() or [type(error).__name__]
        detail = next((line.strip() for line in lines[1:] if "error" in line.lower()), lines[0])
        return f"building it in {folder} failed: {detail[:200]}"
    finally:
        logger.setLevel(level)
    return None if available() else f"{folder}: built, but torch.ops.torch_sparse.neighbor_sample is missing"


def pyg_uses_it() -> None:
    """Let PyG's ``NeighborSampler`` (and nothing else in PyG) take its torch-sparse path.

    ``torch_geometric/sampler/neighbor_sampler.py`` reads ``torch_geometric.typing.WITH_TORCH_SPARSE``
    through its module-global ``torch_geometric``; that one global is replaced by a view of the
    package whose ``typing`` says True (pyg-lib, when present, still comes first).
    """
    import torch_geometric
    import torch_geometric.sampler.neighbor_sampler as sampler_module

    typing_view = types.ModuleType("torch_geometric.typing")
    typing_view.__dict__.update(vars(torch_geometric.typing))
    typing_view.WITH_TORCH_SPARSE = True

    class PackageView(types.ModuleType):
        def __getattr__(self, name):
            return getattr(torch_geometric, name)

    view = PackageView("torch_geometric")
    view.typing = typing_view
    sampler_module.torch_geometric = view


def sample(colptr: torch.Tensor, row: torch.Tensor, seeds: torch.Tensor, fanouts: list[int]):
    """``(nodes, row, col, edge)`` of the vendored operator (directed, without replacement)."""
    return torch.ops.torch_sparse.neighbor_sample(colptr, row, seeds, list(fanouts), False, True)


def check(num_nodes: int = 300, degree: int = 8, fanouts: tuple[int, ...] = (5, 3), seed: int = 0) -> int:
    """Sample 10 batches of a random graph and assert each is a valid neighbour sample: seeds first,
    distinct nodes, every edge (local ``row[e]`` → ``col[e]``) exists in the graph at position
    ``edge[e]``, every node added at hop ``l`` draws ``min(fanouts[l], in-degree)`` distinct
    neighbours, and only nodes of the previous hop draw. Returns the number of edges checked."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(num_nodes, (num_nodes * degree,), generator=generator)
    dst = torch.randint(num_nodes, (num_nodes * degree,), generator=generator)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    order = torch.argsort(dst * num_nodes + src)                        # CSC: grouped by target
    src, dst = src[order], dst[order]
    colptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    colptr[1:] = torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0)
    indegree = colptr[1:] - colptr[:-1]
    torch.manual_seed(seed)
    checked = 0
    for _ in range(10):
        seeds = torch.randperm(num_nodes, generator=generator)[:16]
        nodes, row, col, edge = sample(colptr, src, seeds, list(fanouts))
        assert torch.equal(nodes[:16], seeds) and nodes.unique().numel() == nodes.numel(), "seeds first, distinct"
        assert torch.equal(src[edge], nodes[row]) and torch.equal(dst[edge], nodes[col]), "an edge not in the graph"
        hop_start, hop_end = 0, 16
        for hop, fanout in enumerate(fanouts):
            drawn = torch.bincount(col, minlength=nodes.numel())
            hop_nodes = torch.arange(hop_start, hop_end)
            hop_edges = (col >= hop_start) & (col < hop_end)
            expected = torch.clamp(indegree[nodes[hop_nodes]], max=fanout)
            assert torch.equal(drawn[hop_nodes], expected), f"hop {hop}: not min(fan-out, degree) neighbours"
            pairs = edge[hop_edges] * nodes.numel() + col[hop_edges]
            assert pairs.unique().numel() == pairs.numel(), f"hop {hop}: a neighbour drawn twice"
            reached = int(row[hop_edges].max()) + 1 if bool(hop_edges.any()) else 0
            hop_start, hop_end = hop_end, max(hop_end, reached)        # nodes first reached at this hop
        assert int(col.max()) < hop_start, "a node of the last hop drew neighbours"
        checked += int(edge.numel())
    return checked


__all__ = ["available", "build", "check", "default_build_dir", "missing_tools", "pyg_uses_it", "sample"]
