"""A Triton Inference Server model repository from an exported run.

    REPO_DIR/<name>/1/model.onnx
    REPO_DIR/<name>/config.pbtxt      platform onnxruntime_onnx, inputs/outputs with Triton
                                      datatypes and dims (-1 = dynamic), dynamic batching

When every input and output has a dynamic first axis, that axis is Triton's batch dimension:
``max_batch_size`` > 0 and ``dims`` leave it out. Otherwise (a graph of N nodes, say)
``max_batch_size: 0`` and ``dims`` are the full shapes.
"""

from __future__ import annotations

import functools
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


# The part of Triton's ``inference.ModelConfig`` (model_config.proto) that zoo writes, with Triton's
# names and field numbers, so protobuf's text format writes and reads config.pbtxt. Triton's own
# generated module ships in ``tritonclient.grpc``, whose import needs grpcio: more than a writer needs.
_SCHEMA: dict[str, list[tuple]] = {  # message: (field, number, type, repeated)
    "ModelTensorReshape": [("shape", 1, "int64", True)],
    "ModelInput": [("name", 1, "string", False), ("data_type", 2, "DataType", False), ("dims", 4, "int64", True),
                   ("reshape", 5, "ModelTensorReshape", False)],
    "ModelOutput": [("name", 1, "string", False), ("data_type", 2, "DataType", False), ("dims", 3, "int64", True),
                    ("reshape", 5, "ModelTensorReshape", False)],
    "ModelDynamicBatching": [("max_queue_delay_microseconds", 2, "uint64", False)],
    "ModelInstanceGroup": [("count", 2, "int32", False), ("kind", 4, "Kind", False)],
    "ModelConfig": [("name", 1, "string", False), ("platform", 2, "string", False), ("max_batch_size", 4, "int32", False),
                    ("input", 5, "ModelInput", True), ("output", 6, "ModelOutput", True),
                    ("instance_group", 7, "ModelInstanceGroup", True),
                    ("dynamic_batching", 11, "ModelDynamicBatching", False)],
}
_ENUMS = {"DataType": ["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
                       "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64",
                       "TYPE_STRING", "TYPE_BF16"],
          "Kind": ["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]}


@functools.cache
def model_config_class() -> type:
    """The protobuf message class of :data:`_SCHEMA`'s ``inference.ModelConfig`` (built once)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    scalars = {"string": field.TYPE_STRING, "int32": field.TYPE_INT32, "int64": field.TYPE_INT64,
               "uint64": field.TYPE_UINT64}
    proto = descriptor_pb2.FileDescriptorProto(name="zoo_triton_model_config.proto", package="inference",
                                               syntax="proto3")
    for enum, values in _ENUMS.items():
        proto.enum_type.add(name=enum).value.extend(
            descriptor_pb2.EnumValueDescriptorProto(name=v, number=n) for n, v in enumerate(values))
    for message, fields in _SCHEMA.items():
        out = proto.message_type.add(name=message)
        for name, number, kind, repeated in fields:
            f = out.field.add(name=name, number=number,
                              label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL)
            if kind in scalars:
                f.type = scalars[kind]
            else:
                f.type = field.TYPE_ENUM if kind in _ENUMS else field.TYPE_MESSAGE
                f.type_name = f".inference.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def config_pbtxt(name: str, inputs: list[dict], outputs: list[dict], max_batch: int = 64,
                 gpu: bool = False, max_queue_delay_us: int = 2000) -> str:
    """Triton's config.pbtxt for an ONNX model whose signature is ``inputs`` and ``outputs``."""
    from google.protobuf import text_format

    batched = max_batch > 0 and all(t["dims"] and t["dims"][0] == -1 for t in [*inputs, *outputs])
    config = model_config_class()(name=name, platform="onnxruntime_onnx", max_batch_size=max_batch if batched else 0)
    for kind, items in (("input", inputs), ("output", outputs)):
        for t in items:
            dims = t["dims"][1:] if batched else t["dims"]
            tensor = getattr(config, kind).add(name=t["name"], data_type=t["data_type"], dims=dims or [1])
            if not dims:  # only the batch axis ([B] lengths, say): dims [1] reshaped to a scalar a request
                tensor.reshape.SetInParent()
    if batched:
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    config.instance_group.add(count=1, kind="KIND_GPU" if gpu else "KIND_CPU")
    return text_format.MessageToString(config)


def parse_pbtxt(text: str) -> dict[str, Any]:
    """A config.pbtxt as a dict, read with protobuf's text format (fields zoo does not write are skipped)."""
    from google.protobuf import text_format

    try:
        config = text_format.Parse(text, model_config_class()(), allow_unknown_field=True)
    except text_format.ParseError as err:
        raise ZooError(f"config.pbtxt is not a Triton model config: {err}") from None

    def enum(message, field: str) -> str:
        return message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[getattr(message, field)].name

    def tensor(t) -> dict[str, Any]:
        return {"name": t.name, "data_type": enum(t, "data_type"), "dims": list(t.dims),
                "reshape": list(t.reshape.shape) if t.HasField("reshape") else None}

    kinds = [enum(group, "kind") for group in config.instance_group]
    return {"name": config.name, "platform": config.platform, "max_batch_size": config.max_batch_size,
            "input": [tensor(t) for t in config.input], "output": [tensor(t) for t in config.output],
            "dynamic_batching": config.HasField("dynamic_batching"), "instance_kind": kinds[0] if kinds else None}


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
