"""Triton's config.pbtxt: written and read with protobuf's text format, readable by Triton's own schema."""

from __future__ import annotations

import pytest

from zoo.core.contract.errors import ZooError
from zoo.core.deploy.triton import config_pbtxt, parse_pbtxt

INPUTS = [{"name": "tokens", "data_type": "TYPE_INT64", "dims": [-1, -1]},
          {"name": "lengths", "data_type": "TYPE_INT64", "dims": [-1]}]
OUTPUTS = [{"name": "logits", "data_type": "TYPE_FP32", "dims": [-1, 2]}]


def test_batched_config_round_trips():
    config = parse_pbtxt(config_pbtxt("lstm", INPUTS, OUTPUTS, max_batch=8, gpu=True))
    assert config["name"] == "lstm" and config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 8 and config["dynamic_batching"] and config["instance_kind"] == "KIND_GPU"
    assert config["input"] == [{"name": "tokens", "data_type": "TYPE_INT64", "dims": [-1], "reshape": None},
                               {"name": "lengths", "data_type": "TYPE_INT64", "dims": [1], "reshape": []}]
    assert config["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [2], "reshape": None}]


def test_a_fixed_first_axis_means_no_batching_and_full_dims():
    graph = [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 3]}, {"name": "edges", "data_type": "TYPE_INT64",
                                                                       "dims": [2, -1]}]
    config = parse_pbtxt(config_pbtxt("gcn", graph, [{"name": "y", "data_type": "TYPE_FP32", "dims": [-1, 4]}]))
    assert config["max_batch_size"] == 0 and not config["dynamic_batching"] and config["instance_kind"] == "KIND_CPU"
    assert [t["dims"] for t in config["input"] + config["output"]] == [[-1, 3], [2, -1], [-1, 4]]


def test_names_with_quotes_are_escaped_and_bad_text_is_a_zoo_error():
    assert parse_pbtxt(config_pbtxt('a "b"', INPUTS, OUTPUTS))["name"] == 'a "b"'
    with pytest.raises(ZooError, match="not a Triton model config"):
        parse_pbtxt("input { dims: [ x ] }")


def test_tritons_own_schema_reads_the_config():
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")  # needs grpcio
    from google.protobuf import text_format

    config = text_format.Parse(config_pbtxt("lstm", INPUTS, OUTPUTS), model_config_pb2.ModelConfig())
    assert config.max_batch_size == 64 and config.input[1].HasField("reshape")
    assert config.output[0].data_type == model_config_pb2.TYPE_FP32 and list(config.output[0].dims) == [2]
