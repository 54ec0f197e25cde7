"""One generic trainer for every family.

The trainer knows nothing about models: a :class:`~zoo.core.contract.task.Task` turns a batch into the
model's inputs, a loss and metric sums. Data is an in-memory :class:`~zoo.core.train.data.Dataset`
already on the device; an epoch is a seeded permutation of indices on the device, sliced into
batches, so no DataLoader and no per-batch host synchronisation is involved (the loss is summed
on the device and read once per epoch, plus a non-finite check about once a second). Optional
augmentation of image batches (``[data.augment]``, :mod:`zoo.core.train.augment`) also runs on the
device, on training batches only.

Checkpoints hold everything needed to continue exactly: model, optimizer, scheduler, the global
RNG states, the shuffling generator's state at the start of the current epoch and how many steps
of that epoch are done. Ctrl-C / SIGTERM finish the current step, write such a checkpoint and
stop; ``--resume`` replays the same permutation and skips the steps already taken, so an
interrupted run ends with the same weights as an uninterrupted one (on the CPU; CUDA kernels
may be non-deterministic unless ``train.deterministic`` is set).

Scale and speed live in their own modules and hook in at a few places: data-parallel training
over processes (:mod:`zoo.core.train.distributed`: DDP wrapper, per-rank shard of each epoch's
permutation, all-reduced sums, rank 0 writes), and mixed precision and ``torch.compile``
(:mod:`zoo.core.train.precision`). ``self.model`` is always the plain module: checkpoints and export
never see a DDP or compiled wrapper.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from zoo.core.train import checkpoint as checkpoint_file
from zoo.core.train import distributed
from zoo.core.train.augment import augment, check_images
from zoo.core.contract.config import OptimConfig, RunConfig, ScheduleConfig
from zoo.core.train.data import Dataset, Split
from zoo.core.train.distributed import SINGLE, DistContext
from zoo.core.contract.errors import NonFiniteLoss, TrainingInterrupted, ZooError
from zoo.core.train.precision import Precision, compile_module
from zoo.core.contract.protocols import SelfUpdating
from zoo.core.train.runs import Run, atomic_write_bytes
from zoo.core.contract.task import Task

def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; an unavailable CUDA request is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ZooError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ZooError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` that also takes sparse gradients (embedding tables with
    ``sparse=True``), which its fused norm does not: the norm over all gradients, every gradient
    scaled by ``min(1, max_norm / norm)``. Returns the norm before clipping."""
    params = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in params):
        return nn.utils.clip_grad_norm_(params, max_norm)
    for p in params:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()          # repeated rows summed: the gradient's true norm
    norms = [(p.grad.values() if p.grad.is_sparse else p.grad).detach().float().norm() for p in params]
    total = torch.stack(norms).norm()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.to(p.grad.dtype))
    return total


def build_optimizer(config: OptimConfig, params) -> torch.optim.Optimizer:
    """The ``optim.name`` optimizer over ``params``.

    Adam and AdamW run fused (one kernel for every parameter's update, instead of a handful per
    tensor group) when all parameters are floating-point CUDA tensors: on a GPU, small models are
    bound by kernel launches. Their state dict is the same, so checkpoints move between devices.
    """
    if config.nesterov and (config.name != "sgd" or config.momentum <= 0):
        raise ZooError("optim.nesterov needs optim.name = 'sgd' and optim.momentum > 0")
    params = list(params)
    common = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.name == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, nesterov=config.nesterov, **common)
    if config.name == "adagrad":
        return torch.optim.Adagrad(params, eps=config.eps, **common)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(params, momentum=config.momentum, eps=config.eps, **common)
    fused = {"fused": True} if params and all(
        isinstance(p, torch.Tensor) and p.is_cuda and p.is_floating_point() for p in params) else {}
    if config.name == "adam":
        return torch.optim.Adam(params, betas=config.betas, eps=config.eps, **common, **fused)
    return torch.optim.AdamW(params, betas=config.betas, eps=config.eps, **common, **fused)


def apply_optim_config(optimizer: torch.optim.Optimizer, scheduler, saved: dict[str, Any] | None,
                       config: OptimConfig, global_step: int) -> list[str]:
    """Carry ``optim.*`` values changed since the checkpoint into the restored optimizer.

    ``optimizer.load_state_dict`` brings back the saved ``lr``, ``betas``, ... with the moments,
    so ``zoo train --resume RUN --lr 1e-4`` would silently keep the old lr. Each value that
    differs from ``saved`` (the checkpoint's ``optim`` section) is put into every param group
    that has it; a new lr rescales each group's lr (and the schedule's base lrs) by
    ``new / old``, which keeps groups a plugin gave different lrs in proportion. The moments are
    kept. Returns the names of the values changed.
    """
    new = config.model_dump(mode="json")
    changed = [k for k in new if saved is not None and k in saved and saved[k] != new[k] and k != "name"]
    ratio = config.lr / saved["lr"] if "lr" in changed else 1.0
    for group in optimizer.param_groups:
        for key in changed:
            if key == "lr":
                group["lr"] *= ratio
                if "initial_lr" in group:
                    group["initial_lr"] *= ratio
            elif key in group:
                group[key] = tuple(new[key]) if key == "betas" else new[key]
    if scheduler is not None and "lr" in changed:
        scheduler.base_lrs = [base * ratio for base in scheduler.base_lrs]
        lrs = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
        scheduler._last_lr = lrs
    return changed


def lr_factor(config: ScheduleConfig, peak_lr: float, steps_per_epoch: int, total_epochs: int) -> Callable[[int], float]:
    """The schedule as a multiplier of the peak lr, evaluated per optimizer step.

    1. warm-up: linear from ~0 to 1 over ``warmup_epochs``;
    2. then ``constant`` (1), ``step`` (γ^⌊epoch / step_size⌋), ``cosine`` (from 1 down to
       ``min_lr / lr`` over the remaining steps) or ``linear`` (straight from 1 down to
       ``min_lr / lr``).
    """
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    total = max(total_epochs * steps_per_epoch, 1)
    floor = config.min_lr / peak_lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.name == "step":
            return config.gamma ** ((step // steps_per_epoch) // config.step_size)
        if config.name == "cosine":
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if config.name == "linear":
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 1.0 - (1.0 - floor) * progress
        return 1.0

    return factor


def restore_cuda_rng(states: list[torch.Tensor]) -> int:
    """Restore the saved per-GPU RNG states onto the GPUs visible now; returns how many.

    A checkpoint holds one state per GPU visible when it was written; a resume may see fewer
    (``CUDA_VISIBLE_DEVICES``, another machine) or more. ``set_rng_state_all`` raises when fewer
    are visible, so each visible device takes its own saved state and the rest keep their seeds.
    """
    if not states or not torch.cuda.is_available():
        return 0
    count = min(len(states), torch.cuda.device_count())
    for index in range(count):
        torch.cuda.set_rng_state(states[index], index)
    return count


def uses_cuda_graphs(compile_: bool, mode: str, device: torch.device) -> bool:
    """Whether torch.compile records CUDA graphs: ``reduce-overhead`` and ``max-autotune`` do on CUDA."""
    return compile_ and device.type == "cuda" and mode in ("reduce-overhead", "max-autotune")


def batch_shapes_vary(split: Split, batch_size: int, probes: int = 6) -> bool:
    """Whether full batches of ``split`` differ in shape (sequences cut to each batch's length,
    batches of graphs, ...): probes a few batches of a fixed random order. CUDA graphs are
    recorded once per shape, so such data would record a new graph (and keep its memory) per batch."""
    n = len(split)
    if n < 2 * batch_size:
        return False
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(split.device)
    seen = set()
    for i in range(min(probes, n // batch_size)):
        batch = split.batch(order[i * batch_size:(i + 1) * batch_size])
        seen.add(tuple((k, tuple(v.shape)) for k, v in sorted(batch.items()) if isinstance(v, torch.Tensor)))
    return len(seen) > 1


def check_cuda_graphs(compile_: bool, mode: str, device: torch.device, split: Split, batch_size: int) -> None:
    """Refuse CUDA-graph compile modes for data whose batches change shape (exit 2, before training)."""
    if uses_cuda_graphs(compile_, mode, device) and batch_shapes_vary(split, batch_size):
        raise ZooError(f"train.compile_mode = {mode!r} records a CUDA graph per input shape, and the "
                       f"batches of this dataset change shape from batch to batch (a new graph, and its "
                       f"memory, per shape: slower than eager); use train.compile_mode = 'default'")


@dataclass
class TrainState:
    """Progress that a checkpoint must restore besides the tensors."""

    epoch: int = 0              # completed epochs
    step: int = 0               # steps done in the epoch in progress
    best: float | None = None   # best monitored value so far
    best_epoch: int = 0
    bad_epochs: int = 0         # epochs without improvement (early stopping)
    loss_sum: float = 0.0       # train loss summed over the steps done in the epoch in progress


class Progress:
    """A one-line tqdm bar on a terminal, silent otherwise (a pipe, a log file, ``progress = false``).

    It shows the epoch, the step within it, the samples per second since the start (or the
    resume) and the ETA of the whole run: ``(total_steps - global_step) / steps per second``.
    """

    def __init__(self, enabled: bool, total_steps: int, batch_size: int) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total_steps
        self.batch_size = batch_size
        self.start = time.monotonic()
        self.start_step = 0
        self._bar: Any = None

    def update(self, epoch: int, epochs: int, step: int, steps: int, global_step: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=steps, file=sys.stderr, leave=False, dynamic_ncols=True,
                             bar_format="{desc} {bar:24} {n_fmt}/{total_fmt}  {postfix}")
        elapsed = time.monotonic() - self.start
        rate = (global_step - self.start_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - global_step) / rate if rate > 0 else 0.0
        self._bar.set_description_str(f"epoch {epoch}/{epochs}", refresh=False)
        self._bar.set_postfix_str(f"{rate * self.batch_size:,.0f} samples/s  ETA {int(eta) // 60}:{int(eta) % 60:02d}",
                                  refresh=False)
        self._bar.n = step
        self._bar.refresh()

    def clear(self) -> None:
        """Erase the bar (``leave=False``) before an epoch's line or an error is printed."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks between steps; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class _Loop:
    """What the steps of one ``fit`` share: optimizer, schedule, shuffling, progress."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator       # the shuffling stream, the same on every rank
    state: TrainState
    batch_size: int                  # per rank
    steps_per_epoch: int
    progress: Progress
    cuda_graphs: bool = False
    stopped_early: bool = False


class _EpochStats:
    """The running sums of one epoch, kept on the device (read once at the end of the epoch)."""

    def __init__(self, loss_sum: torch.Tensor, device: torch.device) -> None:
        self.loss_sum = loss_sum
        self.norm_sum = torch.zeros((), device=device)
        self.norm_max = torch.zeros((), device=device)
        self.finite_norms = torch.zeros((), device=device)  # fp16: a skipped step's norm is inf
        self.grad_steps = 0
        self.started = time.monotonic()

    def add_norm(self, norm: torch.Tensor) -> None:
        finite = torch.isfinite(norm)
        norm = torch.where(finite, norm, 0.0)  # on the device: no sync per step
        self.norm_sum += norm
        self.norm_max = torch.maximum(self.norm_max, norm)
        self.finite_norms += finite
        self.grad_steps += 1

    def grad_norms(self) -> dict[str, Any]:
        """``grad_norm`` (mean), ``grad_norm_max`` and ``skipped_steps`` when gradients were clipped."""
        if not self.grad_steps:
            return {}
        counted = int(self.finite_norms)
        record: dict[str, Any] = {"grad_norm": float(self.norm_sum) / counted if counted else None,
                                  "grad_norm_max": float(self.norm_max) if counted else None}
        if counted < self.grad_steps:  # steps the fp16 GradScaler skipped (inf/NaN gradients)
            record["skipped_steps"] = self.grad_steps - counted
        return record

EventFn = Callable[..., None]


class Trainer:
    """Fit ``model`` on ``data`` for ``task`` as ``config`` says, writing into ``run``.

    :param emit: ``emit(hook_name, **kwargs)``, the plugin manager's event broadcaster
    :param log: where one line per epoch goes (``None`` = silent)
    :param dist: this process's place in a data-parallel job (default: a single process); only
        rank 0 writes into ``run``, logs and emits events
    """

    def __init__(self, model: nn.Module, task: Task, data: Dataset, config: RunConfig, run: Run,
                 device: torch.device, emit: EventFn | None = None,
                 log: Callable[[str], None] | None = None, dist: DistContext = SINGLE) -> None:
        self.model = model
        self.task = task
        self.data = data
        self.config = config
        self.run = run
        self.device = device
        self.dist = dist
        self.emit = (emit or (lambda *a, **k: None)) if dist.is_main else (lambda *a, **k: None)
        self.log = (log or (lambda line: None)) if dist.is_main else (lambda line: None)
        tc = config.train
        if tc.loss is not None and tc.loss not in task.losses:
            raise ZooError(f"train.loss {tc.loss!r} is not a loss of task {task.name!r}; "
                           f"choose one of: {', '.join(task.losses) or '(the task has one fixed loss)'}")
        self.loss_name = tc.loss
        self.monitor = tc.monitor or task.main_metric
        self.maximize = task.prefers_higher(self.monitor)
        self.precision = Precision(tc.precision, device)
        if device.type == "cuda" and not tc.deterministic:
            # TF32 matmuls for fp32 training (Ampere+): ~2-8x faster, well within training noise.
            # The ONNX parity check does not depend on it (its torch reference runs on the CPU).
            torch.set_float32_matmul_precision("high")
        # What forward passes go through: the plain model, or its compiled version (eval), and
        # the DDP-wrapped, maybe compiled model (training); set up by `_prepare_modules`.
        self.eval_module: nn.Module = model
        self.train_module: nn.Module = model

    # -- pieces ----------------------------------------------------------------------------------
    def _autocast(self):
        return self.precision.autocast()

    def _prepare_modules(self) -> None:
        """DDP around the model when distributed, then torch.compile when asked (DDP first, as
        PyTorch recommends, so the compiler sees DDP's bucket boundaries)."""
        tc = self.config.train
        find_unused = False
        if self.dist.enabled:
            distributed.check_trainable(self.dist, self.model, len(self.data.train))
            find_unused = bool(self._unused_parameters())
        wrapped = distributed.wrap(self.model, self.dist, self.device, find_unused)
        check_cuda_graphs(tc.compile, tc.compile_mode, self.device, self.data.train,
                          distributed.check_batch_size(self.dist, tc.batch_size))
        if tc.compile:
            self.train_module = compile_module(wrapped, tc.compile_mode, self.log)
            # Evaluation runs on rank-specific shards; DDP's forward would sync buffers across
            # ranks and deadlock on unequal batch counts, so it uses the model without DDP.
            self.eval_module = (self.train_module if wrapped is self.model
                                else compile_module(self.model, tc.compile_mode, self.log))
        else:
            self.train_module, self.eval_module = wrapped, self.model

    def _unused_parameters(self) -> list[str]:
        """Parameters that get no gradient from a preflight batch (DDP must then be told to look
        for them each step, or it waits for their gradients forever)."""
        split = self.data.train
        batch = split.batch(torch.arange(min(2, len(split)), device=split.device))
        self.model.eval()
        with self._autocast():
            output = self.model(*self.task.inputs(batch))
            loss = self.task.loss(output, batch, self.loss_name)
        loss.float().backward()
        unused = [n for n, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
        self.model.zero_grad(set_to_none=True)
        return unused

    @torch.no_grad()
    def evaluate(self, split: Split, shard: bool = True) -> dict[str, float]:
        """Task metrics over a whole split: sums on the device, one host sync at the end.

        Distributed, each rank evaluates every ``world_size``-th sample and the sums are
        all-reduced, so every rank gets the metrics of the whole split.
        """
        self.eval_module.eval()
        sums: dict[str, torch.Tensor] = {}
        index = distributed.eval_index(len(split), self.dist, split.device) if shard else None
        for batch in split.batches(self.config.train.eval_batch_size, index):
            with self._autocast():
                output = self.eval_module(*self.task.inputs(batch))
            for key, value in self.task.metric_sums(output, batch, self.loss_name).items():
                sums[key] = sums[key] + value if key in sums else value
        keys = sorted(sums)  # the same order on every rank
        if not keys:
            return self.task.finalize({}, self.loss_name)
        stacked = torch.stack([sums[k].double() for k in keys])
        if index is not None:
            self.dist.all_reduce_sum(stacked)
        return self.task.finalize(dict(zip(keys, stacked.tolist())), self.loss_name)

    def _improved(self, value: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return not math.isnan(value)
        # Without a validation split the trainer monitors the training loss, which always falls.
        maximize = self.maximize and self.data.val is not None
        return value > best if maximize else value < best

    def _checkpoint(self, state: TrainState, optimizer, scheduler, generator_state: torch.Tensor,
                    *names: str) -> None:
        """Serialise everything a resume needs once, and write it atomically to each of ``names``.

        Rank 0 only; the state is the same on every rank (DDP keeps weights and optimizer in sync).
        """
        if not self.dist.is_main:
            return
        payload = {
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "grad_scaler": self.precision.state_dict(),
            "state": asdict(state),
            "generator": generator_state,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "model_name": self.config.model.name,
            "optim": self.config.optim.model_dump(mode="json"),  # what a resume compares --lr/--set with
        }
        data = checkpoint_file.dumps(payload)
        for name in names:
            path = self.run.file(name)
            atomic_write_bytes(path, data)
            self.emit("on_checkpoint_saved", run=self.run, path=path, epoch=state.epoch,
                      best=name == Run.BEST)

    def _preflight(self) -> None:
        """Run two samples through model, loss and metrics before training: fail at the boundary."""
        split = self.data.val or self.data.train
        batch = split.batch(torch.arange(min(2, len(split)), device=split.device))
        self.model.eval()
        self.eval_module.eval()
        if self.config.data.augment.enabled:
            check_images(batch[self.task.input_names[0]], self.config.data.augment)
        with torch.no_grad(), self._autocast():
            output = self.model(*self.task.inputs(batch))
            self.task.loss(output, batch, self.loss_name)
            sums = self.task.metric_sums(output, batch, self.loss_name)
        if self.eval_module is not self.model:
            self._check_compiled(batch)
        names = self.task.finalize({k: float(v) for k, v in sums.items()}, self.loss_name)
        if self.data.val is not None and self.monitor not in names:
            raise ZooError(f"train.monitor {self.monitor!r} is not a metric of task {self.task.name!r}; "
                           f"choose one of: {', '.join(sorted(names))}")

    def _check_compiled(self, batch: dict[str, torch.Tensor]) -> None:
        """Call the compiled module once (compilation is lazy); fall back to eager if it fails."""
        try:
            with torch.no_grad(), self._autocast():
                self.eval_module(*self.task.inputs(batch))
        except Exception as err:
            self.log(f"warning: torch.compile could not compile {type(self.model).__name__} "
                     f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); training eagerly")
            self.eval_module = self.model
            self.train_module = distributed.wrap(self.model, self.dist, self.device, False) \
                if self.dist.enabled else self.model
            if isinstance(self.train_module, nn.parallel.DistributedDataParallel):
                self.train_module.find_unused_parameters = bool(self._unused_parameters())

    # -- the loop: restore → one epoch → end of epoch → test the best ------------------------------
    def fit(self, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train (or continue from ``checkpoint``); returns the final test metrics and bookkeeping."""
        loop = self._start(checkpoint)
        try:
            with _StopFlag() as stop:
                for epoch in range(loop.state.epoch + 1, self.config.train.epochs + 1):
                    stats = self._train_epoch(loop, epoch, stop)
                    if self._end_epoch(loop, epoch, stats, stop):
                        break
        finally:
            if isinstance(self.model, SelfUpdating):
                self.model.detach_optimizer()
        return self._test_best(loop)

    def _start(self, checkpoint: dict[str, Any] | None) -> _Loop:
        """Modules, preflight, optimizer and schedule; then the checkpoint's state restored (or a
        first checkpoint written) and ``on_train_start`` emitted."""
        tc = self.config.train
        train = self.data.train
        if len(train) == 0:
            raise ZooError("the training split is empty")
        batch_size = distributed.check_batch_size(self.dist, tc.batch_size)  # per rank
        self._prepare_modules()
        self._preflight()
        if self.device.type == "cuda" and not tc.deterministic:
            # cuDNN times its convolution algorithms once per input shape and keeps the fastest:
            # a win when batches keep one shape, a new search per batch when they do not.
            torch.backends.cudnn.benchmark = not batch_shapes_vary(train, batch_size)
        optimizer = build_optimizer(self.config.optim, self.model.parameters())
        steps_per_epoch = distributed.steps_per_epoch(len(train), tc.batch_size, self.dist.world_size)
        schedule, scheduler = self.config.schedule, None
        if schedule.name != "constant" or schedule.warmup_epochs > 0:
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lr_factor(schedule, self.config.optim.lr, steps_per_epoch, tc.epochs))
        loop = _Loop(optimizer, scheduler, torch.Generator().manual_seed(tc.seed), TrainState(),
                     batch_size, steps_per_epoch,
                     Progress(tc.progress and self.dist.is_main, tc.epochs * steps_per_epoch, tc.batch_size))
        if checkpoint is not None:
            self._restore(loop, checkpoint)
        else:
            # Epoch 0: a good checkpoint exists before the first step, whatever happens next.
            self._checkpoint(loop.state, optimizer, scheduler, loop.generator.get_state(), Run.LAST)
        loop.progress.start_step = loop.state.epoch * steps_per_epoch + loop.state.step
        loop.cuda_graphs = self.train_module is not self.model and uses_cuda_graphs(
            tc.compile, tc.compile_mode, self.device)
        if isinstance(self.model, SelfUpdating):  # docs/plugins.md: a model that updates itself
            self.model.attach_optimizer(optimizer, tc, self.dist.world_size)
        self.emit("on_train_start", run=self.run, model=self.model, config=self.config.model_dump(mode="json"),
                  optimizer=optimizer)
        return loop

    def _restore(self, loop: _Loop, checkpoint: dict[str, Any]) -> None:
        """Weights, optimizer, scheduler, scaler, progress and every RNG stream from ``checkpoint``;
        ``optim.*`` values given now (``--resume --lr ...``) win over the saved ones."""
        self.model.load_state_dict(checkpoint["model"])
        loop.optimizer.load_state_dict(checkpoint["optimizer"])
        self.precision.load_state_dict(checkpoint.get("grad_scaler"))
        if loop.scheduler is not None and checkpoint.get("scheduler") is not None:
            loop.scheduler.load_state_dict(checkpoint["scheduler"])
        loop.state = state = TrainState(**checkpoint["state"])
        changed = apply_optim_config(loop.optimizer, loop.scheduler, checkpoint.get("optim"), self.config.optim,
                                     state.epoch * loop.steps_per_epoch + state.step)
        if changed:
            self.log("resume: optim." + ", optim.".join(changed) + " changed since the checkpoint")
        loop.generator.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["rng_cpu"])
        restore_cuda_rng(checkpoint.get("rng_cuda") or [])
        if self.dist.rank > 0:  # the checkpoint holds rank 0's streams; keep the ranks' dropout apart
            torch.manual_seed(self.config.train.seed + self.dist.rank * 1_000_003 + state.epoch * 7919 + state.step)

    def _train_epoch(self, loop: _Loop, epoch: int, stop: _StopFlag) -> _EpochStats:
        """One pass over this rank's share of a seeded permutation of the training split, from
        step ``loop.state.step`` on (a resumed epoch skips the steps already taken)."""
        tc, train, state = self.config.train, self.data.train, loop.state
        epoch_start_generator = loop.generator.get_state()
        order = torch.randperm(len(train), generator=loop.generator).to(train.device)
        order = distributed.shard_order(order, tc.batch_size, self.dist)  # this rank's slices
        self.train_module.train()
        stats = _EpochStats(torch.tensor(state.loss_sum, device=self.device), self.device)
        last_tick = stats.started
        for batch in train.batches(loop.batch_size, order, start=state.step):
            self._train_step(loop, batch, stats)
            state.step += 1
            if stop.requested:
                self._finish_updates(stats)
                state.loss_sum = float(stats.loss_sum)
                self._checkpoint(state, loop.optimizer, loop.scheduler, epoch_start_generator, Run.LAST)
                loop.progress.clear()
                raise TrainingInterrupted(
                    f"{stop.requested}: stopped at epoch {epoch}, step {state.step}/{loop.steps_per_epoch}; "
                    f"a resumable checkpoint is in {self.run.path}. "
                    f"Continue with: zoo train --resume {self.run.path}")
            now = time.monotonic()
            if now - last_tick > 1.0:
                last_tick = now
                if not torch.isfinite(stats.loss_sum):
                    self._non_finite(epoch, state.step)
                loop.progress.update(epoch, tc.epochs, state.step, loop.steps_per_epoch,
                                     (epoch - 1) * loop.steps_per_epoch + state.step)
        self._finish_updates(stats)
        return stats

    def _finish_updates(self, stats: _EpochStats) -> None:
        """A SelfUpdating model completes the updates its forwards left running; their loss
        joins the epoch's (docs/plugins.md)."""
        if isinstance(self.model, SelfUpdating):
            pending = self.model.finish_updates()
            if pending is not None:
                stats.loss_sum += torch.as_tensor(pending, device=stats.loss_sum.device).float()

    def _train_step(self, loop: _Loop, batch: dict[str, torch.Tensor], stats: _EpochStats) -> None:
        """Forward, loss, backward, clipping and the optimizer's and scheduler's step for one batch."""
        tc = self.config.train
        if self.config.data.augment.enabled:  # training batches only, never val/test
            key = self.task.input_names[0]
            batch = {**batch, key: augment(batch[key], self.config.data.augment)}
        if loop.cuda_graphs:  # a new iteration: CUDA-graph output buffers may be reused
            torch.compiler.cudagraph_mark_step_begin()
        with self._autocast():
            output = self.train_module(*self.task.inputs(batch))
            loss = self.task.loss(output, batch, self.loss_name)
        # A SelfUpdating model that applied its own update in forward returns a loss with no
        # graph: no gradient to compute or clip.
        if loss.requires_grad or not (isinstance(self.model, SelfUpdating) and self.model.updates_itself):
            loop.optimizer.zero_grad(set_to_none=True)
            self.precision.backward(loss)   # DDP averages the gradients over the ranks here
            if tc.grad_clip is not None:
                self.precision.unscale(loop.optimizer)
                # The norm before clipping, kept per epoch: shows exploding/vanishing gradients.
                stats.add_norm(clip_grad_norm(self.model.parameters(), tc.grad_clip).detach().float())
        self.precision.step(loop.optimizer)  # a no-op without gradients; keeps the scheduler's order
        if loop.scheduler is not None:
            loop.scheduler.step()
        stats.loss_sum += loss.detach().float()

    def _end_epoch(self, loop: _Loop, epoch: int, stats: _EpochStats, stop: _StopFlag) -> bool:
        """Validate, record, checkpoint, log and emit ``on_epoch_end``; True to stop early."""
        tc, state = self.config.train, loop.state
        record, current = self._epoch_record(loop, epoch, stats)
        state.epoch, state.step, state.loss_sum = epoch, 0, 0.0
        improved = self._improved(current, state.best)
        if improved:
            state.best, state.best_epoch, state.bad_epochs = current, epoch, 0
        else:
            state.bad_epochs += 1
        names = (Run.LAST, Run.BEST) if improved else (Run.LAST,)
        # The epoch's record first: a kill between the two leaves a record the resume
        # truncates and redoes, never a checkpoint whose epoch has no record.
        if self.dist.is_main:
            self.run.append_metrics(record)
        self._checkpoint(state, loop.optimizer, loop.scheduler, loop.generator.get_state(), *names)
        loop.progress.clear()
        self.log(_format_epoch(record, tc.epochs))
        self.emit("on_epoch_end", run=self.run, epoch=epoch, metrics=record)
        if tc.early_stopping is not None and state.bad_epochs >= tc.early_stopping:
            self.log(f"early stopping: no improvement of val_{self.monitor} for "
                     f"{state.bad_epochs} epochs (best {state.best:.4g} at epoch {state.best_epoch})")
            loop.stopped_early = True
            return True
        if stop.requested:
            raise TrainingInterrupted(f"{stop.requested}: stopped after epoch {epoch}; continue with: "
                                      f"zoo train --resume {self.run.path}")
        return False

    def _epoch_record(self, loop: _Loop, epoch: int, stats: _EpochStats) -> tuple[dict[str, Any], float]:
        """The epoch's line of ``metrics.jsonl`` and the value monitored for the best checkpoint."""
        dist, steps = self.dist, loop.state.step
        # Mean over the ranks of each rank's summed batch losses (one all-reduce per epoch).
        train_loss = float(dist.all_reduce_sum(stats.loss_sum) / dist.world_size) / max(steps, 1)
        if not math.isfinite(train_loss):
            self._non_finite(epoch, steps)
        seconds = time.monotonic() - stats.started
        record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss,
                                  "lr": loop.optimizer.param_groups[0]["lr"], "steps": steps}
        record.update(stats.grad_norms())
        current = train_loss
        if self.data.val is not None:
            val = self.evaluate(self.data.val)
            if not math.isfinite(val.get("loss", 0.0)):
                self._non_finite(epoch, steps, where="validation")
            record.update({f"val_{k}": v for k, v in val.items()})
            current = val[self.monitor]
        record["epoch_seconds"] = round(seconds, 4)
        return record, current

    def _test_best(self, loop: _Loop) -> dict[str, Any]:
        """Reload the best checkpoint and evaluate the test split (rank 0 alone)."""
        state = loop.state
        result: dict[str, Any] = {"best_epoch": state.best_epoch, "epochs": state.epoch,
                                  "stopped_early": loop.stopped_early, "monitor": f"val_{self.monitor}",
                                  "best": state.best}
        if self.dist.enabled:
            # Proof that DDP kept the replicas identical: each rank's digest of its final weights.
            digests = self.dist.all_gather_object(distributed.weights_digest(self.model.state_dict()))
            result["rank_weights_sha256"] = digests
            if len(set(digests)) != 1:
                self.log("warning: the ranks' final weights differ: " + ", ".join(digests))
        if not self.dist.is_main:
            # Rank 0 tests, exports and writes the summary; the other ranks are done.
            return {**result, "test": {}}
        best_path = self.run.file(Run.BEST)
        if best_path.exists():
            self.model.load_state_dict(checkpoint_file.load(best_path, map_location=self.device)["model"])
        return {**result, "test": self.evaluate(self.data.test, shard=False)}

    def _non_finite(self, epoch: int, step: int, where: str = "training") -> None:
        raise NonFiniteLoss(
            f"non-finite {where} loss at epoch {epoch} (step {step}); stopped. The last good checkpoint "
            f"is {self.run.file(Run.LAST)} (epoch {epoch - 1}). Try a lower learning rate "
            f"(--lr), gradient clipping (--set train.grad_clip=1.0) or a warm-up.")


def _format_epoch(record: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}"]
    for key, value in record.items():
        if key == "epoch":
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)
