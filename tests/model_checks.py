"""Checks every catalogue model passes, parametrized by family: ``tests/models/test_FAMILY.py``.

Each family's module imports these tests and :func:`pytest_generate_tests` and names its
``PLUGIN``; the tests then run for every model that plugin declares, so the day a model is
declared it is covered. A family without a module of its own (a new one) is covered by
``tests/models/test_other_families.py`` (``PLUGIN = OTHERS``). One module a family keeps
``--dist loadfile`` from pinning all the models on one worker.

For each model: it trains one short epoch on its default dataset (shrunk by ``data.limit`` and
the manifest's ``smoke`` overrides), its metrics are finite, a few optimizer steps on one batch
lower the loss, and the export passes onnx.checker, the symbolic-axes check and the parity check
at shapes other than the traced one.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import quick_options
from zoo.core import api
from zoo.core.contract.catalogue import load_catalogue


#: ``PLUGIN = OTHERS``: every family that has no ``tests/models/test_FAMILY.py`` of its own.
OTHERS = "*others*"


def models_of(plugin: str) -> list[str]:
    """The catalogue's models of ``plugin`` (or of the families without a module), sorted."""
    models = load_catalogue().models.items()
    if plugin != OTHERS:
        return sorted(name for name, entry in models if entry.plugin == plugin)
    own = {path.stem.removeprefix("test_") for path in (Path(__file__).parent / "models").glob("test_*.py")}
    return sorted(name for name, entry in models if entry.plugin not in own)


def pytest_generate_tests(metafunc):
    """``name`` runs over the models of the importing module's ``PLUGIN``."""
    plugin = getattr(metafunc.module, "PLUGIN", None)
    if plugin is not None and "name" in metafunc.fixturenames:
        metafunc.parametrize("name", models_of(plugin))


@pytest.mark.slow
def test_trains_and_exports_with_parity(name, tmp_path):
    entry = load_catalogue().models[name]
    summary = api.train(name, options=quick_options(entry), out=str(tmp_path / "run"), log=None)
    assert summary["status"] == "finished"
    assert all(math.isfinite(v) or k == "r2" for k, v in summary["metrics"].items()), summary["metrics"]
    assert (tmp_path / "run" / "model.onnx").is_file()
    assert summary["parity"] is not None and summary["parity"] <= 1e-3
    # parity was checked at more than the traced shape
    assert len({str(s) for s in summary["parity_shapes"]}) >= 2


def test_a_few_steps_lower_the_loss(name):
    entry = load_catalogue().models[name]
    _, spec, run_config = api.resolve_config(name, options=quick_options(entry))
    torch.manual_seed(0)
    dataset, task = api.load_data(run_config, entry)
    model = api.build_model(spec, run_config, dataset.info)
    batch = dataset.train.batch(torch.arange(min(16, len(dataset.train))))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(8):
        loss = task.loss(model(*task.inputs(batch)), batch)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
