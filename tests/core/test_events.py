"""Training events and the export override, as a logger or tracker plugin sees them."""

from __future__ import annotations

import pytest
import torch
from helpers import with_plugin
from zoo import hookimpl
from zoo.core import api

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow

OPTIONS = {"train": {"epochs": 2, "progress": False}}


class Recorder:
    """A tracker built only on the public hooks."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @hookimpl
    def on_train_start(self, run, model, config):
        self.calls.append(("start", config["model"]["name"], isinstance(model, torch.nn.Module)))

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        self.calls.append(("epoch", epoch, sorted(metrics)))

    @hookimpl
    def on_checkpoint_saved(self, run, path, epoch, best):
        self.calls.append(("checkpoint", path.name, epoch, best))

    @hookimpl
    def on_train_end(self, run, summary):
        self.calls.append(("end", summary["status"], "accuracy" in summary["metrics"]))


def test_training_events_in_order(tmp_path):
    recorder = Recorder()
    with_plugin(recorder, lambda: api.train("logistic", options=OPTIONS, out=str(tmp_path / "r"), log=None))
    kinds = [c[0] for c in recorder.calls]
    assert kinds[0] == "checkpoint" and recorder.calls[0][1:] == ("checkpoint-last.pt", 0, False)
    assert recorder.calls[1] == ("start", "logistic", True)
    assert kinds[-1] == "end" and recorder.calls[-1] == ("end", "finished", True)
    epochs = [c for c in recorder.calls if c[0] == "epoch"]
    assert [e[1] for e in epochs] == [1, 2]
    assert {"train_loss", "val_accuracy", "val_loss", "lr", "epoch_seconds"} <= set(epochs[0][2])
    saved = [c for c in recorder.calls if c[0] == "checkpoint" and c[2] == 1]
    assert ("checkpoint", "checkpoint-last.pt", 1, False) in saved


def test_a_failing_listener_warns_and_training_goes_on(tmp_path, recwarn):
    class Broken:
        @hookimpl
        def on_epoch_end(self, run, epoch, metrics):
            raise RuntimeError("tracker down")

    summary = with_plugin(Broken(), lambda: api.train("logistic", options=OPTIONS, out=str(tmp_path / "r"),
                                                        log=None))
    assert summary["status"] == "finished"
    assert any("tracker down" in str(w.message) for w in recwarn)


class ScaledExport:
    """An export override: exports ``2 * model(x) / 2`` through its own call (same function)."""

    def __init__(self) -> None:
        self.seen = []

    @hookimpl
    def export_model(self, model, task, model_name, path, opset):
        self.seen.append(model_name)
        if model_name != "logistic":
            return None

        class Deployable(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x) * 2 / 2

        torch.onnx.export(Deployable(model), (torch.randn(3, 30),), str(path), input_names=["x"],
                          output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                          dynamo=True, external_data=False, opset_version=opset)
        return path


def test_export_override_is_used_and_parity_checked(tmp_path):
    plugin = ScaledExport()
    summary = with_plugin(plugin, lambda: api.train("logistic", options=OPTIONS, out=str(tmp_path / "r"),
                                                      log=None))
    assert plugin.seen == ["logistic"]
    assert summary["parity"] < 1e-4
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "r" / "model.onnx")).graph.node}
    assert "Div" in ops  # the override's graph, not the default export


class TextExplainer:
    """An ``explain_model`` implementation: dumps the first layer's weights as text."""

    @hookimpl
    def explain_model(self, model, model_name, task, sample, info, out_dir):
        if model_name != "logistic":
            return None
        from zoo.core.train.data import unwrap

        path = out_dir / "weights.txt"
        path.write_text(str(unwrap(model).linear.weight.detach().tolist()))
        return {"files": {"weights": str(path)}, "label": int(sample["y"][0])}


def test_explain_hook_is_called_with_one_test_sample(tmp_path):
    api.train("logistic", options=OPTIONS, out=str(tmp_path / "r"), log=None)
    report = with_plugin(TextExplainer(), lambda: api.explain(str(tmp_path / "r"), index=3))
    assert (tmp_path / "r" / "explain-3" / "weights.txt").read_text().startswith("[[")
    assert report["label"] in (0, 1)
    import pytest

    from zoo.core.contract.errors import ZooError

    with pytest.raises(ZooError, match="out of range"):
        api.explain(str(tmp_path / "r"), index=10_000)
