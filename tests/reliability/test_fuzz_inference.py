"""Property-based fuzzing (hypothesis) of what `zoo predict` and `zoo serve` receive (issue 18).

`zoo predict` inputs (JSON documents, .npy arrays of any dtype and shape, damaged .npy files) go
through :func:`zoo.core.api.predict` in-process; KServe v2 request bodies (shaped like requests,
with wrong types anywhere, plus bytes that are not JSON at all) go to the ASGI app of `zoo serve`.
Models: a regression (float inputs), a GCN (``x`` and int64 ``edge_index``) and an LSTM text
classifier (token ids, lengths and raw text). The properties: `zoo predict` returns predictions
that encode as strict JSON or raises a one-line :class:`ZooError` (exit 2), never another
exception; the server never answers 5xx, every error is a one-line JSON message, and it keeps
serving correct answers, also to valid requests merged in a batch with malformed ones.
"""

from __future__ import annotations

import asyncio
import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from zoo.core import api
from zoo.core.contract.errors import ZooError
from zoo.core.deploy.runtime import json_safe

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow

pytest.importorskip("starlette")

# database=None: no .hypothesis folder in the working tree; a failure prints its reproduction.
# ZOO_FUZZ_SCALE=20: twenty times the examples (the measured runs of docs/results.md).
SCALE = float(os.environ.get("ZOO_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(120 * SCALE), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MODELS = ("linear", "gcn", "lstm")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from helpers import quick_options

    from zoo.core.contract.catalogue import load_catalogue

    root = tmp_path_factory.mktemp("fuzz")
    api.train("linear", options={"train": {"progress": False, "epochs": 2}}, out=str(root / "linear"), log=None)
    api.train("gcn", options={"data": {"name": "karate"}, "train": {"epochs": 2, "progress": False,
                                                                     "device": "cpu"}}, out=str(root / "gcn"), log=None)
    # sst2: the tiny stand-in in tests/fixtures/data ($ZOO_DATA_DIR in the tests)
    api.train("lstm", options=quick_options(load_catalogue().models["lstm"]), out=str(root / "lstm"), log=None)
    return root


def _run(runs, model: str):
    assert (runs / model / "model.onnx").is_file(), f"the {model} run has no model.onnx"
    return runs / model


# -- strategies ------------------------------------------------------------------------------------

NAMES = ["x", "edge_index", "batch", "tokens", "lengths", "text", "prediction", "logits"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.integers(-2 ** 70, 2 ** 70),
                    st.floats(), st.text(max_size=6), st.sampled_from(NAMES))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
    st.sampled_from(NAMES) | st.text(max_size=4), inner, max_size=4), max_leaves=24)
numbers = st.one_of(st.integers(-3, 40), st.floats(width=32), st.floats(), st.booleans())


@st.composite
def graphs(draw):
    """A graph as `zoo predict` and the GCN take it: x [N, 34], edge_index [2, E] (ids mostly
    valid, now and then one past either end)."""
    n, e = draw(st.integers(0, 5)), draw(st.integers(0, 6))
    x = draw(st.lists(st.lists(numbers, min_size=34, max_size=34), min_size=n, max_size=n))
    ids = st.integers(0, max(n - 1, 0)) | st.sampled_from([-1, n])
    edges = draw(st.lists(st.lists(ids, min_size=e, max_size=e), min_size=2, max_size=2))
    return {"x": x, "edge_index": draw(st.sampled_from([edges, edges[:1], [edges[0] + [1]] + edges[1:]]))}


@st.composite
def token_batches(draw):
    """Token ids and lengths for the LSTM, in and out of the vocabulary and the widths."""
    b, t = draw(st.integers(0, 3)), draw(st.integers(0, 6))
    tokens = draw(st.lists(st.lists(st.integers(-2, 30_000), min_size=t, max_size=t), min_size=b, max_size=b))
    return {"tokens": tokens, "lengths": draw(st.lists(st.integers(-1, 8), min_size=b, max_size=b))}


texts = st.lists(st.text(max_size=30) | st.sampled_from(["a moving film", "dull", "   ", "zzqx"]), max_size=3)
predict_documents = st.one_of(json_values, st.lists(st.lists(numbers, max_size=3), max_size=3), graphs(),
                              token_batches(), texts, st.fixed_dictionaries({"text": texts | json_values}))
npy_dtypes = st.sampled_from(["f2", "f4", "f8", "i1", "i4", "i8", "u8", "b1", "c8", "U3", "S2", "M8[D]"])
npy_arrays = hnp.arrays(npy_dtypes, hnp.array_shapes(min_dims=0, max_dims=4, max_side=4) |
                        st.tuples(st.integers(0, 4), st.just(2)))  # the regression's [N, 2]


def _check_predict(run, name: str, content: bytes) -> None:
    """The property of `zoo predict`: strict-JSON predictions or a one-line ZooError."""
    path = run.parent / f"input-{run.name}{name[name.rindex('.'):]}"
    path.write_bytes(content)
    try:
        predictions, _ = api.predict(str(run), str(path))
    except ZooError as err:
        assert "\n" not in str(err) and str(err), repr(err)
        return
    json.dumps(json_safe(predictions)[0], allow_nan=False)  # what `zoo predict --json` prints


# -- zoo predict -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@FUZZ
@given(document=predict_documents)
def test_predict_json_documents(runs, model, document):
    _check_predict(_run(runs, model), "in.json", json.dumps(document).encode())


@pytest.mark.parametrize("model", ["linear", "gcn"])
@FUZZ
@given(array=npy_arrays, cut=st.none() | st.integers(0, 200), flips=st.lists(st.tuples(st.integers(0, 127),
                                                                                    st.integers(0, 255)), max_size=3))
def test_predict_npy_files_whole_cut_or_damaged(runs, model, array, cut, flips):
    buffer = io.BytesIO()
    np.save(buffer, array)
    content = bytearray(buffer.getvalue()[:cut])
    for at, value in flips:  # damage in the magic string and the header
        if at < len(content):
            content[at] = value
    _check_predict(runs / model, "in.npy", bytes(content))


@FUZZ
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".json", ".npy", ".txt"]))
def test_predict_arbitrary_bytes(runs, content, suffix):
    text = suffix == ".txt" and (runs / "lstm" / "model.onnx").is_file()  # raw text for the text model
    _check_predict(runs / ("lstm" if text else "linear"), f"in{suffix}", content)


# -- zoo serve: v2 request bodies --------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(runs):
    from starlette.testclient import TestClient

    from zoo.core.serve import build_app

    app = build_app(_served(runs), max_batch=8, max_delay_ms=1, max_body=256 * 1024, max_json=64 * 1024,
                    log=lambda line: None)
    with TestClient(app) as c:
        yield c


def _served(runs) -> list[str]:
    return [str(runs / m) for m in MODELS if (runs / m / "model.onnx").is_file()]


def _v2(name, datatype, shape, data) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


@st.composite
def consistent_bodies(draw):
    """Requests that pass the shape checks, so the model runs on fuzzed values."""
    model = draw(st.sampled_from(MODELS))
    if model == "linear":
        rows = draw(st.integers(0, 4))
        values = draw(st.lists(numbers, min_size=2 * rows, max_size=2 * rows))
        return model, {"inputs": [_v2("x", "FP32", [rows, 2], values)]}
    if model == "gcn":
        graph = draw(graphs())
        n, edges = len(graph["x"]), graph["edge_index"]
        return model, {"inputs": [_v2("x", "FP32", [n, 34], [v for row in graph["x"] for v in row]),
                                  _v2("edge_index", "INT64", [2, len(edges[0])], edges[0] + edges[-1])]}
    if draw(st.booleans()):
        given_texts = draw(texts)
        return model, {"inputs": [_v2("text", "BYTES", [len(given_texts)], given_texts)]}
    batch = draw(token_batches())
    width = len(batch["tokens"][0]) if batch["tokens"] else 0
    return model, {"inputs": [_v2("tokens", "INT64", [len(batch["tokens"]), width],
                                  [t for row in batch["tokens"] for t in row]),
                              _v2("lengths", "INT64", [len(batch["lengths"])], batch["lengths"])]}


def _mutated(body: dict, draw) -> dict:
    """``body`` with one field of one input, or of the request, replaced by anything."""
    body = json.loads(json.dumps(body))
    where = draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters", "outputs", "inputs", "id"]))
    value = draw(json_values | st.lists(st.integers(-2, 2 ** 62) | st.booleans(), max_size=3))
    if where in ("outputs", "inputs", "id"):
        body[where] = value
    elif body["inputs"]:
        body["inputs"][draw(st.integers(0, len(body["inputs"]) - 1))][where] = value
    return body


@st.composite
def requests(draw):
    """(model, body bytes, headers): consistent, mutated, free-form or not JSON at all."""
    model, body = draw(consistent_bodies())
    kind = draw(st.sampled_from(["consistent", "mutated", "mutated", "free", "bytes"]))
    headers = {}
    if kind == "bytes":
        content = draw(st.binary(max_size=200))
    else:
        if kind == "mutated":
            body = _mutated(body, draw)
        elif kind == "free":
            body = draw(json_values)
        content = json.dumps(body).encode()
    if draw(st.integers(0, 9)) == 0:  # the binary extension's header, true or not
        headers["Inference-Header-Content-Length"] = str(draw(st.integers(0, len(content) + 5)))
    return model, content, headers


def _check_answer(response) -> None:
    assert response.status_code < 500, response.text
    answer = json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{c} in a response"))
    if response.status_code >= 400:
        assert set(answer) == {"error"} and "\n" not in answer["error"], answer


@FUZZ
@given(request=requests())
def test_v2_bodies_never_get_a_5xx(client, request):
    model, content, headers = request
    _check_answer(client.post(f"/v2/models/{model}/infer", content=content, headers=headers))


@settings(FUZZ, max_examples=int(40 * SCALE))
@given(bad=st.lists(requests(), min_size=1, max_size=4), rows=st.lists(st.integers(1, 3), min_size=2, max_size=4))
def test_valid_requests_batched_with_malformed_ones_get_their_own_answers(runs, bad, rows):
    """Mixed load on the dynamic batcher: every valid request gets exactly its rows' answers."""
    import httpx

    from zoo.core.serve import build_app

    app = build_app(_served(runs), max_batch=64, max_delay_ms=20, log=lambda line: None)
    weights = _linear_weights(runs / "linear")
    xs = [np.random.default_rng(n).normal(size=(n, 2)).astype(np.float32) for n in rows]

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zoo") as c:
            valid = [c.post("/v2/models/linear/infer", json={"inputs": [_v2("x", "FP32", [len(x), 2],
                                                                            x.ravel().tolist())]}) for x in xs]
            malformed = [c.post(f"/v2/models/{m}/infer", content=body, headers=h) for m, body, h in bad]
            return await asyncio.gather(*valid, *malformed)

    responses = asyncio.run(go())
    for x, response in zip(xs, responses):
        assert response.status_code == 200, response.text
        out = np.array(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(-1)
        assert np.allclose(out, x @ weights[0] + weights[1], atol=1e-4)
    for response in responses[len(xs):]:
        _check_answer(response)


def _linear_weights(run) -> tuple[np.ndarray, float]:
    """The regression's weights and bias, read back from its ONNX model by running it."""
    from zoo.core.deploy.runtime import make_session

    session = make_session(run / "model.onnx")
    bias = float(session.run(None, {"x": np.zeros((1, 2), np.float32)})[0].reshape(-1)[0])
    eye = session.run(None, {"x": np.eye(2, dtype=np.float32)})[0].reshape(-1) - bias
    return eye, bias
