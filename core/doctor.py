"""``zoo doctor``: every check on the installed plugins, with what to fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    plugin: str
    check: str
    message: str
    ok: bool


def run_checks() -> list[Finding]:
    """Load every plugin and check it: loading, hook signatures, manifest, declarations, configs."""
    from pluggy import PluginValidationError
    from zoo.core.contract import discovery
    from zoo.core.contract.catalogue import load_catalogue
    from zoo.core.contract.errors import ZooError
    from zoo.core.contract.plugins import get_zoo

    zoo = get_zoo()
    catalogue = load_catalogue()
    findings: list[Finding] = []
    for name, error in discovery.MANIFEST_ERRORS.items():
        findings.append(Finding(name, "manifest", error, False))
    for status in zoo.status.values():
        if status.status == "failed":
            findings.append(Finding(status.name, "load", status.error, False))
        elif status.status == "disabled":
            findings.append(Finding(status.name, "load", status.error, True))
        else:
            findings.append(Finding(status.name, "load", f"loaded ({len(status.models)} models, "
                                    f"{len(status.datasets)} datasets, hooks: {', '.join(status.hooks) or '-'})",
                                    True))
        for problem in status.problems:
            findings.append(Finding(status.name, "declarations", problem, False))
    try:
        zoo.pm.check_pending()
    except PluginValidationError as err:
        findings.append(Finding(getattr(err, "plugin_name", "?"), "hooks", str(err), False))
    for name, spec in sorted(zoo.registry.models.items()):
        entry = catalogue.models.get(name)
        if entry is None:
            continue
        from zoo.core.contract import config as cfg

        try:
            cfg.resolve(name, spec.config_class, entry.defaults, entry.dataset)
            cfg.run_config_class(spec.config_class).model_json_schema()
        except ZooError as err:
            findings.append(Finding(spec.plugin, "defaults", f"model {name!r}: the manifest's defaults do not "
                                    f"validate: {err}", False))
        except Exception as err:  # noqa: BLE001 - a config class that cannot make a schema
            findings.append(Finding(spec.plugin, "config", f"model {name!r}: {type(err).__name__}: {err}", False))
        findings += _default_dataset_findings(zoo, catalogue, entry, spec)
        findings += _recipe_findings(zoo, entry, spec)
    return findings + runtime_findings()


def _default_dataset_findings(zoo, catalogue, entry, spec) -> list[Finding]:
    """The model's default dataset (``dataset =`` in its manifest) must be declared or registered:
    otherwise a plain ``zoo train MODEL`` can only fail."""
    from zoo.core.contract.errors import did_you_mean

    name = entry.dataset
    if name in zoo.registry.datasets or name in catalogue.datasets:
        return []
    known = {*zoo.registry.datasets, *catalogue.datasets}
    return [Finding(spec.plugin, "dataset", f"model {entry.name!r}: default dataset {name!r} is neither declared "
                    f"in a manifest nor registered by a plugin: "
                    + did_you_mean(name, known, "dataset", listed_by="zoo list --datasets"), False)]


def _recipe_findings(zoo, entry, spec) -> list[Finding]:
    """Each of the model's recipes resolved as ``--dataset DATASET`` would, its ``data.options``
    validated by the dataset: a broken recipe is found here, not by the user who picks it."""
    from zoo.core.contract import config as cfg
    from zoo.core.contract.errors import ZooError

    findings = []
    for dataset in entry.recipes:
        try:
            run_config = cfg.resolve(entry.name, spec.config_class, entry.defaults, entry.dataset,
                                     recipes=entry.recipes, options={"data": {"name": dataset}})
            options_class = getattr(zoo.registry.datasets.get(dataset), "options_class", None)
            if options_class is not None:
                cfg.validate(options_class, run_config.data.options, what=f"data.options for {dataset!r}")
        except ZooError as err:
            findings.append(Finding(spec.plugin, "recipes", f"model {entry.name!r}: the recipe for "
                                    f"{dataset!r} does not validate: {err}", False))
    return findings


def runtime_findings() -> list[Finding]:
    """torch and onnxruntime on a GPU: does onnxruntime's CUDA provider match torch's CUDA?

    onnxruntime-gpu 1.27 and later on PyPI are built for CUDA 13 (as torch ≥ 2.11 from PyPI is),
    1.19–1.26 for CUDA 12: a mismatched pair makes every session fall back to the CPU.
    """
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnxruntime") is None:
        return []
    import onnxruntime
    import torch

    if not torch.cuda.is_available():
        return [Finding("runtime", "gpu", "no CUDA device visible to torch: training and onnxruntime run "
                        "on the CPU", True)]
    torch_major = (torch.version.cuda or "").split(".")[0]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        spec = "onnxruntime-gpu>=1.27" if torch_major == "13" else "onnxruntime-gpu>=1.23,<1.27"
        return [Finding("runtime", "gpu", f"onnxruntime {onnxruntime.__version__} has no CUDA provider: "
                        f"pip uninstall -y onnxruntime && pip install '{spec}'", False)]
    from onnxruntime.capi import build_and_package_info as build

    ort_major = str(getattr(build, "cuda_version", "") or "").split(".")[0]
    if ort_major and ort_major != torch_major:
        spec = "onnxruntime-gpu>=1.27" if torch_major == "13" else "onnxruntime-gpu>=1.23,<1.27"
        return [Finding("runtime", "gpu", f"onnxruntime-gpu {onnxruntime.__version__} is built for CUDA "
                        f"{build.cuda_version}, torch for CUDA {torch.version.cuda}: pip install '{spec}'", False)]
    return [Finding("runtime", "gpu", f"torch CUDA {torch.version.cuda}, onnxruntime-gpu "
                    f"{onnxruntime.__version__} (CUDA {ort_major or '?'}): matched", True)]
