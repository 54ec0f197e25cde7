"""`zoo predict` on bad input (issue 18): every case one line `error: ...`, exit 2, no traceback;
`--json` output always valid JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.cli import main
from zoo.core import api
from zoo.core.contract.errors import ZooError


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "linear"
    api.train("linear", options={"train": {"progress": False}}, out=str(out), log=None)
    return out


def _npy_claiming(path, shape) -> None:
    """An .npy file whose header claims ``shape`` of float32 but that holds 64 bytes of data."""
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": shape})
        fh.write(b"\0" * 64)


def _write(path, content) -> None:
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, tuple):
        _npy_claiming(path, content)
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)


@pytest.mark.slow
@pytest.mark.parametrize("name, content, needle", [
    ("huge.npy", (1 << 20, 1 << 20), "the header claims shape [1048576, 1048576] of float32"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    ("empty.npy", b"", "not a valid .npy file"),
    ("empty.json", b"", "not valid JSON"),
    ("complex.npy", np.array([[1 + 2j, 3]], dtype=np.complex64), "holds complex numbers"),
    ("pickled.npy", np.array([{"a": 1}], dtype=object), "not a valid .npy file"),
    ("text.npy", np.array([["a", "b"]]), "must be numeric"),
    ("latin1.json", b'{"x": "\xe9"}', "not valid JSON/UTF-8"),
    ("wide.json", json.dumps({"x": [[2 ** 70, 1]]}), "must be numeric"),
    ("empty-row.json", "[[]]", "has shape [1, 0]"),
    ("long-int.json", "[[1" + "0" * 5000 + ", 1]]", "not valid JSON"),  # beyond Python's 4300 digits: a ValueError
])
def test_bad_input_is_one_line_and_exit_2(linear_run, tmp_path, name, content, needle):
    path = tmp_path / name
    _write(path, content)
    with pytest.raises(ZooError) as caught:
        api.predict(str(linear_run), str(path))
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    result = CliRunner().invoke(main, ["predict", str(linear_run), "--input", str(path)])
    assert result.exit_code == 2 and result.stderr == f"error: {caught.value}\n", result.output
    assert "Aborted" not in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_json_output_is_valid_json_with_null_for_nan_and_inf(linear_run, tmp_path):
    (tmp_path / "x.json").write_text("[[1e39, 1.0], [1.0, 1.0]]")  # 1e39 overflows float32: inf
    result = CliRunner().invoke(main, ["predict", str(linear_run), "--input", str(tmp_path / "x.json"), "--json"])
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    predictions = json.loads(result.stdout, parse_constant=refuse)
    assert predictions[0] == [None] and np.allclose(predictions[1], [2.8], atol=5e-3)
    assert "1 NaN or infinite value(s) printed as null" in result.stderr


@pytest.mark.slow
def test_an_input_the_model_cannot_run_on_is_a_zoo_error(linear_run, monkeypatch, tmp_path):
    """onnxruntime's own failures (whatever the signature checks let through) become one line."""
    from zoo.core.deploy import runtime

    (tmp_path / "x.json").write_text("[[1.0, 2.0]]")

    class Failing:
        def __init__(self, session):
            self.session = session

        def __getattr__(self, name):
            return getattr(self.session, name)

        def run(self, names, feed):
            from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

            raise InvalidArgument("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad\nindex")

    real = runtime.make_session
    monkeypatch.setattr(runtime, "make_session", lambda *a, **k: Failing(real(*a, **k)))
    with pytest.raises(ZooError, match="^the model could not run on this input: 2 : INVALID_ARGUMENT : bad index$"):
        api.predict(str(linear_run), str(tmp_path / "x.json"))


def test_bugs_outside_onnxruntime_keep_their_traceback():
    from zoo.core.deploy.runtime import run_model

    class Broken:
        def run(self, names, feed):
            raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_model(Broken(), {})


def test_json_safe_counts_what_it_replaces():
    from zoo.core.deploy.runtime import json_safe

    value = {"a": [1.0, float("nan"), {"b": (float("inf"), np.float32("-inf"))}], "c": "nan", "d": 2}
    assert json_safe(value) == ({"a": [1.0, None, {"b": [None, None]}], "c": "nan", "d": 2}, 3)


def test_a_folder_for_a_model_without_an_image_decoder_is_one_line(linear_run, tmp_path):
    """Only runs that read image folders take a folder as --input; others say what they take."""
    result = CliRunner().invoke(main, ["predict", str(linear_run), "--input", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "is a folder" in result.stderr and ".npy" in result.stderr
