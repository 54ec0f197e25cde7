"""Mixed precision and compilation for the trainer: ``train.precision`` and ``train.compile``.

Precision (:class:`Precision`):

- ``fp32``: plain float32.
- ``bf16``: :func:`torch.autocast` to bfloat16 on CUDA or the CPU. bfloat16 has float32's exponent
  range, so gradients cannot underflow and no loss scaling is needed.
- ``fp16``: autocast to float16 with a :class:`torch.amp.GradScaler` (CUDA only). float16's
  smallest normal number is ~6e-5, so small gradients would flush to zero: the scaler multiplies
  the loss by ``S`` before ``backward`` (gradients ×S), divides the gradients by ``S`` before
  clipping and the optimizer step, skips steps whose gradients overflowed and adapts ``S``.

Compilation (:func:`compile_module`): :func:`torch.compile` of the module the trainer calls,
optionally ``mode="reduce-overhead"`` (CUDA graphs: one graph launch per step instead of one
kernel launch per op, for small static-shape models). The trainer keeps the original module for
checkpoints and export, so ``_orig_mod.`` never leaks into a state dict or an ONNX file. A model
that cannot compile falls back to eager with a warning (the trainer tries the compiled module
on a preflight batch first, and dynamo's ``suppress_errors`` lets any later graph that fails
run eagerly).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from zoo.core.contract.errors import ZooError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast and (for fp16) gradient scaling for one device."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in DTYPES:
            raise ZooError(f"unknown precision {name!r}; choose one of: {', '.join(DTYPES)}")
        if name == "fp16" and device.type != "cuda":
            raise ZooError("--precision fp16 needs CUDA (float16 autocast with gradient scaling); "
                           "on the CPU use --precision bf16 (or fp32)")
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ZooError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 "
                           f"support; use --precision fp16")
        self.name = name
        self.device_type = device.type
        self.dtype = DTYPES[name]
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """True gradients in ``.grad`` (before clipping looks at their norm)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)   # skipped when a gradient is inf/NaN
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def compile_module(module: torch.nn.Module, mode: str, log: Callable[[str], None]) -> torch.nn.Module:
    """``torch.compile(module, mode=mode)``, or ``module`` itself with a warning when that fails.

    Compilation is lazy: most failures only show at the first call, which the trainer makes in
    its preflight (see :meth:`zoo.core.train.trainer.Trainer._preflight`).
    """
    import torch._dynamo

    # A graph that fails to compile later (another shape, train mode) runs eagerly instead of
    # ending the run; dynamo logs a warning for it.
    torch._dynamo.config.suppress_errors = True
    try:
        return torch.compile(module, mode=None if mode == "default" else mode)
    except Exception as err:  # e.g. no compiler backend on this platform
        log(f"warning: torch.compile failed ({type(err).__name__}: {err}); training eagerly")
        return module
