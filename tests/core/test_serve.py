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


OK = {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}  # one valid input of `linear`


@pytest.mark.slow
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


@pytest.mark.slow
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
    # issue 18: each of these was a 500 (a traceback in the log, the connection closed)
    ({"inputs": [{**OK, "parameters": [1]}]}, 400, "parameters must be an object"),
    ({"inputs": [{**OK, "parameters": {"binary_data_size": True}}]}, 400, "binary_data_size must be"),
    ({"inputs": [OK], "outputs": {"name": "prediction"}}, 400, "'outputs' must be a list of objects"),
    ({"inputs": [OK], "outputs": [{"name": ["prediction"]}]}, 400, "each with a string 'name'"),
    ({"inputs": [OK], "outputs": ["prediction"]}, 400, "'outputs' must be a list of objects"),
    ({"inputs": [{**OK, "shape": [True, 2]}]}, 400, "shape must be a list of non-negative integers"),
    ({"inputs": [{**OK, "shape": [2 ** 40, 2]}]}, 413, "more than the limit of 4096"),
    ({"inputs": [{**OK, "name": ["x"]}]}, 400, "input 0: name must be a string"),
    ({"inputs": [{**OK, "data": None}]}, 400, "'data' must be a list"),
    ({"inputs": [{**OK, "data": [[1], [2, 3]]}]}, 400, "data is not FP32"),
    ({"inputs": [OK, OK]}, 400, "given twice"),
    ([OK], 400, "'inputs' list"),
])
def test_bad_requests_get_400_and_the_server_keeps_serving(client, body, status, needle):
    response = client.post("/v2/models/linear/infer", json=body)
    error = response.json()["error"]
    assert response.status_code == status and needle in error and "\n" not in error, error
    ok = client.post("/v2/models/linear/infer", json=_request(np.zeros((1, 2), np.float32)))
    assert ok.status_code == 200


@pytest.mark.parametrize("raw, needle", [
    (b'{"inputs": [{"name": "x", "datatype": "FP32"}]}', "input 'x': shape is missing"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, -2]}]}', "input 'x': shape must be a list of non-neg"),
    (b'{"inputs": [{"name": 3, "datatype": "FP32", "shape": [1]}]}', "input 0: name must be a string, got 3"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": {}}]}', "input 'x': 'data' must be a list"),
    (b'{"inputs": 1}', "'inputs' list"), (b'[]', "'inputs' list"), (b'{"inputs": [1]}', "each input must be an object"),
    (b'{"inputs": [], "outputs": [{}]}', "'outputs' must be a list of objects"),
    (b"[" * 300, "request body is not JSON"), (b"\xff", "request body is not JSON"),
])
def test_the_protocol_models_name_the_field_in_one_line(raw, needle):
    """The pydantic models of the v2 body: each form error is one line naming the input and field."""
    from zoo.core.serve import RequestError, parse_request

    with pytest.raises(RequestError) as caught:
        parse_request(raw)
    assert needle in str(caught.value) and "\n" not in str(caught.value) and caught.value.status == 400


def test_the_protocol_keeps_the_id_and_drops_unknown_fields():
    from zoo.core.serve import parse_request

    request = parse_request(b'{"id": "r1", "parameters": {"binary_data_output": true}, "inputs": [{"name": "x", '
                            b'"datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8, "y": 1}}]}')
    assert request == {"id": "r1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2],
                                               "parameters": {"binary_data_size": 8}}]}


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_triton_repository_matches_the_onnx_signature(runs, tmp_path):
    from zoo.core.deploy.runtime import make_session
    from zoo.core.deploy.triton import parse_pbtxt

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


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "lstm", "gcn"])
def test_triton_repository_for_image_text_and_graph_models(model, tmp_path):
    """Dims and dynamic axes right for a CNN, an RNN text model and a GNN (issue #9)."""
    from helpers import quick_options

    from zoo.core.contract.catalogue import load_catalogue
    from zoo.core.deploy.runtime import make_session
    from zoo.core.deploy.triton import parse_pbtxt, write_repository

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

    from zoo.core.contract.catalogue import load_catalogue

    root = tmp_path_factory.mktemp("serve-text")
    entry = load_catalogue().models["lstm"]
    api.train("lstm", options=quick_options(entry), out=str(root / "lstm"), log=None)
    (root / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return root


@pytest.mark.slow
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


@pytest.mark.slow
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


# -- hardening (issue 18): bounds, timeouts, isolation, auth, TLS, a busy port -------------------


def _linear_app(runs, **options):
    from zoo.core.serve import build_app

    return build_app([str(runs / "linear")], max_batch=8, max_delay_ms=5, log=lambda line: None, **options)


def _call(app, headers: list, receive) -> list[dict]:
    """One ``POST /v2/models/linear/infer`` straight through the ASGI app; the messages it sent."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v2/models/linear/infer", "raw_path": b"/v2/models/linear/infer",
             "query_string": b"", "root_path": "", "headers": headers, "server": ("zoo", 80),
             "client": ("test", 1)}
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent


@pytest.mark.slow
def test_a_graph_edge_out_of_range_is_a_400(gcn_run):
    from starlette.testclient import TestClient

    from zoo.core.serve import build_app

    x = np.eye(34, dtype=np.float32)[:3]
    body = {"inputs": [{"name": "x", "shape": [3, 34], "datatype": "FP32", "data": x.ravel().tolist()},
                       {"name": "edge_index", "shape": [2, 2], "datatype": "INT64", "data": [0, 7, 1, 0]}]}
    with TestClient(build_app([str(gcn_run)], log=lambda line: None)) as client:
        response = client.post("/v2/models/run/infer", json=body)
        assert response.status_code == 400, response.text
        assert "edge_index holds node 7, but the graph has 3 nodes" in response.json()["error"]
        body["inputs"][1]["data"] = [0, 2, 1, 0]
        assert client.post("/v2/models/run/infer", json=body).json()["outputs"][0]["shape"] == [3, 2]


@pytest.fixture(scope="module")
def gcn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve-gcn") / "run"
    api.train("gcn", options={"data": {"name": "karate"}, "train": {"epochs": 2, "progress": False,
                                                                     "device": "cpu"}}, out=str(out), log=None)
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A cnn trained one short epoch on a folder of 12×12 PNGs of two classes (own data)."""
    Image = pytest.importorskip("PIL.Image")
    root = tmp_path_factory.mktemp("serve-images")
    rng = np.random.default_rng(0)
    for label, name in enumerate(["ants", "bees"]):
        (root / "f" / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8)
            pixels[:, :6] += 180 * (label == 0)
            pixels[:, 6:] += 180 * (label == 1)
            Image.fromarray(pixels).save(root / "f" / name / f"{i:02d}.png")
    options = {"data": {"name": "image-folder", "options": {"path": str(root / "f")}},
               "model": {"channels": [4, 8], "hidden": 8},
               "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False}}
    api.train("cnn", options=options, out=str(root / "run"), log=None)
    return root


@pytest.mark.slow
def test_an_image_run_takes_encoded_image_bytes_never_a_server_path(image_run):
    """The raw input of an image-folder run is the encoded file (PNG/JPEG), as KServe/Triton image
    clients send it: base64 strings in JSON, raw bytes with the binary extension; the answer is
    zoo predict's. A string is never a path on the server (it read any file the client named)."""
    import base64

    from starlette.testclient import TestClient

    from zoo.core.serve import build_app

    files = [image_run / "f" / "bees" / "00.png", image_run / "f" / "ants" / "03.png"]
    expected = [api.predict(str(image_run / "run"), str(f))[0][0] for f in files]
    encoded = [f.read_bytes() for f in files]
    with TestClient(build_app([str(image_run / "run")], log=lambda line: None)) as client:
        (raw,) = client.get("/v2/models/run").json()["parameters"]["raw_inputs"]
        assert raw["name"] == "text" and raw["datatype"] == "BYTES" and "base64" in raw["parameters"]["content"]
        b64 = [base64.b64encode(encoded[0]).decode("ascii"), base64.encodebytes(encoded[1]).decode("ascii")]
        assert "\n" in b64[1]  # MIME base64 (line breaks every 76 characters) is base64 too
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": b64}]}
        response = client.post("/v2/models/run/infer", json=body)
        assert response.status_code == 200, response.text
        out = {o["name"]: o for o in response.json()["outputs"]}
        assert [json.loads(p) for p in out["prediction"]["data"]] == json.loads(json.dumps(expected))
        assert out["logits"]["shape"] == [2, 2]
        packed = b"".join(len(e).to_bytes(4, "little") + e for e in encoded)
        header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                         "parameters": {"binary_data_size": len(packed)}}]}).encode()
        binary = client.post("/v2/models/run/infer", content=header + packed,
                             headers={"Inference-Header-Content-Length": str(len(header))})
        assert binary.status_code == 200, binary.text
        out = {o["name"]: o for o in binary.json()["outputs"]}
        assert [json.loads(p) for p in out["prediction"]["data"]] == json.loads(json.dumps(expected))
        for data, needle in [([str(files[0])], "not base64"), (["/etc/passwd"], "not base64"),
                             ([str(image_run / "f")], "not base64"),
                             ([base64.b64encode(b"hello").decode()], "image #0: unreadable or corrupt image"),
                             ([""], "image #0: unreadable or corrupt image")]:
            body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": data}]}
            response = client.post("/v2/models/run/infer", json=body)
            assert response.status_code == 400 and needle in response.json()["error"], response.text
            assert "\n" not in response.json()["error"] and "object at 0x" not in response.json()["error"]


@pytest.mark.slow
def test_a_huge_json_body_is_refused_before_it_is_read(runs):
    """60 MB of valid JSON took 1.27 GB and stalled the server for 2.7 s: now its declared size
    is refused (413, connection closed) and not one byte of it is received."""
    reads = []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"0," * 1000, "more_body": True}

    sent = _call(_linear_app(runs), [(b"content-length", str(60 * 2 ** 20).encode())], receive)
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert "binary data" in json.loads(sent[1]["body"])["error"] and not reads
    # Undeclared (chunked): reading stops once the JSON limit is passed.
    sent = _call(_linear_app(runs, max_json=50_000), [], receive)
    assert sent[0]["status"] == 413 and len(reads) == 50_000 // 2000 + 1  # 2000-byte chunks


@pytest.mark.slow
def test_large_tensors_go_as_binary_data_past_the_json_limit(runs):
    from starlette.testclient import TestClient

    x = np.random.default_rng(0).normal(size=(400, 2)).astype(np.float32)
    with TestClient(_linear_app(runs, max_json=2000)) as client:
        as_json = client.post("/v2/models/linear/infer", json=_request(x))
        assert as_json.status_code == 413 and "--max-json-mb" in as_json.json()["error"]
        header = json.dumps({"inputs": [{"name": "x", "shape": [400, 2], "datatype": "FP32",
                                         "parameters": {"binary_data_size": x.nbytes}}]}).encode()
        binary = client.post("/v2/models/linear/infer", content=header + x.tobytes(),
                             headers={"Inference-Header-Content-Length": str(len(header))})
        assert binary.status_code == 200, binary.text
        out = np.array(binary.json()["outputs"][0]["data"]).reshape(-1)
        assert np.allclose(out, x @ np.array([2.0, -3.4]) + 4.2, atol=5e-3)


def test_the_stall_guard_closes_connections_whose_request_does_not_arrive_in_time():
    """The guard's rules on a stand-in for uvicorn's protocol (test_stalled_connections_are_closed
    runs them in a real server): each request, headers and body, within the timeout of the
    connection being ready for it; a 408 for a body that stopped coming; a request being answered
    is left alone; endless headers are cut at once."""
    from zoo.core.serve import MAX_HEAD_BYTES, guarded_protocol

    class Transport:
        closed, written = False, b""

        def is_closing(self):
            return self.closed

        def close(self):
            self.closed = True

        def write(self, data):
            self.written += data

    class Cycle:
        more_body, response_started, response_complete = True, False, False

    class Protocol:  # what the guard uses of uvicorn's HttpToolsProtocol and H11Protocol
        def __init__(self, loop):
            self.loop, self.cycle, self.connections = loop, None, connections

        def connection_made(self, transport):
            self.transport = transport
            self.connections.add(self)

        def on_response_complete(self):
            pass

        def data_received(self, data):
            if b"\r\n\r\n" in data:  # the headers are complete: a request begins
                self.cycle = Cycle()

    class Loop:
        now = 0.0

        def time(self):
            return self.now

        def call_later(self, delay, callback, *args):
            self.sweep = lambda: callback(*args)

    loop, connections = Loop(), set()
    guarded = guarded_protocol(Protocol, 2.0)

    def connect(data=b""):
        protocol = guarded(loop)
        protocol.connection_made(Transport())
        protocol.data_received(data)
        return protocol

    idle, half_line, half_body = connect(), connect(b"GET /v2/health/li"), connect(b"POST /v2 HTTP/1.1\r\n\r\n{")
    running = connect(b"POST /v2 HTTP/1.1\r\n\r\n{}")
    running.cycle.more_body = False  # all arrived: the model is running
    loop.now = 1.9
    loop.sweep()
    assert not any(p.transport.closed for p in connections)
    loop.now = 2.1
    loop.sweep()
    assert idle.transport.closed and half_line.transport.closed and half_body.transport.closed
    assert half_body.transport.written.startswith(b"HTTP/1.1 408") and b"--read-timeout-s" in half_body.transport.written
    assert not running.transport.closed and not idle.transport.written
    running.cycle.response_complete = True
    running.on_response_complete()  # answered: the clock starts again for the next request
    loop.sweep()
    assert not running.transport.closed
    endless = connect(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD_BYTES)
    assert endless.transport.closed


@pytest.mark.slow
def test_non_finite_outputs_are_json_null(client):
    from zoo.core.serve import _std_dumps

    response = client.post("/v2/models/linear/infer",
                           content=b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1e39,1]}]}')
    assert response.status_code == 200 and "NaN" not in response.text and "Infinity" not in response.text
    assert response.json()["outputs"][0]["data"] == [None]
    # Without orjson the standard library writes the same.
    assert json.loads(_std_dumps({"a": [float("nan"), 1.5, float("-inf")]})) == {"a": [None, 1.5, None]}


def test_an_id_beyond_64_bits_is_echoed_not_a_500():
    """orjson refuses integers beyond 64 bits; JSON allows them, and a request's id is echoed:
    the answer falls back to the standard library (found by the fuzzed requests)."""
    import numpy as np

    from zoo.core.serve.protocol import json_codec

    dumps, _ = json_codec()
    big = -(2 ** 63) - 1
    written = json.loads(dumps({"id": big, "outputs": [{"data": np.array([0.5, float("nan")], np.float32)}]}))
    assert written == {"id": big, "outputs": [{"data": [0.5, None]}]}

def test_a_request_the_model_cannot_run_fails_alone_in_its_batch():
    from zoo.core.contract.errors import ZooError
    from zoo.core.serve import Batcher, RequestError

    class Endpoint:  # a model that cannot run on negative values
        batchable = True

        def run(self, feed):
            if (feed["x"] < 0).any():
                raise ZooError("the model could not run on this input: negative")
            return {"y": feed["x"] * 2}

    batcher = Batcher(Endpoint(), max_batch=64, max_delay_ms=50)

    async def go():
        feeds = [{"x": np.full((1, 2), v, np.float32)} for v in (1, -1, 3)]
        return await asyncio.gather(*[batcher.submit(f) for f in feeds], return_exceptions=True)

    first, bad, third = asyncio.run(go())
    assert isinstance(bad, RequestError) and bad.status == 400 and "negative" in str(bad)
    assert first["y"].tolist() == [[2, 2]] and third["y"].tolist() == [[6, 6]]


class _GatedEndpoint:
    """A fake endpoint whose calls block until ``release`` is set; records each call's feed and
    how many calls were running at once, so batching is tested by counts, not by timing."""

    batchable = True

    def __init__(self, gated: bool = True) -> None:
        import threading

        self.release, self.lock = threading.Event(), threading.Lock()
        if not gated:
            self.release.set()
        self.feeds, self.running, self.most_running = [], 0, 0

    def run(self, feed):
        with self.lock:
            self.feeds.append(feed)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.release.wait(30)
        with self.lock:
            self.running -= 1
        return {"y": feed["x"] * 2}


async def _until(condition, limit: float = 10.0) -> None:
    """Yield to the event loop until ``condition()`` holds (a worker thread got there)."""
    for _ in range(int(limit / 0.001)):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def _rows(value: float, columns: int = 2, rows: int = 1) -> dict:
    return {"x": np.full((rows, columns), value, np.float32)}


def test_a_lone_request_runs_at_once_without_waiting_for_company():
    """max_delay 10 s: a request that finds the model idle is answered long before it (not held
    back for requests that never come), as is each of several sent one after the other."""
    from zoo.core.serve import Batcher

    endpoint = _GatedEndpoint(gated=False)
    batcher = Batcher(endpoint, max_batch=32, max_delay_ms=10_000)

    async def go():
        return [await asyncio.wait_for(batcher.submit(_rows(v)), 5) for v in (1, 2, 3)]

    answers = asyncio.run(go())
    assert [a["y"].tolist() for a in answers] == [[[2, 2]], [[4, 4]], [[6, 6]]]
    assert batcher.calls == batcher.requests == 3 and [len(f["x"]) for f in endpoint.feeds] == [1, 1, 1]


@pytest.mark.parametrize("max_batch", [1, 32])
def test_a_fast_lone_call_runs_on_the_event_loop_and_a_slow_one_in_a_thread(max_batch, monkeypatch):
    """A model idle and fast (its calls within INLINE_BELOW_S) runs a lone request on the loop's
    own thread, sparing two thread hand-offs; once a call of that size is slow, or when requests
    come together, calls go back to worker threads."""
    import threading

    from zoo.core.serve import batcher as batching

    class Timed:
        batchable, delay = True, 0.0

        def __init__(self) -> None:
            self.threads = []

        def run(self, feed):
            self.threads.append(threading.get_ident())
            time.sleep(self.delay)
            return {"y": feed["x"] * 2}

    monkeypatch.setattr(batching, "INLINE_BELOW_S", 0.05)  # fast and slow far apart on a busy machine
    endpoint = Timed()
    batcher = batching.Batcher(endpoint, max_batch=max_batch, max_delay_ms=1)

    async def go():
        loop_thread = threading.get_ident()
        for v in range(3):  # the first call is timed in a thread; the next ones run on the loop
            assert (await batcher.submit(_rows(v)))["y"][0, 0] == 2 * v
        on_loop = [t == loop_thread for t in endpoint.threads]
        endpoint.threads.clear()
        together = await asyncio.gather(*[batcher.submit(_rows(v)) for v in range(4)])
        assert [a["y"][0, 0] for a in together] == [0, 2, 4, 6]
        in_threads_together = all(t != loop_thread for t in endpoint.threads)
        endpoint.threads.clear()
        endpoint.delay = 0.1
        for v in range(3):  # slow now: the first slow call on the loop lowers the bound, the next run in threads
            await batcher.submit(_rows(v))
        return on_loop, in_threads_together, [t == loop_thread for t in endpoint.threads]

    on_loop, in_threads_together, slow_on_loop = asyncio.run(go())
    assert on_loop[0] is False and all(on_loop[1:]), on_loop
    assert in_threads_together
    # (with batching, the first of these may still be merged behind the batch just answered)
    assert slow_on_loop.count(True) <= 1 and slow_on_loop[-1] is False, slow_on_loop
    assert batcher.inline_bytes < _rows(0)["x"].nbytes


def test_requests_arriving_during_a_call_go_together_in_the_next():
    """The first request runs alone; the five sent while it is in flight form one call when it
    returns, each answered with its own rows."""
    from zoo.core.serve import Batcher

    endpoint = _GatedEndpoint()
    batcher = Batcher(endpoint, max_batch=32, max_delay_ms=100, max_in_flight=1)

    async def go():
        first = asyncio.ensure_future(batcher.submit(_rows(0)))
        await _until(lambda: endpoint.running == 1)
        rest = [asyncio.ensure_future(batcher.submit(_rows(v, rows=v))) for v in range(1, 6)]
        await asyncio.sleep(0.05)  # they queue: the only slot is busy
        assert len(endpoint.feeds) == 1 and len(batcher.queue) == 5
        endpoint.release.set()
        return await asyncio.wait_for(asyncio.gather(first, *rest), 5)

    answers = asyncio.run(go())
    assert [len(f["x"]) for f in endpoint.feeds] == [1, 1 + 2 + 3 + 4 + 5]
    assert batcher.calls == 2 < batcher.requests == 6
    for v, answer in enumerate(answers):
        assert answer["y"].shape == (max(v, 1), 2) and (answer["y"] == 2 * v).all()


def test_max_batch_bounds_the_merged_call():
    from zoo.core.serve import Batcher

    endpoint = _GatedEndpoint()
    batcher = Batcher(endpoint, max_batch=4, max_delay_ms=100, max_in_flight=1)

    async def go():
        first = asyncio.ensure_future(batcher.submit(_rows(0)))
        await _until(lambda: endpoint.running == 1)
        rest = [asyncio.ensure_future(batcher.submit(_rows(v))) for v in range(1, 11)]
        endpoint.release.set()
        return await asyncio.wait_for(asyncio.gather(first, *rest), 5)

    answers = asyncio.run(go())
    assert [len(f["x"]) for f in endpoint.feeds] == [1, 4, 4, 2]
    assert [a["y"][0, 0] for a in answers] == [2 * v for v in range(11)]


def test_differing_shapes_are_never_merged():
    """Queued requests of two widths: each call holds one width only; a width's requests merge
    even when the other's arrived between them."""
    from zoo.core.serve import Batcher

    endpoint = _GatedEndpoint()
    batcher = Batcher(endpoint, max_batch=32, max_delay_ms=100, max_in_flight=1)

    async def go():
        first = asyncio.ensure_future(batcher.submit(_rows(0)))
        await _until(lambda: endpoint.running == 1)
        widths = [2, 3, 2, 3, 2]
        rest = [asyncio.ensure_future(batcher.submit(_rows(i, columns=w))) for i, w in enumerate(widths, 1)]
        endpoint.release.set()
        return widths, await asyncio.wait_for(asyncio.gather(first, *rest), 5)

    widths, answers = asyncio.run(go())
    assert [f["x"].shape for f in endpoint.feeds] == [(1, 2), (3, 2), (2, 3)]
    for i, (w, answer) in enumerate(zip(widths, answers[1:]), 1):
        assert answer["y"].shape == (1, w) and (answer["y"] == 2 * i).all()


def test_max_delay_bounds_the_wait_for_the_call_in_flight():
    """Pipelining: with max_delay 0 a request that finds a call in flight starts a second call
    at once (never a third); with max_in_flight 1 it waits for the first to return."""
    from zoo.core.serve import Batcher

    async def go(batcher, endpoint):
        first = asyncio.ensure_future(batcher.submit(_rows(0)))
        await _until(lambda: endpoint.running == 1)
        second = asyncio.ensure_future(batcher.submit(_rows(1)))
        if batcher.max_in_flight > 1:
            await _until(lambda: endpoint.running == 2)
        third = asyncio.ensure_future(batcher.submit(_rows(2)))
        await asyncio.sleep(0.05)
        started = len(endpoint.feeds)
        endpoint.release.set()
        await asyncio.wait_for(asyncio.gather(first, second, third), 5)
        return started

    pipelined = _GatedEndpoint()
    assert asyncio.run(go(Batcher(pipelined, max_batch=32, max_delay_ms=0), pipelined)) == 2
    assert pipelined.most_running == 2 and len(pipelined.feeds) == 3
    serial = _GatedEndpoint()
    assert asyncio.run(go(Batcher(serial, max_batch=32, max_delay_ms=0, max_in_flight=1), serial)) == 1
    assert serial.most_running == 1 and [len(f["x"]) for f in serial.feeds] == [1, 2]


def test_the_batch_follows_the_number_of_busy_clients():
    """Four clients, each sending its next request once answered: after the first call the
    batcher waits for the clients it just answered (not the full max_delay), so the calls
    settle at four rows, far fewer calls than requests."""
    from zoo.core.serve import Batcher

    endpoint = _GatedEndpoint(gated=False)
    batcher = Batcher(endpoint, max_batch=32, max_delay_ms=1_000)

    async def client(c: int, n: int) -> None:
        for i in range(n):
            answer = await batcher.submit(_rows(10 * c + i))
            assert answer["y"][0, 0] == 2 * (10 * c + i)

    async def go():
        await asyncio.wait_for(asyncio.gather(*[client(c, 8) for c in range(4)]), 5)

    asyncio.run(go())
    sizes = [len(f["x"]) for f in endpoint.feeds]
    assert sum(sizes) == 32 and sizes.count(4) >= 6 and len(sizes) <= 10, sizes

def test_a_merged_call_that_fails_is_retried_per_request():
    """The bad request is merged with two good ones while a call is in flight: the merged call
    fails, each of the three runs alone, only the bad one gets a 400; every call is counted."""
    from zoo.core.contract.errors import ZooError
    from zoo.core.serve import Batcher, RequestError

    class Picky(_GatedEndpoint):
        def run(self, feed):
            out = super().run(feed)
            if (feed["x"] < 0).any():
                raise ZooError("the model could not run on this input: negative")
            return out

    endpoint = Picky()
    batcher = Batcher(endpoint, max_batch=32, max_delay_ms=100, max_in_flight=1)

    async def go():
        first = asyncio.ensure_future(batcher.submit(_rows(5)))
        await _until(lambda: endpoint.running == 1)
        rest = [asyncio.ensure_future(batcher.submit(_rows(v))) for v in (1, -1, 3)]
        endpoint.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    first, good, bad, third = asyncio.run(go())
    assert isinstance(bad, RequestError) and bad.status == 400 and "negative" in str(bad)
    assert first["y"][0, 0] == 10 and good["y"][0, 0] == 2 and third["y"][0, 0] == 6
    assert [len(f["x"]) for f in endpoint.feeds] == [1, 3, 1, 1, 1] and batcher.calls == 5


@pytest.mark.slow
def test_an_api_key_guards_every_route_but_health(runs):
    from starlette.testclient import TestClient

    from zoo.core.contract.errors import ZooError

    with TestClient(_linear_app(runs, api_key="s3cret")) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        for method, path in [("GET", "/v2"), ("GET", "/v2/models/linear"), ("GET", "/v2/models/stats"),
                             ("POST", "/v2/models/linear/infer")]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                denied = client.request(method, path, json={"inputs": [OK]}, headers=headers)
                assert denied.status_code == 401 and "API key" in denied.json()["error"]
                assert denied.headers["www-authenticate"].startswith("Bearer")
            allowed = client.request(method, path, json={"inputs": [OK]}, headers={"Authorization": "Bearer s3cret"})
            assert allowed.status_code == 200, (path, allowed.text)
    with pytest.raises(ZooError, match="API key is empty"):
        _linear_app(runs, api_key=" ")


def test_a_busy_port_and_unusable_tls_files_are_user_errors(tmp_path):
    from zoo.core.contract.errors import ZooError
    from zoo.core.serve import serve

    missing = [str(tmp_path / "missing")]  # never loaded: the port and the files are checked first
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ZooError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            serve(missing, port=port, log=lambda line: None)
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ZooError, match="expected a PEM certificate"):
        serve(missing, port=0, ssl_certfile=str(tmp_path / "junk.pem"), log=lambda line: None)
    with pytest.raises(ZooError, match="--ssl-keyfile needs --ssl-certfile"):
        serve(missing, port=0, ssl_keyfile=str(tmp_path / "junk.pem"), log=lambda line: None)


def _self_signed(folder) -> tuple[str, str]:
    """A self-signed certificate for localhost and its key (PEM files), by the cryptography
    package or the openssl command; the test is skipped when neither is there."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        import shutil

        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is available")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True)
        return str(cert), str(key)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(cert), str(key)


@contextlib.contextmanager
def _server(*args, env: dict | None = None, scheme: str = "http", verify=True):
    """``zoo serve ARGS`` on a free loopback port; yields its base URL once /v2/health/live answers."""
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", *map(str, args), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    base = f"{scheme}://localhost:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{base}/v2/health/live", verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "slow"
                time.sleep(0.2)
        yield base, port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.slow
def test_answers_do_not_name_the_server_software(runs):
    import httpx

    with _server(runs / "linear") as (base, _):
        answer = httpx.post(f"{base}/v2/models/linear/infer", json={"inputs": [OK]})
        assert answer.status_code == 200 and "date" in answer.headers
        assert "server" not in answer.headers, answer.headers


@pytest.mark.slow
def test_https_with_an_api_key_and_the_connection_kept_after_a_bad_request(runs, tmp_path):
    import http.client
    import ssl

    cert, key = _self_signed(tmp_path)
    with _server(runs / "linear", "--ssl-certfile", cert, "--ssl-keyfile", key, env={"ZOO_API_KEY": "s3cret"},
                 scheme="https", verify=ssl.create_default_context(cafile=cert)) as (base, port):
        connection = http.client.HTTPSConnection("localhost", port, context=ssl.create_default_context(cafile=cert))
        auth = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}

        def post(body, headers=auth):
            connection.request("POST", "/v2/models/linear/infer", json.dumps(body), headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())

        assert post({"inputs": [OK]}, headers={})[0] == 401
        status, answer = post({"inputs": [{**OK, "shape": [True, 2]}]})
        assert status == 400 and "shape" in answer["error"]
        status, answer = post({"inputs": [OK]})  # same connection: http.client does not reconnect
        assert status == 200 and np.allclose(answer["outputs"][0]["data"], [4.2 + 2.0 - 6.8], atol=5e-3)
        connection.close()


@pytest.mark.slow
def test_stalled_connections_are_closed(runs):
    """200 connections that send half a request line, half a body to infer, or a body a handler
    does not read: all closed by the server within the read timeout (uvicorn alone kept them)."""
    with _server(runs / "linear", "--read-timeout-s", "1", "--idle-timeout-s", "1") as (_, port):
        partial = [b"GET /v2/health/li",
                   b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"inputs\"",
                   b"POST /v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"]
        sockets = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(partial[i % 3])
            sockets.append(s)
        time.sleep(2.5)
        statuses = []
        for s in sockets:
            s.settimeout(5)
            data = b""
            while chunk := s.recv(65536):  # b"" once the server has closed the connection
                data += chunk
            statuses.append(data.split(b" ", 2)[1] if data else b"closed")
            s.close()
        assert statuses.count(b"408") == 67 and statuses.count(b"closed") == 67, statuses
        # Endless headers: closed after 64 KiB, not joined in memory until the read timeout.
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
            with pytest.raises(OSError):  # reset or broken pipe, long before 100 MB
                for _ in range(10_000):
                    s.sendall(b"a" * 10_000)


@pytest.mark.slow
def test_zoo_serve_on_a_busy_port_exits_2_with_one_line(runs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "zoo", "serve", str(runs / "linear"), "--port",
                                 str(taken.getsockname()[1])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot listen on") and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_connections_beyond_the_cap_get_503_and_the_server_keeps_serving(runs):
    """--max-connections 4: with 4 idle connections open, a new request is answered 503 at once;
    once they close, requests are served again."""
    import httpx

    with _server(runs / "linear", "--max-connections", "4") as (base, port):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        time.sleep(0.5)
        refused = httpx.post(f"{base}/v2/models/linear/infer", json={"inputs": [OK]}, timeout=10)
        assert refused.status_code == 503
        for s in idle:
            s.close()
        time.sleep(0.5)
        served = httpx.post(f"{base}/v2/models/linear/infer", json={"inputs": [OK]}, timeout=10)
        assert served.status_code == 200


def _read_answer(s: socket.socket, buffer: bytes = b"") -> tuple[bytes, dict[bytes, bytes], bytes, bytes]:
    """One HTTP response off a socket → (status line, headers, body, what was read beyond it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = s.recv(65536)
        assert chunk, f"closed after {buffer!r}"
        buffer += chunk
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    length = int(headers.get(b"content-length", b"0"))
    while len(buffer) < length:
        buffer += s.recv(65536)
    return status, headers, buffer[:length], buffer[length:]


def test_the_fast_path_is_off_on_an_untested_uvicorn(monkeypatch):
    """Its private protocol fields may differ in another uvicorn release: ASGI only there."""
    uvicorn = pytest.importorskip("uvicorn")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from zoo.core.serve.fast import fast_protocol

    monkeypatch.setattr(uvicorn, "__version__", "0.99.1")
    assert fast_protocol(HttpToolsProtocol, None) is HttpToolsProtocol


@pytest.mark.slow
def test_the_infer_fast_path_answers_as_the_asgi_route(runs):
    """zoo serve answers infer at the HTTP protocol (core/serve/fast.py): the same answers as the
    ASGI route, over keep-alive, pipelined, chunked, Expect: 100-continue and HTTP/1.0 requests;
    a 404 keeps the connection, a 413 closes it."""
    from starlette.testclient import TestClient
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from zoo.core.serve.fast import _FastInfer, fast_protocol

    import uvicorn

    from zoo.core.serve import fast

    if not fast.TESTED_UVICORN[0] <= tuple(map(int, uvicorn.__version__.split(".")[:2])) <= fast.TESTED_UVICORN[1]:
        pytest.skip(f"uvicorn {uvicorn.__version__}: the fast path is off outside {fast.TESTED_UVICORN}")
    assert issubclass(fast_protocol(HttpToolsProtocol, None), _FastInfer)
    assert fast_protocol(H11Protocol, None) is H11Protocol  # h11: the ASGI route only
    body = json.dumps({"inputs": [OK], "id": "r1"}).encode()
    with TestClient(_linear_app(runs)) as client:
        reference = client.post("/v2/models/linear/infer", content=body)
    post = b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with _server(runs / "linear") as (_, port), socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        s.sendall(post)
        status, headers, answer, rest = _read_answer(s)
        assert status == b"HTTP/1.1 200 OK" and json.loads(answer) == reference.json() and not rest
        assert set(headers) == {k.encode() for k in reference.headers} | {b"date"}
        assert headers[b"content-type"] == b"application/json" and float(headers[b"x-zoo-latency-ms"]) > 0
        s.sendall(post + post.replace(b"/linear/", b"/linear/versions/1/"))  # pipelined: both, in order
        for _ in range(2):
            status, _, answer, rest = _read_answer(s, rest)
            assert status.endswith(b"200 OK") and json.loads(answer) == reference.json()
        s.sendall(post.replace(b"/linear/", b"/nobody/") + post)  # a 404 keeps the connection
        status, _, answer, rest = _read_answer(s, rest)
        assert status.endswith(b"404 Not Found") and "unknown model 'nobody'" in json.loads(answer)["error"]
        assert _read_answer(s, rest)[0].endswith(b"200 OK")
        chunked = (b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:]))
        s.sendall(chunked)
        assert json.loads(_read_answer(s)[2]) == reference.json()
        expecting = post.replace(b"Host: x\r\n", b"Host: x\r\nExpect: 100-continue\r\n")
        s.sendall(expecting[:-len(body)])  # the head only: the body follows the server's go-ahead
        assert s.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        status, _, answer, rest = _read_answer(s)
        assert status.endswith(b"200 OK") and json.loads(answer) == reference.json()
        s.sendall(post.replace(b"Content-Length: %d" % len(body), b"Content-Length: %d" % (2 ** 30)))
        status, headers, answer, _ = _read_answer(s, rest)
        assert status.endswith(b"413 Request Entity Too Large") and headers[b"connection"] == b"close"
        assert s.recv(1) == b""  # closed
    with _server(runs / "linear") as (_, port), socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        s.sendall(post.replace(b"HTTP/1.1", b"HTTP/1.0"))
        status, headers, answer, rest = _read_answer(s)
        assert json.loads(answer) == reference.json() and headers[b"connection"] == b"close"
        assert rest + s.recv(1) == b""


def test_a_reply_that_fails_leaves_the_rest_of_its_batch_answered():
    """Batcher.start's callbacks: a merged call answers each request through its own reply; one
    that raises (a bug) reaches the loop's exception handler, the others are still answered."""
    from zoo.core.serve import Batcher

    endpoint = _GatedEndpoint()
    batcher = Batcher(endpoint, max_batch=32, max_delay_ms=100, max_in_flight=1)
    answered, raised = [], []

    def broken(outputs):
        raise RuntimeError("a broken reply")

    async def go():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: raised.append(context["exception"]))
        batcher.start(_rows(0), answered.append)
        await _until(lambda: endpoint.running == 1)
        for v, reply in ((1, answered.append), (2, broken), (3, answered.append)):
            batcher.start(_rows(v), reply)
        endpoint.release.set()
        await _until(lambda: len(answered) == 3)

    asyncio.run(go())
    assert [a["y"][0, 0] for a in answered] == [0, 2, 6] and [len(f["x"]) for f in endpoint.feeds] == [1, 3]
    assert [str(e) for e in raised] == ["a broken reply"]


def test_serve_freezes_what_it_loaded_before_serving(runs, monkeypatch):
    """The models, routes and imports are moved out of the collector's reach before the first
    request: a full collection under load then scans only what requests leave behind."""
    import gc

    uvicorn = pytest.importorskip("uvicorn")
    from zoo.core.serve.app import serve

    frozen = []

    def run(self, sockets=None):  # instead of serving: what the collector tracks at that moment
        frozen.append(gc.get_freeze_count())
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    from zoo.core.deploy import runtime

    monkeypatch.setitem(runtime._PROCESS, "serving", False)  # serve() declares the process its own
    gc.unfreeze()
    try:
        serve([str(runs / "linear")], port=0, log=lambda *_: None)
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 1000
