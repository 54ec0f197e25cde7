"""A Triton Inference Server model repository from an exported run.

    REPO_DIR/<name>/1/model.onnx
    REPO_DIR/<name>/config.pbtxt      platform onnxruntime_onnx, inputs/outputs with Triton
                                      datatypes and dims (-1 = dynamic), dynamic batching

When every input and output has a dynamic first axis, that axis is Triton's batch dimension:
``max_batch_size`` > 0 and ``dims`` leave it out. Otherwise (a graph of N nodes, say)
``max_batch_size: 0`` and ``dims`` are the full shapes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from zoo.core.contract.errors import ZooError

ONNX_TO_TRITON = {
    "tensor(float)": "TYPE_FP32", "tensor(double)": "TYPE_FP64", "tensor(float16)": "TYPE_FP16",
    "tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(int16)": "TYPE_INT16",
    "tensor(int8)": "TYPE_INT8", "tensor(uint8)": "TYPE_UINT8", "tensor(bool)": "TYPE_BOOL",
    "tensor(string)": "TYPE_STRING",
}


def _signature(path: Path) -> tuple[list[dict], list[dict]]:
    from zoo.core.deploy.runtime import make_session

    session = make_session(path, providers=["CPUExecutionProvider"])

    def spec(value) -> dict[str, Any]:
        if value.type not in ONNX_TO_TRITON:
            raise ZooError(f"{value.name}: ONNX type {value.type} has no Triton datatype")
        return {"name": value.name, "data_type": ONNX_TO_TRITON[value.type],
                "dims": [d if isinstance(d, int) else -1 for d in value.shape]}

    return [spec(i) for i in session.get_inputs()], [spec(o) for o in session.get_outputs()]


def config_pbtxt(name: str, inputs: list[dict], outputs: list[dict], max_batch: int = 64,
                 gpu: bool = False, max_queue_delay_us: int = 2000) -> str:
    batched = max_batch > 0 and all(t["dims"] and t["dims"][0] == -1 for t in [*inputs, *outputs])

    def tensors(kind: str, items: list[dict]) -> str:
        blocks = []
        for t in items:
            dims = t["dims"][1:] if batched else t["dims"]
            # A tensor that is only the batch axis ([B] lengths, say): Triton wants dims [1]
            # reshaped to a scalar per request.
            reshape = "\n    reshape: { shape: [ ] }" if not dims else ""
            shown = dims or [1]
            blocks.append(f'  {{\n    name: "{t["name"]}"\n    data_type: {t["data_type"]}\n'
                          f'    dims: [ {", ".join(str(d) for d in shown)} ]{reshape}\n  }}')
        return f"{kind} [\n" + ",\n".join(blocks) + "\n]"

    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch if batched else 0}",
             tensors("input", inputs), tensors("output", outputs)]
    if batched:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}")
    lines.append(f"instance_group [\n  {{\n    count: 1\n    kind: {'KIND_GPU' if gpu else 'KIND_CPU'}\n  }}\n]")
    return "\n".join(lines) + "\n"


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Enough of the protobuf text format to read back what :func:`config_pbtxt` writes."""
    out: dict[str, Any] = {"input": [], "output": []}
    out["name"] = re.search(r'^name: "([^"]+)"', text, re.M).group(1)
    out["platform"] = re.search(r'^platform: "([^"]+)"', text, re.M).group(1)
    out["max_batch_size"] = int(re.search(r"^max_batch_size: (\d+)", text, re.M).group(1))
    for kind in ("input", "output"):
        section = re.search(rf"^{kind} \[(.*?)^\]", text, re.M | re.S).group(1)
        for block in re.findall(r"\{\s*name:(.*?)\n  \}", section, re.S):
            dims = re.search(r"dims: \[([^\]]*)\]", block).group(1)
            reshape = re.search(r"reshape: \{ shape: \[([^\]]*)\] \}", block)
            out[kind].append({"name": re.search(r'"([^"]+)"', block).group(1),
                              "data_type": re.search(r"data_type: (\w+)", block).group(1),
                              "dims": [int(d) for d in dims.replace(",", " ").split()],
                              "reshape": None if reshape is None else
                              [int(d) for d in reshape.group(1).replace(",", " ").split()]})
    out["dynamic_batching"] = "dynamic_batching" in text
    kind = re.search(r"kind: (KIND_\w+)", text)
    out["instance_kind"] = kind.group(1) if kind else None
    return out


def write_repository(onnx_path: Path, repo: Path, name: str, max_batch: int = 64, gpu: bool = False) -> Path:
    if not onnx_path.is_file():
        raise ZooError(f"{onnx_path} does not exist: train or `zoo export` first")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    inputs, outputs = _signature(onnx_path)
    folder = repo / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(config_pbtxt(name, inputs, outputs, max_batch, gpu), encoding="utf-8")
    return folder
