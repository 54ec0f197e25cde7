"""Run configuration: pydantic models that are the schema, the CLI help and the error messages.

A run's config has one table per concern::

    [model]     options of the model (the plugin's ModelConfig subclass), plus its name
    [data]      which dataset, where its files are, split and dataset-specific options
    [optim]     optimizer and its hyper-parameters
    [schedule]  learning-rate schedule with linear warm-up
    [train]     epochs, batch size, clipping, early stopping, seed, device, precision
    [export]    ONNX export and its parity check

Merge order, later wins: class defaults < the model's ``defaults`` in its manifest
< the model's recipe for the chosen dataset (``[models.NAME.recipes.DATASET]``)
< ``--config FILE.toml`` < ``--set a.b=value`` < explicit options (``--epochs`` ...).

Choosing another dataset (``--dataset``, ``data.name``) replaces the default one *with its
options*: the defaults' ``data.options`` were written for the model's default dataset and carry
over only to a dataset that takes the very same options (wiki-sample → text-file).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from zoo.core.contract.errors import ZooError
from zoo.core.contract.toml_io import dumps_toml, read_toml  # noqa: F401  (re-exported)


class Section(BaseModel):
    """Base of every config table: unknown keys are errors, assignments are validated, and no
    number may be NaN or infinite (an infinite lr or tolerance only fails much later)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


#: Largest seed and batch size: seeds go to NumPy too (32-bit); batches beyond this exhaust memory.
MAX_SEED = 2**32 - 1
MAX_BATCH = 2**24
#: An Adam beta: a decay rate in [0, 1).
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class ModelConfig(Section):
    """Base class of every model's options; plugins subclass it and add fields."""

    name: str = Field(description="Catalogue name of the model (set by `zoo train MODEL`).")


class AugmentConfig(Section):
    """Augmentation of training batches on the device (see :mod:`zoo.core.train.augment`); all off by default."""

    shift: int = Field(0, ge=0, le=64, description="Random translation of images by up to this many "
                       "pixels in x and y (zero fill; pad-and-random-crop). 0 = off.")
    hflip: bool = Field(False, description="Random left-right flip of images with probability 1/2.")

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.hflip


class DataConfig(Section):
    name: str = Field(description="Registered dataset name (see `zoo list --datasets`).")
    data_dir: str | None = Field(
        None, pattern=r"^[^\x00]*$", description="Folder with local dataset files; defaults to "
        "$ZOO_DATA_DIR, then the dataset's standard location.")
    val_fraction: float = Field(
        0.1, ge=0.0, le=0.5,
        description="Share of the training split held out for validation when the dataset has no "
        "validation split of its own.")
    limit: int | None = Field(
        None, ge=1, description="Use at most this many training samples (quick runs and tests).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Dataset-specific options, validated by the dataset.")
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig, description="Augmentation of image training batches on the device.")


class OptimConfig(Section):
    name: Literal["sgd", "adagrad", "rmsprop", "adam", "adamw"] = Field(
        "adam", description="Optimizer.")
    lr: float = Field(1e-3, gt=0.0, le=1e3, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, le=1e3, description="L2 penalty (decoupled for adamw).")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="Momentum (sgd, rmsprop).")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd; needs momentum > 0).")
    betas: tuple[Beta, Beta] = Field(
        (0.9, 0.999), description="Adam(W) decay rates of the gradient's first and second moments, "
        "each in [0, 1).")
    eps: float = Field(1e-8, gt=0.0, le=1.0, description="Numerical stability term.")


class ScheduleConfig(Section):
    name: Literal["constant", "step", "cosine", "linear"] = Field(
        "constant", description="LR schedule (linear: straight from lr down to min_lr).")
    warmup_epochs: float = Field(
        0.0, ge=0.0, le=100_000, description="Linear warm-up from 0 to the peak lr over this many epochs.")
    step_size: int = Field(10, ge=1, le=100_000, description="step: multiply the lr by gamma every N epochs.")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step: decay factor.")
    min_lr: float = Field(0.0, ge=0.0, le=1e3, description="cosine, linear: final learning rate.")


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, le=100_000, description="Number of passes over the training split.")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Training minibatch size.")
    eval_batch_size: int = Field(4096, ge=1, le=MAX_BATCH, description="Batch size for validation and test.")
    loss: str | None = Field(
        None, description="Loss of the task (regression: mse | mae); default: the task's first.")
    grad_clip: float | None = Field(None, gt=0.0, description="Clip the gradient norm to this value.")
    early_stopping: int | None = Field(
        None, ge=1, le=100_000,
        description="Stop after this many epochs without improving the monitored metric.")
    monitor: str | None = Field(
        None, description="Validation metric for best checkpoint and early stopping "
        "(default: the task's main metric).")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed for data split, init, shuffling and dropout.")
    deterministic: bool = Field(False, description="Use deterministic algorithms (slower on GPU).")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="auto = cuda when available, else cpu.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32; bf16 = autocast to bfloat16 (CUDA or CPU); fp16 = autocast to "
        "float16 with gradient scaling (CUDA only).")
    compile: bool = Field(False, description="torch.compile the model for training and evaluation "
                          "(falls back to eager with a warning when it cannot compile).")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode; reduce-overhead captures CUDA graphs (small "
        "static-shape models on CUDA).")
    progress: bool = Field(True, description="Show a progress bar on a terminal.")
    init: str | None = Field(
        None, max_length=1000, description="Start from these weights instead of a random init: a run "
        "directory or hub:[HUB/]NAME[:TAG] (zoo train --init); every tensor must fit the model.")
    log: list[str] = Field(
        default_factory=list,
        description="Logger plugins to enable for this run (e.g. tensorboard); each plugin reads this "
        "list from the config it receives in on_train_start.")


class ExportConfig(Section):
    enabled: bool = Field(True, description="Export model.onnx at the end of training.")
    opset: int = Field(18, ge=17, le=23, description="ONNX opset version.")
    atol: float = Field(1e-4, gt=0.0, le=1e3, description="Parity check: absolute tolerance.")
    rtol: float = Field(1e-3, gt=0.0, le=1e3, description="Parity check: relative tolerance.")


M = TypeVar("M", bound=ModelConfig)


class RunConfig(Section, Generic[M]):
    """The whole config of one run (what ``config.toml`` holds)."""

    model: M
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)


# -- merging ---------------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_BARE = re.compile(r"^[A-Za-z_./~][A-Za-z0-9_.:/+~@-]*$")  # words and paths: adam, cuda:0, ./houses.csv, ~/data


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` merged into ``base``, tables recursively."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_set(item: str) -> dict:
    """``"optim.lr=0.02"`` → ``{"optim": {"lr": 0.02}}``; the value is a TOML literal.

    A bare word (``adam``, ``cuda:0``) is taken as a string for convenience.
    """
    key, sep, raw = item.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not _KEY.fullmatch(key) or not raw:
        raise ZooError(f"malformed --set {item!r}: expected SECTION.KEY=VALUE, e.g. optim.lr=0.01")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except RecursionError:
        raise ZooError(f"malformed --set {item!r}: the value is nested too deeply") from None
    except tomllib.TOMLDecodeError:
        if not _BARE.fullmatch(raw):
            raise ZooError(f"malformed --set {item!r}: {raw!r} is not a TOML value "
                           f"(quote strings: key=\"text\"; lists: key=[1, 2])") from None
        value = raw
    if "." not in key and not isinstance(value, dict):
        # `--set model=5`: every top-level key is a table; say how to set one of its keys.
        raise ZooError(f"malformed --set {item!r}: {key!r} is a config section, not a value; "
                       f"set one of its keys: {key}.KEY=VALUE")
    out: dict = {}
    node = out
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def describe_validation_error(err: ValidationError, model_cls: type[BaseModel], what: str = "config") -> str:
    """One line: ``invalid config: train.epochs: Input should be greater than or equal to 1 (got 0)``;
    several problems are joined with ``;`` (a CLI error is one line)."""
    problems = []
    for problem in err.errors():
        loc = ".".join(_loc_part(p) for p in problem["loc"])
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            valid = _valid_keys(model_cls, problem["loc"][:-1])
            message = "unknown key" + (f"; valid keys: {', '.join(valid)}" if valid else "")
        elif problem["type"] != "missing":
            message += f" (got {_short(problem.get('input'))})"
        problems.append(f"{loc}: {' '.join(message.splitlines())}")
    count = f" ({len(problems)} problems)" if len(problems) > 1 else ""
    return f"invalid {what}{count}: " + "; ".join(problems)


def _loc_part(part: Any) -> str:
    # Keys come from user files: quote any that is not a plain name, so the message stays one line.
    text = str(part)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else repr(text)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _valid_keys(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    cls: Any = model_cls
    for part in loc:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        cls = field.annotation
    return sorted(getattr(cls, "model_fields", {}))


def validate(config_cls: type[BaseModel], data: dict, what: str = "config") -> BaseModel:
    """``config_cls(**data)`` or a ZooError listing every problem (``what`` names the table)."""
    try:
        return config_cls.model_validate(data)
    except ValidationError as err:
        raise ZooError(describe_validation_error(err, config_cls, what)) from None


def run_config_class(model_config_cls: type[ModelConfig]) -> type[RunConfig]:
    return RunConfig[model_config_cls]  # type: ignore[valid-type]


# -- the dataset's options (``zoo config``) ---------------------------------------------------


def _is_schema(options_class: Any) -> bool:
    """Whether ``options_class`` is a pydantic model whose keys are known (not ``extra="allow"``)."""
    return (isinstance(options_class, type) and issubclass(options_class, BaseModel)
            and options_class.model_config.get("extra") != "allow")


def dataset_options(options_class: type[BaseModel] | None, given: dict, dataset: str) -> dict:
    """``data.options`` as the dataset reads them: validated by its options class, every default
    filled in (what ``zoo config`` shows under ``[data.options]``).

    Args:
        options_class: the class the dataset registered (``None``: it takes no options).
        given: the resolved ``data.options``.
        dataset: the dataset's name, for messages.

    A wrong key or value is a one-line :class:`ZooError` naming it (and the valid keys). Options
    that are required and not given (a user's ``table`` needs ``path``) are left out instead:
    the config is still worth showing, and ``zoo train`` names them.
    """
    if options_class is None:
        if given:
            raise ZooError(f"data.options {', '.join(map(str, given))}: dataset {dataset!r} takes no options")
        return {}
    if not _is_schema(options_class):
        return dict(given)
    what = f"data.options for {dataset!r}"
    try:
        return options_class.model_validate(given).model_dump(mode="json")
    except ValidationError as err:
        if any(problem["type"] != "missing" for problem in err.errors()):
            raise ZooError(describe_validation_error(err, options_class, what)) from None
    defaults = {name: field.get_default(call_default_factory=True)
                for name, field in options_class.model_fields.items() if not field.is_required()}
    return {**options_class.model_construct(**defaults).model_dump(mode="json", include=set(defaults)),
            **given}


def with_dataset_options(config: dict, options_class: type[BaseModel] | None) -> dict:
    """A resolved config (``RunConfig.model_dump(mode="json")``) with :func:`dataset_options`."""
    data = config["data"]
    return {**config, "data": {**data, "options": dataset_options(options_class, data.get("options") or {},
                                                                  data["name"])}}


def run_config_schema(model_config_cls: type[ModelConfig], options_class: type[BaseModel] | None = None,
                      dataset: str | None = None) -> dict[str, Any]:
    """The JSON schema of a run's config (``zoo config MODEL --schema``), with ``data.options``
    described by the dataset's options class instead of a free-form table."""
    base = run_config_class(model_config_cls)
    if not _is_schema(options_class):
        return base.model_json_schema()
    from pydantic import create_model

    about = f"Options of dataset {dataset!r}." if dataset else "Options of the dataset."
    data_cls = create_model("DataConfig", __base__=DataConfig,
                            options=(options_class, Field(default_factory=dict, description=about)))
    return create_model(base.__name__, __base__=base, data=(data_cls, ...)).model_json_schema()


def resolve(
    model_name: str,
    model_config_cls: type[ModelConfig],
    manifest_defaults: dict,
    default_dataset: str,
    config_file: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    options: dict | None = None,
    recipes: dict[str, dict] | None = None,
    option_classes: dict[str, type[BaseModel] | None] | None = None,
) -> RunConfig:
    """Merge all config sources in order and validate the result.

    Args:
        recipes: the model's recipes, ``{dataset: {section: {key: value}}}``; the chosen
            dataset's one is merged over ``manifest_defaults``.
        option_classes: ``{dataset: options class or None}`` of the registered datasets. With it,
            the defaults' ``data.options`` follow the dataset only when both take the same class,
            and explicit ``data.options`` (config file, ``--set``, options) that the chosen dataset
            does not take are an error naming them. Without it (no plugins loaded) the defaults'
            options stay with the default dataset alone and nothing is checked here.

    Every malformed input (a section given a scalar, a value of the wrong type or out of bounds,
    keys nested thousands deep) ends in a one-line :class:`ZooError` naming the source and the key.
    """
    try:
        explicit, sources = _explicit_layers(model_name, config_file, sets, options)
        dataset = explicit.get("data", {}).get("name", default_dataset)
        defaults = _sections(manifest_defaults, f"the defaults of model {model_name!r}")
        if not _options_carry(default_dataset, dataset, option_classes):
            defaults = _without_data_options(defaults)
        recipe = _sections((recipes or {}).get(dataset, {}) if isinstance(dataset, str) else {},
                           f"the recipe of model {model_name!r} for dataset {dataset!r}")
        merged: dict = {"model": {"name": model_name}, "data": {"name": default_dataset}}
        for layer in (defaults, recipe, explicit):
            merged = deep_merge(merged, layer)
        merged["model"]["name"] = model_name
        _check_depth(merged)
        if option_classes is not None and isinstance(dataset, str) and dataset in option_classes:
            _check_explicit_options(dataset, option_classes[dataset], explicit, sources)
        return validate(run_config_class(model_config_cls), merged)  # type: ignore[return-value]
    except RecursionError:
        raise ZooError(f"invalid config: nested more than {MAX_DEPTH} tables or lists deep") from None


def _explicit_layers(model_name: str, config_file, sets, options) -> tuple[dict, dict[str, str]]:
    """What the user said, merged: config file < ``--set`` < options; and, for each
    ``data.options`` key, where it came from (for error messages)."""
    explicit: dict = {}
    sources: dict[str, str] = {}
    layers: list[tuple[dict, str]] = []
    if config_file is not None:
        from_file = _sections(read_toml(config_file), f"config file {str(config_file)!r}")
        file_model = from_file.get("model", {}).get("name")
        if file_model not in (None, model_name):
            raise ZooError(f"config file {str(config_file)!r} is for model {_short(file_model)}, "
                           f"not {model_name!r}")
        layers.append((from_file, f"config file {str(config_file)!r}"))
    layers += [(parse_set(item), "--set") for item in sets]
    layers.append((_sections(options or {}, "the command-line options"), "the command-line options"))
    for layer, source in layers:
        data_options = layer.get("data", {}).get("options") if isinstance(layer.get("data"), dict) else None
        if isinstance(data_options, dict):
            sources.update(dict.fromkeys(map(str, data_options), source))
        explicit = deep_merge(explicit, layer)
    return explicit, sources


def _options_carry(default_dataset: str, dataset: Any, option_classes: dict | None) -> bool:
    """Whether the defaults' ``data.options`` (written for ``default_dataset``) apply to ``dataset``."""
    if dataset == default_dataset:
        return True
    if option_classes is None or not isinstance(dataset, str) or dataset not in option_classes:
        return False
    cls = option_classes[dataset]
    return cls is not None and cls is option_classes.get(default_dataset)


def _without_data_options(defaults: dict) -> dict:
    if not isinstance(defaults.get("data"), dict) or "options" not in defaults["data"]:
        return defaults
    return {**defaults, "data": {k: v for k, v in defaults["data"].items() if k != "options"}}


def _check_explicit_options(dataset: str, options_class, explicit: dict, sources: dict[str, str]) -> None:
    """ZooError naming the ``data.options`` keys given explicitly that ``dataset`` does not take."""
    given = explicit.get("data", {}).get("options")
    if not isinstance(given, dict) or not given:
        return
    if options_class is not None and (not hasattr(options_class, "model_fields")
                                      or options_class.model_config.get("extra") == "allow"):
        return  # not a schema whose keys we can list, or one that takes any key: the loader checks
    fields = options_class.model_fields if options_class is not None else {}
    valid = sorted(fields)
    accepted = {*fields, *(f.alias for f in fields.values() if f.alias)}
    wrong = [str(k) for k in given if k not in accepted]
    if not wrong:
        return
    by = sorted({sources.get(k, "the command line") for k in wrong})
    given_by = f"data.options {', '.join(_loc_part(k) for k in wrong)} (from {' and '.join(by)})"
    if not valid:
        raise ZooError(f"{given_by}: dataset {dataset!r} takes no options")
    raise ZooError(f"{given_by} do not fit dataset {dataset!r}; it takes: {', '.join(valid)}")


#: How deep tables and lists may nest in a config: far beyond any real one, and well within what
#: writing config.toml (recursive) can handle.
MAX_DEPTH = 32


def _check_depth(data: dict) -> None:
    """ZooError when ``data`` nests deeper than :data:`MAX_DEPTH` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ZooError(f"invalid config: nested more than {MAX_DEPTH} tables or lists deep")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _sections(data: dict, origin: str) -> dict:
    """``data`` if each of its known sections (``model``, ``optim``, ...) is a table: ``model = 5``
    would otherwise replace the whole section and fail far from its cause."""
    for key in RunConfig.model_fields:
        if key in data and not isinstance(data[key], dict):
            raise ZooError(f"{origin}: [{key}] must be a table of options (e.g. {key}.KEY = VALUE), "
                           f"got {key} = {_short(data[key])}")
    return data
