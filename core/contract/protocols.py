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
       and does nothing; the schedule still steps). Every other loss is backpropagated as usual.
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


@runtime_checkable
class ReportsParameters(Protocol):
    """A model whose learned parameters are a few numbers worth reading in the run summary
    (a linear model's ``w`` and ``b``): they go into ``summary.json`` as ``learned``."""

    def learned_parameters(self) -> dict[str, Any]:
        """JSON-ready values, e.g. ``{"w": [1.98, -3.01], "b": 0.49}``."""
