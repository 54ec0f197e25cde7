"""onnxruntime sessions of core/deploy/runtime.py: denormals flushed to zero."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _square_model(path) -> None:
    """``y = x · x``: squares of ``x ≈ 1e-20`` are denormal floats (``1e-40 < 2^-126``)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["y"])], "square",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))


def test_sessions_ask_for_denormals_as_zero(tmp_path):
    from zoo.core.deploy.runtime import make_session

    _square_model(tmp_path / "m.onnx")
    options = make_session(tmp_path / "m.onnx").get_session_options()
    assert options.get_session_config_entry("session.set_denormal_as_zero") == "1"
    exact = make_session(tmp_path / "m.onnx", exact=True).get_session_options()  # the export's parity check
    with pytest.raises(RuntimeError, match="does not have configuration"):
        exact.get_session_config_entry("session.set_denormal_as_zero")


_SQUARE = """
import sys, numpy as np
x = np.full(8, 1e-20, np.float32)
if sys.argv[2] in ("zoo", "serving", "exact"):
    from zoo.core.deploy.runtime import make_session, serving_process
    if sys.argv[2] == "serving":
        serving_process()
    session = make_session(sys.argv[1], providers=["CPUExecutionProvider"], threads=1, exact=sys.argv[2] == "exact")
else:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
print(float(session.run(None, {"x": x})[0].max()), float((x * x).max()))  # then this thread's own product
"""


@pytest.mark.slow
def test_denormal_results_are_flushed_to_zero(tmp_path):
    """Each in a fresh process (onnxruntime sets the calling thread's flags once per process, from
    its first session): a plain session keeps the denormal ``1e-40``; in zoo's own serving
    process make_session's gives 0 and the thread flushes; in any other process (a library
    user's) the calling thread, which does this one-thread run, keeps IEEE denormals."""
    _square_model(tmp_path / "m.onnx")
    script = tmp_path / "square.py"
    script.write_text(textwrap.dedent(_SQUARE))

    def largest(kind: str) -> float:
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "m.onnx"), kind],
                              capture_output=True, text=True, timeout=120, check=True)
        return tuple(float(v) for v in done.stdout.split()[-2:])

    assert 0 < largest("plain")[0] < 1.2e-38
    assert largest("serving") == (0.0, 0.0)
    session, own = largest("zoo")  # zoo.pull or the API in someone else's process: their thread untouched
    assert 0 < session < 1.2e-38 and 0 < own < 1.2e-38
    session, own = largest("exact")  # a parity check inside zoo train: nothing flushed, this thread neither
    assert 0 < session < 1.2e-38 and 0 < own < 1.2e-38
