"""ONNX export with proof: checker, symbolic dynamic axes, and parity at untraced shapes.

``onnx.checker`` accepts files that compute wrong answers or whose "dynamic" axes were frozen
to the traced size (the dynamo exporter silently specialises axes it cannot keep dynamic). So
every export here is verified by (1) asserting that each axis the task declares dynamic is a
named symbolic dimension in the graph and (2) running the file in onnxruntime against torch at
shapes other than the traced one. Only a file that passes both is moved to its final path; a
failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import os
import re
import sys
import sysconfig
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from zoo.core.contract.errors import ExportError
from zoo.core.contract.task import Task


@dataclass
class ExportResult:
    path: Path
    parity: float               # max |torch − onnxruntime| over all checked inputs and outputs
    checked_shapes: list[list[list[int]]]
    provider: str


def _as_tuple(output: Any) -> tuple[torch.Tensor, ...]:
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)


# Where the exporter's console output goes while an export runs (the run's export.log, or a
# buffer that is dropped); nested captures (an ``export_model`` hook calling export_module) share it.
_console: contextvars.ContextVar[Any] = contextvars.ContextVar("zoo_export_console", default=None)


@contextlib.contextmanager
def captured_console(sink: Any = None):
    """Send what the block prints to ``sys.stdout`` and ``sys.stderr`` to ``sink``.

    The exporter dumps graphs, progress lines and advice on the console (30 lines of FX graph for
    a data-dependent ``.item()``); they belong in a log, not in the CLI's output, whose stdout may
    be JSON. Inside an outer capture, the outer sink is used.

    Args:
        sink (file-like, optional): an open text file; by default the outer capture's sink, or a
            buffer that is dropped.
    """
    sink = sink or _console.get() or io.StringIO()
    token = _console.set(sink)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield sink
    finally:
        _console.reset(token)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failure_reason(err: BaseException) -> str:
    """One line that says why an exporter failed: the root cause's type and first line, and
    where in the model's code it happened (the innermost frame outside torch).

    ``torch.onnx.export`` wraps the real error (``GuardOnDataDependentSymNode: Could not guard on
    data-dependent expression ...``) in 15 lines of advice ending "Refer to the full stack trace
    above"; the whole of it goes to the export log, this line to the user.
    """
    root = err
    while root.__cause__ is not None:
        root = root.__cause__
    lines = [line.strip() for line in _ANSI.sub("", str(root)).splitlines() if line.strip()]
    reason = f"{type(root).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    # Frames of torch, the standard library and zoo's core are machinery, not the model's code.
    machinery = (str(Path(torch.__file__).parent), sysconfig.get_paths()["stdlib"],
                 str(Path(__file__).parents[1]), "<")
    frames = [f for f in traceback.extract_tb(root.__traceback__) if not f.filename.startswith(machinery)]
    if frames:
        reason += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})"
    return reason if len(reason) <= 400 else reason[:397] + "..."


# The opset of the export in progress (None outside one): modules that emit ONNX operators of
# their own read it through export_opset() to choose between operator versions.
_opset: contextvars.ContextVar[int | None] = contextvars.ContextVar("zoo_export_opset", default=None)


def export_opset() -> int | None:
    """The ONNX opset that :func:`export_module` is exporting to while it traces, else None.

    ``torch.compiler.is_exporting()`` says that a trace runs, not for which opset; a module that
    writes an operator through ``torch.onnx.ops.symbolic`` needs to know whether the default
    domain has it (ONNX's ``Attention`` exists from opset 23).
    """
    return _opset.get()


def export_module(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                  input_names: tuple[str, ...], output_names: tuple[str, ...],
                  axes: dict[str, dict[int, str]], opset: int) -> None:
    """Run the dynamo exporter quietly and check that no dynamic axis was frozen.

    The building block of the default export, and what ``export_model`` overrides call to export
    their deployable module (an embedding lookup, a decoder step). Raises :class:`ExportError`.
    """
    import onnx
    import torch.onnx

    # The exporter prints progress lines, warnings and log records of its own (e.g. about
    # torchvision ops it skips); keep the CLI output clean. Real failures still raise.
    # onnxscript's optimizer logs a warning per op it does not constant-fold (dozens for a
    # q/k/v split of an attention layer); they are not problems of the exported model.
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    token = _opset.set(opset)
    try:
        with warnings.catch_warnings(), captured_console() as console:
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, args, str(path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes(input_names, axes),
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as err:  # noqa: BLE001 - any exporter failure becomes a one-line error
        # The whole story (torch's advice, the chained traceback) goes to the console's sink.
        traceback.print_exception(err, file=console)
        raise ExportError(f"ONNX export failed: {failure_reason(err)}") from err
    finally:
        _opset.reset(token)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    frozen = frozen_axes(onnx.load(str(path)), axes)
    if frozen:
        raise ExportError("ONNX export froze dynamic axes: " + "; ".join(frozen) +
                          " (trace with a size ≥ 2 on every dynamic axis, or rewrite the loop)")


def dynamic_shapes(input_names: tuple[str, ...], axes: dict[str, dict[int, str]]) -> tuple:
    """torch.export dynamic shapes from the task's named axes; one ``Dim`` per name, so inputs
    that share an axis name (``tokens`` and ``lengths`` share ``batch``) share the symbol."""
    from torch.export import Dim

    dims: dict[str, Any] = {}

    def dim(name: str):
        if name not in dims:
            dims[name] = Dim("".join(c if c.isalnum() else "_" for c in name))
        return dims[name]

    return tuple({axis: dim(label) for axis, label in axes.get(name, {}).items()} or None
                 for name in input_names)


def frozen_axes(onnx_model, axes: dict[str, dict[int, str]]) -> list[str]:
    """Axes declared dynamic that the graph has as fixed numbers (a silent specialisation)."""
    problems = []
    values = {v.name: v for v in [*onnx_model.graph.input, *onnx_model.graph.output]}
    for name, dims in axes.items():
        value = values.get(name)
        if value is None:
            problems.append(f"{name}: missing from the graph")
            continue
        shape = value.type.tensor_type.shape.dim
        for axis in dims:
            if axis >= len(shape):
                problems.append(f"{name}[{axis}]: graph has rank {len(shape)}")
            elif not shape[axis].dim_param:
                problems.append(f"{name}[{axis}] frozen to {shape[axis].dim_value}")
    return problems


def export_onnx(model: nn.Module, task: Task, example_inputs: list[tuple[torch.Tensor, ...]],
                axes: dict[str, dict[int, str]], path: str | Path, *, opset: int = 18,
                atol: float = 1e-4, rtol: float = 1e-3, metadata: dict[str, Any] | None = None,
                override=None, log: str | Path | None = None) -> ExportResult:
    """Export ``model`` to ``path`` and verify it; raises ExportError (no file left) on failure.

    :param example_inputs: the first tuple is traced; every tuple is checked for parity
    :param override: ``callable(model, path) -> Path | None`` (the ``export_model`` hook)
    :param log: a file for everything the exporter and the override print, and the whole of a
        failure (a run's ``export.log``); without it that output is dropped
    """
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(open(log, "w", encoding="utf-8")) if log is not None else None
        console = stack.enter_context(captured_console(sink))
        try:
            return _export_verified(model, task, example_inputs, axes, Path(path), opset, atol, rtol,
                                    metadata, override)
        except ExportError as err:
            print(f"error: {err}", file=console)  # the exporter's own traceback is above it
            raise
        except BaseException as err:
            traceback.print_exception(err, file=console)
            raise


def _export_verified(model, task, example_inputs, axes, path: Path, opset, atol, rtol, metadata,
                     override) -> ExportResult:
    """:func:`export_onnx` inside its console capture."""
    import onnx
    from zoo.core.deploy.runtime import make_session

    model = model.eval().to("cpu")
    inputs = [tuple(t.detach().cpu() for t in args) for args in example_inputs]
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # The frozen-axes check runs inside export_module, i.e. whenever the default export ran.
        if override is None or override(model, tmp) is None:
            export_module(model, inputs[0], tmp, task.input_names, task.output_names, axes, opset)
        onnx_model = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = onnx_model.metadata_props.add()
            entry.key = key
            entry.value = value if isinstance(value, str) else json.dumps(value)
        onnx.save(onnx_model, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as err:  # noqa: BLE001
            traceback.print_exception(err, file=sys.stderr)  # (the console capture)
            raise ExportError(f"onnx.checker rejected the export: {failure_reason(err)}") from err
        session = make_session(tmp, exact=True)  # float32 on CUDA too: no TF32
        input_names = [i.name for i in session.get_inputs()]
        worst = 0.0
        shapes = []
        for args in inputs:
            with torch.no_grad():
                expected = [t.detach().float().numpy() for t in _as_tuple(model(*args))]
            feed = {name: t.numpy() for name, t in zip(input_names, args)}
            got = session.run(None, feed)
            shapes.append([list(t.shape) for t in args])
            if len(got) != len(expected):
                raise ExportError(f"ONNX model has {len(got)} outputs, torch {len(expected)}")
            for ref, out in zip(expected, got):
                if ref.shape != out.shape:
                    raise ExportError(f"parity: output shape {out.shape} in onnxruntime vs {ref.shape} in "
                                      f"torch for inputs {shapes[-1]}")
                diff = float(np.max(np.abs(ref - out.astype(np.float32)))) if ref.size else 0.0
                worst = max(worst, diff)
                if not np.allclose(out, ref, atol=atol, rtol=rtol, equal_nan=True):
                    raise ExportError(f"parity check failed for inputs {shapes[-1]}: max |torch − ort| = "
                                      f"{diff:.3g} > atol {atol} / rtol {rtol}")
        provider = session.get_providers()[0]
        os.replace(tmp, path)
        return ExportResult(path=path, parity=worst, checked_shapes=shapes, provider=provider)
    finally:
        tmp.unlink(missing_ok=True)
