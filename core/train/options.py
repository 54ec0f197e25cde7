"""Building blocks of a dataset's options model (what ``data.options`` of a run is checked against).

Generated datasets share the meaning of some fields: ``n`` training and ``n_test`` test examples
and the ``seed`` of their generator. The functions here make those fields, so the same field says
the same thing (bounds and description) in every dataset's schema; :class:`DataOptions` refuses
unknown keys and checks the ``(low, high)`` pairs a model lists in ``ordered``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DataOptions(BaseModel):
    """Base of a dataset's options: unknown keys are refused, and each ``(low, high)`` pair of
    field names in ``ordered`` must hold ``low <= high`` (else ``"low 5 > high 3"``)."""

    model_config = ConfigDict(extra="forbid")
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _in_order(self):
        for low, high in self.ordered:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} {getattr(self, low)} > {high} {getattr(self, high)}")
        return self


def n_field(default: int, most: int, what: str) -> Any:
    """``n``: how many training examples (``what``: "sequences", "strings" ...) to generate."""
    return Field(default, ge=2, le=most, description=f"Training {what}.")


def n_test_field(default: int, most: int, what: str) -> Any:
    """``n_test``: how many test examples to generate."""
    return Field(default, ge=1, le=most, description=f"Test {what}.")


def seed_field(of: str = "the generator") -> Any:
    """A seed of the dataset's own randomness (``of`` says what it draws), not ``train.seed``."""
    return Field(0, ge=0, description=f"Seed of {of} (independent of train.seed).")
