"""What a model may offer the core beyond ``forward``: the model protocols.

The trainer and the run summary talk to models through these documented types only, never by
probing for attributes: a model opts in by inheriting :class:`SelfUpdating` or by defining
``learned_parameters`` (:class:`ReportsParameters`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class SelfUpdating:
    """Mixin for a model that may apply its own update inside its training forward.

    Some algorithms update their weights in a way no torch optimizer does (a kernel that applies
    each sample's update before reading the next). Such a model inherits this mixin next to
    ``nn.Module``; the trainer then

    1. calls :meth:`attach_optimizer` once the optimizer exists (before ``on_train_start``), so the
       model can read the scheduled lr from its param groups, and :meth:`detach_optimizer` when
       the training loop ends (also on an error or an interrupt);
    2. for every training step whose loss has no graph while :attr:`updates_itself` is true,
       skips ``zero_grad``, backward and gradient clipping (the optimizer then finds no gradient
       and does nothing; the schedule still steps). Every other loss is backpropagated as usual;
    3. at the end of every epoch's steps (and before an interrupted epoch is checkpointed) calls
       :meth:`finish_updates`, before it evaluates, records or saves anything.
    """

    @property
    def updates_itself(self) -> bool:
        """Whether a training forward applies the update itself now (default: never)."""
        return False

    def attach_optimizer(self, optimizer: Any, train: Any, world_size: int) -> None:
        """The trainer's optimizer, its ``[train]`` config (:class:`zoo.core.contract.config.TrainConfig`:
        grad clipping, precision, compile, loss) and the number of data-parallel processes.
        The default does nothing."""

    def detach_optimizer(self) -> None:
        """Training ended: forget the optimizer. The default does nothing."""

    def finish_updates(self) -> Any:
        """Complete the updates that training forwards started but did not finish (a model whose
        forward hands its update to worker threads and returns early) and return the summed
        loss of those steps that no forward returned yet, added to the epoch's training loss;
        None (the default) when there are none."""
        return None


@runtime_checkable
class ReportsParameters(Protocol):
    """A model whose learned parameters are a few numbers worth reading in the run summary
    (a linear model's ``w`` and ``b``): they go into ``summary.json`` as ``learned``."""

    def learned_parameters(self) -> dict[str, Any]:
        """JSON-ready values, e.g. ``{"w": [1.98, -3.01], "b": 0.49}``."""
