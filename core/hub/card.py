"""The model card: ``README.md`` with YAML front matter in the Hugging Face model-card format.

The front matter carries the keys the Hugging Face Hub reads (``library_name``, ``tags``,
``license``, ``datasets``, ``metrics``, ``model-index`` with the test results) and a ``zoo``
section with what none of those hubs verifies: the ONNX parity figure, the provider that checked
it, the zoo version and the command that reproduces the run from its ``config.toml``.

YAML is written here without a YAML library: every scalar is a JSON scalar, and JSON scalars
are valid YAML 1.2 flow scalars, so block mappings and sequences of them read back exactly.
"""

from __future__ import annotations

import json
from typing import Any


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and value != value:  # NaN: YAML's .nan, JSON has none
            return ".nan"
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for nested dicts and lists of scalars (keys and strings JSON-quoted where
    needed); the inverse of ``yaml.safe_load`` for such values."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = key if _plain_key(key) else json.dumps(str(key))
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key_text}:")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key_text}: {_empty(item) if isinstance(item, (dict, list)) else _scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = to_yaml(item, indent + 2).lstrip(" ")
                lines.append(f"{pad}- {nested}")
            else:
                lines.append(f"{pad}- {_empty(item) if isinstance(item, (dict, list)) else _scalar(item)}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def _empty(item: dict | list) -> str:
    return "{}" if isinstance(item, dict) else "[]"


def _plain_key(key: Any) -> bool:
    return isinstance(key, str) and key.replace("-", "").replace("_", "").isalnum() and not key[0].isdigit()


def card_metadata(summary: dict[str, Any], dataset: dict[str, Any], entry: dict[str, Any],
                  license_: str | None) -> dict[str, Any]:
    """The front matter of a pushed run: ``summary`` (summary.json), ``dataset`` (the catalogue's
    dataset info: license, citation, homepage) and ``entry`` (the model's catalogue entry)."""
    metrics = summary.get("metrics") or {}
    results = [{"type": k, "name": k, "value": v} for k, v in metrics.items()]
    return {
        "library_name": "zoo",
        "tags": ["zoo", "onnx", summary.get("plugin") or "", summary.get("task") or ""],
        "license": license_ or dataset.get("license") or "other",
        "datasets": [summary.get("dataset")],
        "metrics": list(metrics),
        "model-index": [{"name": summary.get("model"), "results": [{
            "task": {"type": summary.get("task"), "name": summary.get("task")},
            "dataset": {"type": summary.get("dataset"), "name": summary.get("dataset"), "split": "test"},
            "metrics": results}]}],
        "zoo": {
            "model": summary.get("model"), "family": summary.get("plugin"), "task": summary.get("task"),
            "dataset": summary.get("dataset"), "metrics": metrics, "parity": summary.get("parity"),
            "parity_provider": summary.get("parity_provider"), "epochs": summary.get("epochs"),
            "device": summary.get("device"), "zoo_version": summary.get("zoo_version"),
            "torch_version": summary.get("torch_version"), "paper": entry.get("paper"),
            "dataset_citation": dataset.get("citation"),
            "command": f"zoo train {summary.get('model')} --config config.toml",
        },
    }


def render(meta: dict[str, Any], name: str, tag: str) -> str:
    """README.md: the front matter, then a human-readable page of the same facts."""
    zoo = meta["zoo"]
    metrics = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                        for k, v in zoo["metrics"].items())
    parity = zoo["parity"]
    parity_text = f"{parity:.2e}" if isinstance(parity, (int, float)) else "not checked"
    lines = [
        "---", to_yaml(meta), "---", "",
        f"# {name}:{tag}", "",
        f"`{zoo['model']}` ({zoo['family']} family) trained by zoo {zoo['zoo_version']} for "
        f"{zoo['task']} on `{zoo['dataset']}` ({zoo['epochs']} epochs on {zoo['device']}).", "",
        "| test metric | value |", "| --- | --- |", metrics, "",
        f"ONNX parity with the torch model: max |Δ| {parity_text} "
        f"({zoo.get('parity_provider') or 'provider not recorded'}).", "",
        "## Use it", "", "```bash", f"zoo pull {name}:{tag}",
        f"zoo predict hub:{name}:{tag} --input batch.npy",
        f"zoo train {zoo['model']} --init hub:{name}:{tag} --out runs/finetuned", "```", "",
        "## Reproduce it", "", "```bash", zoo["command"], "```", "",
        f"License: {meta['license']}." + (f" Paper: {zoo['paper']}." if zoo.get("paper") else ""),
    ]
    if zoo.get("dataset_citation"):
        lines += ["", "Dataset citation:", "", "```", str(zoo["dataset_citation"]).strip(), "```"]
    return "\n".join(lines) + "\n"


def front_matter(text: str) -> str:
    """The YAML between the leading ``---`` lines of a card (``""`` when there is none)."""
    if not text.startswith("---\n"):
        return ""
    end = text.find("\n---\n", 4)
    return text[4:end] if end != -1 else ""
