"""`zoo train` lets the training data go once training is over, before the export and plots."""

from __future__ import annotations

import weakref

from zoo.core import api

OPTIONS = {"train": {"epochs": 1, "progress": False}}


def test_training_tensors_are_freed_before_the_export(tmp_path, monkeypatch):
    refs, seen = [], {}
    load_data, export_model = api.load_data, api.export_model

    def loading(run_config, entry):
        dataset, task = load_data(run_config, entry)
        refs.extend(weakref.ref(t) for t in dataset.train.tensors.values())
        seen["test"] = [weakref.ref(t) for t in dataset.test.tensors.values()]
        return dataset, task

    def exporting(run, net, task, dataset, *args, **kwargs):
        seen["train alive at export"] = [r() is not None for r in refs]
        seen["test alive at export"] = [r() is not None for r in seen["test"]]
        return export_model(run, net, task, dataset, *args, **kwargs)

    monkeypatch.setattr(api, "load_data", loading)
    monkeypatch.setattr(api, "export_model", exporting)
    summary = api.train("logistic", options=OPTIONS, out=str(tmp_path / "run"), log=None)
    assert summary["status"] == "finished" and summary["export"] == "ok"
    assert refs and seen["train alive at export"] == [False] * len(refs)
    assert all(seen["test alive at export"])  # the export's examples and the confusion matrix use it


def test_test_only_keeps_the_test_split_and_info(tmp_path):
    from zoo.core.train.data import DataInfo, Dataset, TensorSplit
    import torch

    train, val, test = (TensorSplit(x=torch.zeros(n, 2)) for n in (5, 2, 3))
    info = DataInfo(input_shape=(2,))
    kept = Dataset(train, test, info, val).test_only()
    assert kept.test is test and kept.train is test and kept.val is None and kept.info is info
