"""A pulled model in Python (:func:`zoo.pull`) and fine-tuning from pushed weights (``--init``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.core.contract.errors import ZooError
from zoo.core.train.runs import Run


def pull(target: str, providers: list[str] | None = None, log=None):
    """``zoo.pull(...)``: pull ``[hub:][HUB/]NAME[:TAG]`` (verified, cached) and return a
    :class:`~zoo.core.hub.model.HubModel`: ``.session`` runs the ONNX file in onnxruntime,
    ``.module`` is the torch module with the pushed weights, ``.card`` the model card's metadata.

    Example::

        import zoo
        model = zoo.pull("my-net-iris:v1")
        outputs = model.session(x=features, edge_index=edges)
    """
    from zoo.core.hub.pull import pull as pull_folder

    pulled = pull_folder(target, log=log)
    return HubModel(Path(pulled.path), str(pulled.ref), providers)


class OnnxModel:
    """An onnxruntime session over ``model.onnx`` that takes and returns named numpy arrays.

    ``model(x)`` (one input) or ``model(ids=..., mask=...)`` returns ``{output name: array}``;
    inputs are checked against the signature and cast to its dtypes. ``provider`` says what
    really runs (CUDA when usable, else CPU).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None) -> None:
        from zoo.core.deploy.runtime import make_session, read_metadata

        self.path = Path(path)
        self.session = make_session(self.path, providers=providers)
        self.metadata = read_metadata(self.session)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.provider = self.session.get_providers()[0]

    def __call__(self, *arrays, **named) -> dict[str, Any]:
        import numpy as np

        from zoo.core.deploy.runtime import check_and_cast, run_model

        if len(arrays) > len(self.input_names):
            raise ZooError(f"{self.path} takes {len(self.input_names)} input(s) "
                           f"({', '.join(self.input_names)}), got {len(arrays)} arrays")
        feed = {**dict(zip(self.input_names, arrays)), **named}
        feed = check_and_cast(self.session, {k: np.asarray(v) for k, v in feed.items()})
        return dict(zip(self.output_names, run_model(self.session, feed)))


class HubModel:
    """What :func:`zoo.pull` returns: the verified folder (``path``, a run directory), the model
    card's metadata (``card``), an :class:`OnnxModel` (``session``) and the torch module
    (``module``, built from ``config.toml`` and the pushed weights, eval mode, on the CPU)."""

    def __init__(self, path: Path, ref: str, providers: list[str] | None = None) -> None:
        self.path, self.ref = Path(path), ref
        self.card = json.loads((self.path / "manifest.json").read_text(encoding="utf-8"))["card"]
        self.session = OnnxModel(self.path / Run.ONNX, providers)
        self._module = None

    @property
    def module(self):
        if self._module is None:
            self._module = build_module(self.path)
        return self._module

    def predict(self, input_file: str) -> list[Any]:
        """``zoo predict`` on a file (.npy, .json, raw text or rows as the run learned to read them)."""
        from zoo.core import api

        return api.predict(str(self.path), input_file)[0]

    def __repr__(self) -> str:
        return f"HubModel({self.ref!r}, path={str(self.path)!r}, provider={self.session.provider!r})"


def build_module(path: Path):
    """The torch module of a pulled folder, without its training data: the builder gets the
    ``data_info`` saved with the weights."""
    from zoo.core import api
    from zoo.core.train import checkpoint
    from zoo.core.train.data import DataInfo

    run = Run.open(path)
    saved = run.read_config()
    _, spec, run_config = api.resolve_config(saved["model"]["name"], options=saved)
    payload = checkpoint.load(run.file(Run.BEST))
    if not isinstance(payload.get("data_info"), dict):
        raise ZooError(f"{run.file(Run.BEST)} carries no data_info: pull a model pushed by `zoo push`")
    info = DataInfo(**{**payload["data_info"], "input_shape": tuple(payload["data_info"]["input_shape"])})
    net = api.build_model(spec, run_config, info)
    api._check_fits(net, payload, run.file(Run.BEST))
    net.load_state_dict(payload["model"])
    return net.eval()


def _own_buffers(net) -> set[str]:
    """State-dict keys of the input/target standardisation wrapper: statistics of the data being
    trained on now, kept rather than taken from the source run."""
    from zoo.core.train.data import Standardize

    if not isinstance(net, Standardize):
        return set()
    return {name for name, _ in net.named_buffers(recurse=False)}


def init_weights(net, source: str, log=None) -> str:
    """Load the weights of ``source`` (``hub:[HUB/]NAME[:TAG]`` or a run directory) into ``net``
    (``zoo train --init``). Every tensor must exist in both with the same shape; otherwise one
    line lists what differs and how to re-size the model. Returns the resolved source."""
    from zoo.core.train import checkpoint
    from zoo.core.hub.pull import pull
    from zoo.core.hub.ref import is_hub_target

    if is_hub_target(source):
        pulled = pull(source, log=log)
        folder, source = pulled.path, f"hub:{pulled.ref}"
    else:
        folder = Path(source)
    path = folder / Run.BEST if (folder / Run.BEST).is_file() else folder / Run.LAST
    if not path.is_file():
        raise ZooError(f"--init {source}: no {Run.BEST} or {Run.LAST} there (a run directory or hub:NAME)")
    weights = checkpoint.load(path)["model"]
    own = _own_buffers(net)
    target = {k: v for k, v in net.state_dict().items() if k not in own}
    problems = [f"{k}: {tuple(weights[k].shape)} there, {tuple(v.shape)} here"
                for k, v in target.items() if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    problems += [f"{k} missing in {source}" for k in target if k not in weights]
    problems += [f"{k} not in this model" for k in weights if k not in target and k not in own]
    if problems:
        raise ZooError(f"--init {source}: its weights do not fit this model ({'; '.join(problems[:3])}"
                       f"{'; ...' if len(problems) > 3 else ''}); a different head or size: re-size it "
                       f"with --set model.* (the source's [model] is in {folder / Run.CONFIG})")
    net.load_state_dict({**net.state_dict(), **{k: weights[k] for k in target}})
    if log:
        log(f"initialised {len(target)} tensors from {source}")
    return source
