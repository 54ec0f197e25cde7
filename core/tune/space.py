"""The search space of a sweep: a TOML file of config keys and their distributions.

Each parameter is a config key (any key ``zoo config MODEL`` shows) set to a table naming one
distribution::

    optim.lr         = { log_uniform = [1e-4, 1e-1] }
    optim.weight_decay = { uniform = [0.0, 0.01], step = 0.001 }
    model.dropout    = { uniform = [0.0, 0.5] }
    train.batch_size = { int = [32, 256], step = 32 }
    model.hidden     = { choice = [[128], [256, 128]] }

``uniform``/``log_uniform`` sample a float in ``[low, high]`` (``log_`` uniformly in log space);
``int``/``log_int`` an integer; ``step`` makes the grid coarser (not with ``log_``); ``choice``
picks one of the listed values (any TOML value, lists included). Everything is checked before the
first trial: an unknown key, an unknown distribution, a bad range, or a value the model's config
refuses is one line naming the key (exit 2).
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from zoo.core.contract.errors import ZooError, did_you_mean
from zoo.core.contract.toml_io import flatten

DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")


class Param(BaseModel):
    """One parameter of the space: exactly one distribution, and an optional ``step``."""

    model_config = ConfigDict(extra="forbid")

    uniform: tuple[float, float] | None = Field(None, description="[low, high]: a float, uniformly")
    log_uniform: tuple[float, float] | None = Field(None, description="[low, high], low > 0: a float, "
                                                    "uniformly in log space")
    int: tuple[builtins.int, builtins.int] | None = Field(None, description="[low, high]: an integer, both ends included")
    log_int: tuple[builtins.int, builtins.int] | None = Field(None, description="[low, high], low >= 1: an integer, "
                                            "uniformly in log space")
    choice: list[Any] | None = Field(None, min_length=1, description="the values to pick from")
    step: float | None = Field(None, gt=0, description="grid spacing of uniform or int")

    @model_validator(mode="after")
    def _one_distribution(self) -> Param:
        named = [d for d in DISTRIBUTIONS if getattr(self, d) is not None]
        if len(named) != 1:
            raise ValueError(f"name exactly one distribution of {', '.join(DISTRIBUTIONS)} (got "
                             f"{', '.join(named) or 'none'})")
        if self.step is not None and self.kind not in ("uniform", "int"):
            raise ValueError(f"step goes with uniform or int, not {self.kind}")
        if self.kind != "choice":
            low, high = self.bounds
            if not low < high:
                raise ValueError(f"{self.kind} = [{low}, {high}]: low must be below high")
            if self.kind.startswith("log_") and low <= 0:
                raise ValueError(f"{self.kind} = [{low}, {high}]: a log scale needs low > 0")
        return self

    @property
    def kind(self) -> str:
        return next(d for d in DISTRIBUTIONS if getattr(self, d) is not None)

    @property
    def bounds(self) -> tuple[Any, Any]:
        return getattr(self, self.kind)

    def extremes(self) -> list[Any]:
        """The values to try against the model's config before sampling: both ends, every choice."""
        return list(self.choice) if self.kind == "choice" else list(self.bounds)

    def suggest(self, trial: Any, key: str) -> Any:
        """This parameter's value for an Optuna ``trial``. Choices that are not scalars (lists,
        tables) are offered to Optuna as their JSON text, which it can store and plot."""
        if self.kind == "choice":
            labels = [_label(c) for c in self.choice]
            return self.choice[labels.index(trial.suggest_categorical(key, labels))]
        low, high = self.bounds
        log = self.kind.startswith("log_")
        if self.kind in ("int", "log_int"):
            return trial.suggest_int(key, low, high, step=builtins.int(self.step or 1), log=log)
        value = trial.suggest_float(key, low, high, step=self.step, log=log)
        return round(value, 12) if self.step else value  # 0.30000000000000004 → 0.3


def _label(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def _leaves(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": {"log_uniform": [...]}}}`` → ``{"optim.lr": {"log_uniform": [...]}}``: a
    table is a parameter when it names a distribution or holds a list (``loguniform = [...]``, a
    misspelt one); other tables are key prefixes, and a plain value under them is an error."""
    found: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and value and not (
                set(value) & {*DISTRIBUTIONS, "step"} or any(isinstance(v, list) for v in value.values())):
            found.update(_leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def parse(table: dict[str, Any], where: str = "space") -> dict[str, Param]:
    """The parameters of a space table, each validated; errors name the key (exit 2)."""
    space: dict[str, Param] = {}
    for key, value in _leaves(table).items():
        if not isinstance(value, dict):
            raise ZooError(f"{where}: {key} = {value!r}: give a distribution, e.g. "
                           f"{key} = {{ uniform = [0.0, 1.0] }} or {{ choice = [...] }}")
        for name in value:
            if name not in (*DISTRIBUTIONS, "step"):
                raise ZooError(f"{where}: {key}: " + did_you_mean(name, (*DISTRIBUTIONS, "step"), "distribution"))
        try:
            space[key] = Param.model_validate(value)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ZooError(f"{where}: {key}: {field + ': ' if field else ''}"
                           f"{first['msg'].removeprefix('Value error, ')}") from None
    if not space:
        raise ZooError(f"{where}: no parameters (write e.g. optim.lr = {{ log_uniform = [1e-4, 1e-1] }})")
    return space


def load(path: str | Path) -> dict[str, Param]:
    """Read and :func:`parse` a space file."""
    from zoo.core.contract.toml_io import read_toml

    return parse(read_toml(path), where=str(path))


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """``{"optim.lr": 0.01}`` → ``{"optim": {"lr": 0.01}}`` (the ``options`` of :func:`zoo.core.api.train`)."""
    nested: dict[str, Any] = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def check_against(space: dict[str, Param], model: str, where: str, sets: tuple[str, ...] = (),
                  config_file: str | None = None) -> None:
    """Every key must be in the model's config (``zoo config MODEL``) and every end of every range
    (each choice) must pass its validation: a typo or an impossible value is exit 2 now, not a
    failed trial later."""
    from zoo.core import api

    config = api.show_config(model, config_file=config_file, sets=sets)
    known = set(flatten(config, keep_empty=True))
    for key, param in space.items():
        if key not in known:
            raise ZooError(f"{where}: " + did_you_mean(key, known, "config key",
                                                       listed_by=f"zoo config {model}"))
        for value in param.extremes():
            try:
                api.resolve_config(model, config_file=config_file, sets=sets, options=nest({key: value}))
            except ZooError as err:
                raise ZooError(f"{where}: {key} = {json.dumps(value)} is refused by {model}'s config: {err}") from None
