"""`zoo serve` (Open Inference Protocol) and Triton model repositories."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from zoo.core import api

pytest.importorskip("starlette")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    quiet = {"train": {"progress": False}}
    api.train("linear", options=quiet, out=str(root / "linear"), log=None)
    api.train("logistic", options={"train": {"progress": False, "epochs": 5}}, out=str(root / "logistic"), log=None)
    return root


@pytest.fixture
def client(runs):
    from starlette.testclient import TestClient

    from zoo.core.serve import build_app

    app = build_app([str(runs / "linear"), f"cancer={runs / 'logistic'}", f"ghost={runs / 'missing'}"],
                    max_batch=8, max_delay_ms=20, max_body=4096, log=lambda line: None)
    with TestClient(app) as c:
        yield c


def _request(x: np.ndarray, name: str = "x") -> dict:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}


def test_health_metadata_and_inference(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/linear").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
    assert meta["outputs"][0]["name"] == "prediction" and meta["outputs"][0]["shape"][0] == -1
    server = client.get("/v2").json()
    assert server["models"] == ["cancer", "linear"] and "ghost" in server["failed"]
    x = np.array([[1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    out = client.post("/v2/models/linear/infer", json={**_request(x), "id": "r1"}).json()
    assert out["id"] == "r1" and out["outputs"][0]["shape"] == [2, 1]
    assert np.allclose(out["outputs"][0]["data"], [2.8, 4.2], atol=5e-3)


@pytest.mark.parametrize("body, status, needle", [
    ({"inputs": [{"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}, 400, "unknown input 'y'"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, 400, "expects [-1, 2]"),
    ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}]}, 400, "datatype 'INT64'"),
    ({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2]}]}, 400, "do not fill"),
    ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": ["a", "b"]}]}, 400, "not FP32"),
    ({"inputs": []}, 400, "missing input(s) ['x']"),
    ({"nope": 1}, 400, "'inputs' list"),
    ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}],
      "outputs": [{"name": "bogus"}]}, 400, "unknown output(s) ['bogus']"),
])
def test_bad_requests_get_400_and_the_server_keeps_serving(client, body, status, needle):
    response = client.post("/v2/models/linear/infer", json=body)
    assert response.status_code == status and needle in response.json()["error"]
    ok = client.post("/v2/models/linear/infer", json=_request(np.zeros((1, 2), np.float32)))
    assert ok.status_code == 200


def test_unknown_model_oversized_body_and_bad_json(client):
    response = client.post("/v2/models/nope/infer", json=_request(np.zeros((1, 2), np.float32)))
    assert response.status_code == 404 and "unknown model 'nope'" in response.json()["error"]
    ghost = client.get("/v2/models/ghost")
    assert ghost.status_code == 404 and "failed to load" in ghost.json()["error"]
    big = _request(np.zeros((2000, 2), np.float32))
    assert client.post("/v2/models/linear/infer", json=big).status_code == 413
    assert client.post("/v2/models/linear/infer", content=b"{not json").status_code == 400
    wrong_method = client.get("/v2/models/linear/infer")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["error"]
    assert client.post("/v2/models/linear/versions/1/infer", json=_request(np.zeros((1, 2), np.float32))).status_code == 200


def test_dynamic_batching_merges_concurrent_requests(runs):
    import httpx

    from zoo.core.serve import build_app

    app = build_app([str(runs / "linear")], max_batch=64, max_delay_ms=50, log=lambda line: None)
    xs = [np.random.default_rng(i).normal(size=(1 + i % 3, 2)).astype(np.float32) for i in range(24)]

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zoo") as c:
            return await asyncio.gather(*[c.post("/v2/models/linear/infer", json=_request(x)) for x in xs])

    async def stats():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zoo") as c:
            return (await c.get("/v2/models/linear/stats")).json(), (await c.get("/v2/models/stats")).json()

    responses = asyncio.run(go())
    for x, response in zip(xs, responses):
        data = np.array(response.json()["outputs"][0]["data"]).reshape(-1)
        assert np.allclose(data, x @ np.array([2.0, -3.4]) + 4.2, atol=5e-3)  # split back to its request
    calls = app.state.batchers["linear"].calls
    assert calls < len(xs), f"{calls} onnxruntime calls for {len(xs)} concurrent requests"
    one, every = asyncio.run(stats())  # Triton's statistics extension reports the same counts
    assert one == every == {"model_stats": [{"name": "linear", "version": "1", "inference_count": len(xs),
                                             "execution_count": calls}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _zoo_serve(*targets):
    """``zoo serve TARGETS`` on a free loopback port, as a user starts it; yields a live official
    triton HTTP client, and checks that SIGTERM ends the server cleanly."""
    httpclient = pytest.importorskip("tritonclient.http")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", *map(str, targets), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if client.is_server_live():
                    break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), proc.stderr.read()


def test_zoo_serve_with_the_official_triton_client(runs, tmp_path):
    httpclient = pytest.importorskip("tritonclient.http")
    with _zoo_serve(runs / "linear", runs / "logistic") as client:
        assert client.is_server_ready()
        meta = client.get_model_metadata("logistic")
        assert meta["inputs"][0]["name"] == "x" and meta["inputs"][0]["shape"] == [-1, 30]

        x = np.random.default_rng(0).normal(size=(3, 30)).astype(np.float32) * 5 + 10
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        served = client.infer("logistic", [inp]).as_numpy("logits")
        np.save(tmp_path / "x.npy", x)
        predicted = subprocess.run([sys.executable, "-m", "zoo", "predict", str(runs / "logistic"), "--input",
                                    str(tmp_path / "x.npy"), "--json"], capture_output=True, text=True)
        labels = [p["class"] for p in json.loads(predicted.stdout)]
        assert labels == [int(v > 0) for v in served.reshape(-1)]

        y = np.array([[1.0, 1.0]], dtype=np.float32)
        inp = httpclient.InferInput("x", [1, 2], "FP32")
        inp.set_data_from_numpy(y)
        assert np.allclose(client.infer("linear", [inp]).as_numpy("prediction"), [[2.8]], atol=5e-3)


def test_triton_repository_matches_the_onnx_signature(runs, tmp_path):
    from zoo.core.runtime import make_session
    from zoo.core.triton import parse_pbtxt

    for name in ("linear", "logistic"):
        out = subprocess.run([sys.executable, "-m", "zoo", "export", str(runs / name), "--triton",
                              str(tmp_path / "repo"), "--triton-gpu"], capture_output=True, text=True,
                             env={**os.environ})
        assert out.returncode == 0, out.stderr
        folder = tmp_path / "repo" / name
        assert (folder / "1" / "model.onnx").is_file()
        config = parse_pbtxt((folder / "config.pbtxt").read_text())
        assert config["platform"] == "onnxruntime_onnx" and config["max_batch_size"] == 64
        assert config["dynamic_batching"] and config["instance_kind"] == "KIND_GPU"
        session = make_session(folder / "1" / "model.onnx")
        assert [i["name"] for i in config["input"]] == [i.name for i in session.get_inputs()]
        assert [o["name"] for o in config["output"]] == [o.name for o in session.get_outputs()]
        for spec, value in zip(config["input"] + config["output"], session.get_inputs() + session.get_outputs()):
            assert spec["dims"] == [d if isinstance(d, int) else -1 for d in value.shape[1:]]
            assert spec["data_type"] == "TYPE_FP32"


@pytest.mark.parametrize("model", ["cnn", "lstm", "gcn"])
def test_triton_repository_for_image_text_and_graph_models(model, tmp_path):
    """Dims and dynamic axes right for a CNN, an RNN text model and a GNN (issue #9)."""
    from helpers import quick_options

    from zoo.core.catalogue import load_catalogue
    from zoo.core.runtime import make_session
    from zoo.core.triton import parse_pbtxt, write_repository

    entry = load_catalogue().models[model]
    api.train(model, options=quick_options(entry), out=str(tmp_path / "run"), log=None)
    folder = write_repository(tmp_path / "run" / "model.onnx", tmp_path / "repo", model)
    config = parse_pbtxt((folder / "config.pbtxt").read_text())
    session = make_session(folder / "1" / "model.onnx")
    values = session.get_inputs() + session.get_outputs()
    batched = config["max_batch_size"] > 0
    assert batched == all(not isinstance(v.shape[0], int) for v in values)
    assert [t["name"] for t in config["input"] + config["output"]] == [v.name for v in values]
    for spec, value in zip(config["input"] + config["output"], values):
        full = [d if isinstance(d, int) else -1 for d in value.shape]
        expected = full[1:] if batched else full
        assert spec["dims"] == (expected or [1])
        assert spec["reshape"] == (None if expected else [])
    if model == "gcn":  # a graph of N nodes and E edges: no batch axis, both sizes dynamic
        assert config["max_batch_size"] == 0 and not config["dynamic_batching"]
        assert config["input"][0]["dims"] == [-1, config["input"][0]["dims"][1]]
        assert config["input"][1]["dims"] == [2, -1] and config["input"][1]["data_type"] == "TYPE_INT64"
    if model == "lstm":  # tokens [B, T] and lengths [B]
        assert config["input"][0]["dims"] == [-1] and config["input"][1]["reshape"] == []


# -- raw text for text models ------------------------------------------------------------------

TEXTS = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from helpers import quick_options

    from zoo.core.catalogue import load_catalogue

    root = tmp_path_factory.mktemp("serve-text")
    entry = load_catalogue().models["lstm"]
    api.train("lstm", options=quick_options(entry), out=str(root / "lstm"), log=None)
    (root / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return root


def test_text_model_takes_raw_text_like_zoo_predict(text_run):
    from starlette.testclient import TestClient

    from zoo.core.serve import build_app

    expected, _ = api.predict(str(text_run / "lstm"), str(text_run / "texts.txt"))
    app = build_app([str(text_run / "lstm")], max_batch=8, max_delay_ms=5, log=lambda line: None)
    with TestClient(app) as client:
        meta = client.get("/v2/models/lstm").json()
        assert meta["parameters"]["raw_inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS}]}
        out = {o["name"]: o for o in client.post("/v2/models/lstm/infer", json=body).json()["outputs"]}
        assert [json.loads(p) for p in out["prediction"]["data"]] == json.loads(json.dumps(expected))
        assert out["logits"]["shape"] == [2, 2]

        for bad, needle in [
            ({"name": "text", "datatype": "BYTES", "shape": [1], "data": ["zzqx qqzx"]}, "only unknown tokens"),
            ({"name": "text", "datatype": "BYTES", "shape": [1], "data": ["   "]}, "empty"),
            ({"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}, "raw text is BYTES"),
            ({"name": "text", "datatype": "BYTES", "shape": [3], "data": TEXTS}, "do not fill"),
            ({"name": "text", "datatype": "BYTES", "shape": [1], "data": [3]}, "list of strings"),
        ]:
            response = client.post("/v2/models/lstm/infer", json={"inputs": [bad]})
            assert response.status_code == 400 and needle in response.json()["error"], response.json()
        ids = {"inputs": [{"name": "tokens", "datatype": "INT64", "shape": [1, 2], "data": [3, 10 ** 6]},
                          {"name": "lengths", "datatype": "INT64", "shape": [1], "data": [2]}]}
        response = client.post("/v2/models/lstm/infer", json=ids)  # token ids outside the vocabulary
        assert response.status_code == 400 and "vocabulary" in response.json()["error"], response.json()
        both = {"inputs": [body["inputs"][0], {"name": "lengths", "datatype": "INT64", "shape": [1], "data": [1]}]}
        assert "alone" in client.post("/v2/models/lstm/infer", json=both).json()["error"]
        assert client.post("/v2/models/lstm/infer", json=body).status_code == 200  # still serving


def test_text_model_with_the_official_triton_client_binary_bytes(text_run):
    httpclient = pytest.importorskip("tritonclient.http")
    expected, _ = api.predict(str(text_run / "lstm"), str(text_run / "texts.txt"))
    with _zoo_serve(text_run / "lstm") as client:
        text = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
        text.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=True)
        result = client.infer("lstm", [text])
        answers = [json.loads(p) for p in result.as_numpy("prediction").reshape(-1)]
        assert answers == json.loads(json.dumps(expected))
        assert result.as_numpy("logits").shape == (2, 2)
