"""Data-parallel training across processes: PyTorch's ``torchrun`` + DistributedDataParallel.

zoo does not ship its own launcher or communication layer. ``zoo train ... --nproc-per-node N``
re-executes itself as ``python -m torch.distributed.run --nproc-per-node N -m zoo train ...``
(:func:`launch`), and ``torchrun -m zoo train ...`` works the same: every worker process finds
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its environment (:func:`context_from_env`) and
joins one process group (:func:`init`): NCCL on CUDA (device ``cuda:LOCAL_RANK``), gloo on the
CPU. The trainer then

1. wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages the
   gradients over the ranks in ``backward``;
2. shards the in-memory training split (:func:`shard_order`): every rank draws the *same* seeded
   permutation per epoch, cuts it into global batches of ``train.batch_size`` samples and takes
   its slice of ``batch_size / world_size`` samples of each. With mean losses, the average of
   the ranks' gradients is then exactly the gradient of the global batch, i.e. what one process
   with ``batch_size`` computes (equal slices are guaranteed by dropping the at most
   ``world_size - 1`` samples of the last, partial batch that do not divide evenly);
3. all-reduces metric sums (:meth:`DistContext.all_reduce_sum`) after validation on per-rank
   shards of the validation split, and the training loss once per epoch;
4. writes the run directory, checkpoints, logs, the progress bar and the ONNX file on rank 0 only.
   Checkpoints hold the unwrapped model's state (no ``module.`` prefix), the optimizer and the
   shuffling generator, which are the same on every rank, so a run resumes with any world size.

A failing rank exits with its error message; torchrun then stops the other ranks, and the
collectives carry a timeout (``ZOO_DIST_TIMEOUT`` seconds, default 600) so nothing hangs forever.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from zoo.core.contract.errors import ZooError

# Options of `zoo train` that belong to the launcher; they are not passed on to the workers.
LAUNCH_OPTIONS = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "rdzv_id")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job; ``world_size == 1`` is ordinary single-process training."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives (no-ops in a single process) -----------------------------------------------
    def all_reduce_sum(self, values):
        """Element-wise sum of a tensor over the ranks (in place; returned for chaining)."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (small picklable values: a path, a flag)."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


SINGLE = DistContext()


def context_from_env() -> DistContext:
    """The context torchrun describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` (single process if unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ZooError(f"malformed torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {err}") from None
    if world < 1 or not 0 <= rank < world:
        raise ZooError(f"malformed torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistContext(world, rank, local)


def init(ctx: DistContext, device_name: str):
    """Join the process group and pick this rank's device; returns the :class:`torch.device`.

    ``device_name`` is ``train.device``: ``auto``/``cuda`` → ``cuda:LOCAL_RANK`` with NCCL,
    ``cpu`` (or no CUDA) → the CPU with gloo. An explicit ``cuda:N`` is an error: each rank owns
    the GPU of its local rank.
    """
    import torch
    import torch.distributed as dist

    if device_name.startswith("cuda:"):
        raise ZooError(f"--device {device_name}: with several processes each rank uses cuda:LOCAL_RANK; "
                       f"pass --device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES")
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ZooError("--device cuda: CUDA is not available on this machine (use cpu or auto)")
        if ctx.local_rank >= torch.cuda.device_count():
            raise ZooError(f"local rank {ctx.local_rank} has no GPU: only {torch.cuda.device_count()} "
                           f"visible; use --nproc-per-node ≤ {torch.cuda.device_count()}")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get("ZOO_DIST_TIMEOUT", "600")))
        backend = "nccl" if use_cuda else "gloo"
        kwargs = {"device_id": device} if use_cuda else {}
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout,
                                world_size=ctx.world_size, rank=ctx.rank, **kwargs)
    return device


_PEER_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe", "timed out",
              "timeout", "communicator was aborted", "socket closed")


def lost_peer(err: BaseException) -> bool:
    """Whether ``err`` is a collective that failed because another rank died or hung."""
    import torch.distributed as dist

    text = str(err).lower()
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError)
                                               and any(s in text for s in _PEER_LOST))


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- data ------------------------------------------------------------------------------------


def check_batch_size(ctx: DistContext, batch_size: int) -> int:
    """Per-rank batch size ``batch_size / world_size`` (``train.batch_size`` is the global batch)."""
    if batch_size % ctx.world_size:
        raise ZooError(f"train.batch_size {batch_size} is the global batch and must divide evenly over "
                       f"{ctx.world_size} processes (each takes batch_size / world_size samples); "
                       f"try --batch-size {max(ctx.world_size, batch_size // ctx.world_size * ctx.world_size)}")
    return batch_size // ctx.world_size


def steps_per_epoch(n: int, batch_size: int, world_size: int) -> int:
    """Optimizer steps per epoch: full global batches, plus the last partial one if every rank
    gets at least one of its samples (for one process: ``ceil(n / batch_size)``)."""
    full, tail = divmod(n, batch_size)
    return full + (1 if tail // world_size > 0 else 0)


def shard_order(order, batch_size: int, ctx: DistContext):
    """This rank's indices, in batch order, from the global permutation ``order`` (same on all ranks).

    Global batch ``k`` is ``order[k·B:(k+1)·B]``; rank ``r`` takes its ``r``-th slice of
    ``b = B / W`` samples, so batch ``k`` of every rank together is exactly global batch ``k``.
    The last partial batch of ``m`` samples gives each rank ``⌊m / W⌋`` of them.
    """
    if not ctx.enabled:
        return order
    world, rank = ctx.world_size, ctx.rank
    per_rank = batch_size // world
    n = order.shape[0]
    full = n // batch_size
    head = order[:full * batch_size].view(full, world, per_rank)[:, rank].reshape(-1)  # (full·b,)
    tail = (n - full * batch_size) // world
    start = full * batch_size + rank * tail
    import torch

    return torch.cat([head, order[start:start + tail]])


def eval_index(n: int, ctx: DistContext, device):
    """This rank's share of an evaluation split (strided), or ``None`` for the whole split."""
    import torch

    if not ctx.enabled or n < ctx.world_size:
        return None
    return torch.arange(ctx.rank, n, ctx.world_size, device=device)


def check_trainable(ctx: DistContext, model, n_train: int) -> None:
    """Refuse what data parallelism cannot do, with a message that says what to do instead."""
    if not ctx.enabled:
        return
    from torch import nn

    if n_train < ctx.world_size:
        raise ZooError(
            f"the training split has {n_train} sample(s) for {ctx.world_size} processes: nothing to shard. "
            + ("Full-graph training (e.g. node classification on one graph: the whole graph is one sample) "
               "is not supported distributed; train it with one process (drop --nproc-per-node)."
               if n_train == 1 else "Use fewer processes or more data."))
    sparse = [name for name, m in model.named_modules()
              if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse]
    if sparse:
        raise ZooError(f"sparse-gradient embeddings ({', '.join(sparse)}) are not supported distributed "
                       f"(DistributedDataParallel all-reduces dense gradients); set --set model.sparse=false")


def wrap(model, ctx: DistContext, device, find_unused: bool):
    """``DistributedDataParallel(model)`` (rank 0's initial weights are broadcast to the others)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def weights_digest(state_dict: dict) -> str:
    """SHA-256 of a state dict's tensors: equal on every rank when DDP kept the replicas in sync."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        h.update(name.encode())
        flat = tensor.detach().cpu().contiguous().view(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes())   # raw bytes: exact, any dtype (bf16 too)
    return h.hexdigest()


# -- launcher --------------------------------------------------------------------------------


def launch(argv: list[str], nproc_per_node: int, nnodes: int = 1, node_rank: int | None = None,
           rdzv_endpoint: str | None = None, rdzv_id: str | None = None) -> int:
    """Run ``zoo ARGV`` in ``nproc_per_node`` worker processes through ``torch.distributed.run``.

    One node without an endpoint uses torchrun's ``--standalone`` rendezvous (a free local port).
    Several nodes need ``--rdzv-endpoint host:port`` (the same on every node, reachable from all)
    and are started by running the same command on each node. Returns the exit code.
    """
    if "WORLD_SIZE" in os.environ:
        raise ZooError("--nproc-per-node inside a torchrun worker: launch either with torchrun or with "
                       "--nproc-per-node, not both")
    if nproc_per_node < 1 or nnodes < 1:
        raise ZooError(f"--nproc-per-node and --nnodes must be ≥ 1 (got {nproc_per_node}, {nnodes})")
    if nnodes > 1 and not rdzv_endpoint:
        raise ZooError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (reachable from every node)")
    args = ["--nproc-per-node", str(nproc_per_node), "--nnodes", str(nnodes)]
    if rdzv_endpoint:
        args += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id", rdzv_id or "zoo"]
        if node_rank is not None:
            args += ["--node-rank", str(node_rank)]
    else:
        args += ["--standalone"]
    args += ["-m", "zoo", *argv]
    # torchrun's own entry point, called in this process: it starts `python -m zoo ARGV` per
    # worker and supervises them (one failing ends all); its failure report becomes one message.
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(args))
    except ChildFailedError as err:
        codes = ", ".join(f"rank {rank}: exit code {failure.exitcode}"
                          for rank, failure in sorted(err.failures.items()))
        raise ZooError(f"distributed training failed ({codes}); the failing rank's message is above") from None
    except (KeyboardInterrupt, SignalException):  # the workers got the signal too and checkpoint
        return 130
    return 0
