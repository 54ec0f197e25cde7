"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "linear"
    result = run_cli("train", "linear", "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr
    return out


def _user_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") or "Error:" in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize("args, needles", [
    (["train", "mpl"], ["unknown model or plugin 'mpl'", "did you mean: mlp"]),
    (["train", "linear", "--set", "train.epoch=3"], ["train.epoch: unknown key", "epochs"]),
    (["train", "linear", "--set", "train.epochs=\"x\""], ["train.epochs: Input should be a valid integer"]),
    (["train", "linear", "--lr", "-1"], ["optim.lr: Input should be greater than 0"]),
    (["train", "linear", "--dataset", "cifar"], ["unknown dataset 'cifar'"]),
    # An empty --data-dir is passed over (the next root has the files); a missing one is an error.
    (["train", "softmax", "--data-dir", "MISSING", "--epochs", "1"], ["data directory", "does not exist"]),
    (["train", "linear", "--set", "optim.lr"], ["malformed --set 'optim.lr'"]),
    (["train", "linear", "--config", "BAD_TOML"], ["is not valid TOML"]),
    (["train", "linear", "--dataset", "digits"], ["model 'linear' is for task(s) regression",
                                                  "classification dataset"]),
    (["train", "logistic", "--dataset", "digits"], ["logistic is binary"]),
    (["info", "nope"], ["unknown model or plugin 'nope'"]),
    (["config", "linear", "--set", "data.options.n=0"], ["invalid data.options for 'synthetic-linear'",
                                                         "n: Input should be greater than or equal to 2"]),
])
def test_bad_input_exits_2_with_a_clear_message(args, needles, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 2\n")
    (tmp_path / "empty").mkdir()
    places = {"BAD_TOML": bad, "EMPTY": tmp_path / "empty", "MISSING": tmp_path / "missing"}
    args = [str(places[a]) if a in places else a for a in args]
    result = run_cli(*args, "--out", str(tmp_path / "run")) if args[0] == "train" else run_cli(*args)
    _user_error(result, *needles)


def test_dataset_option_errors_name_the_option(tmp_path):
    result = run_cli("train", "linear", "--set", "data.options.n=0", "--out", str(tmp_path / "r"))
    _user_error(result, "invalid data.options for 'synthetic-linear'", "n: Input should be greater than or equal to 2")
    result = run_cli("train", "logistic", "--set", "data.options.x=1", "--out", str(tmp_path / "r"))
    _user_error(result, "dataset 'breast-cancer' takes no options")


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "train", "mpl")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("zoo, version")
    for command in ("list", "info", "plugins", "config", "train", "export", "predict"):
        assert run_cli(command, "--help").returncode == 0


def test_list_json_and_filters():
    result = run_cli("list", "--task", "regression", "--json")
    names = {m["name"] for m in json.loads(result.stdout)}
    assert {"linear", "mlp"} <= names and "softmax" not in names
    assert "fashion-mnist" in run_cli("list", "--datasets").stdout


def test_config_prints_toml_and_schema():
    import tomllib

    text = run_cli("config", "mlp", "--set", "optim.lr=0.5").stdout
    assert tomllib.loads(text)["optim"]["lr"] == 0.5
    schema = json.loads(run_cli("config", "mlp", "--schema").stdout)
    assert "model" in schema["properties"]


def test_train_summary_and_run_directory(linear_run):
    summary = json.loads((linear_run / "summary.json").read_text())
    for key in ("model", "dataset", "metrics", "onnx", "parity", "status", "device", "wall_seconds"):
        assert key in summary
    assert summary["status"] == "finished"
    for name in ("config.toml", "metrics.jsonl", "checkpoint-last.pt", "checkpoint-best.pt", "model.onnx"):
        assert (linear_run / name).is_file()
    assert len((linear_run / "metrics.jsonl").read_text().splitlines()) == 3


def test_existing_run_directory_is_not_overwritten(linear_run):
    result = run_cli("train", "linear", "--out", str(linear_run))
    _user_error(result, "already holds a run", "--resume")


def test_predict_npy_and_json(linear_run, tmp_path):
    x = np.array([[1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    result = run_cli("predict", str(linear_run), "--input", str(tmp_path / "x.npy"), "--json")
    assert result.returncode == 0, result.stderr
    predictions = np.array(json.loads(result.stdout)).reshape(-1)
    expected = x @ np.array([2.0, -3.4]) + 4.2
    assert np.allclose(predictions, expected, atol=5e-3)
    (tmp_path / "x.json").write_text(json.dumps({"x": [1.0, 1.0]}))  # one sample: batch axis added
    result = run_cli("predict", str(linear_run / "model.onnx"), "--input", str(tmp_path / "x.json"), "--json")
    assert result.returncode == 0 and np.allclose(json.loads(result.stdout), [[2.8]], atol=5e-3)


@pytest.mark.parametrize("payload, needle", [
    (np.zeros((2, 3), dtype=np.float32), "has shape [2, 3]; the model expects [-1, 2]"),
    (np.zeros((2, 2, 2), dtype=np.float32), "has shape [2, 2, 2]"),
    ('{"y": [1, 2]}', "unknown input(s) ['y']"),
    ('[[1, 2], [3]]', "not a rectangular array"),
    ('{"x": [["a", "b"]]}', "must be numeric"),
    ("not json", "not valid JSON"),
])
def test_predict_rejects_mismatched_inputs(linear_run, tmp_path, payload, needle):
    if isinstance(payload, np.ndarray):
        path = tmp_path / "in.npy"
        np.save(path, payload)
    else:
        path = tmp_path / "in.json"
        path.write_text(payload)
    _user_error(run_cli("predict", str(linear_run), "--input", str(path)), needle)


@pytest.mark.parametrize("name, content, needle", [
    ("empty.npy", b"", "not a valid .npy file"),  # was "Aborted!"
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),  # was a RecursionError
])
def test_predict_bad_files_are_one_line_in_a_real_process(linear_run, tmp_path, name, content, needle):
    (tmp_path / name).write_bytes(content)
    result = run_cli("predict", str(linear_run), "--input", str(tmp_path / name), "--json")
    _user_error(result, needle)
    assert result.stderr.count("\n") == 1 and not result.stdout


def test_predict_classifier_prints_labels(tmp_path):
    out = tmp_path / "iris"
    assert run_cli("train", "mlp", "--dataset", "iris", "--epochs", "40", "--batch-size", "8", "--out", str(out), "-q",
                   "--set", "model.hidden=[16]").returncode == 0
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    result = run_cli("predict", str(out), "--input", str(tmp_path / "x.npy"), "--json")
    labels = [p["label"] for p in json.loads(result.stdout)]
    assert labels == ["setosa", "virginica"]


def test_export_reexports_with_another_opset(linear_run):
    result = run_cli("export", str(linear_run), "--opset", "17")
    assert result.returncode == 0, result.stderr
    import onnx

    model = onnx.load(str(linear_run / "model.onnx"))
    assert model.opset_import[0].version in (17, 18)  # dynamo may keep its native opset for some domains
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model"] == "linear" and json.loads(meta["config"])["model"]["name"] == "linear"


def test_non_finite_loss_through_the_cli(tmp_path):
    result = run_cli("train", "linear", "--lr", "1e3", "--out", str(tmp_path / "r"))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "non-finite training loss" in result.stderr and "checkpoint-last.pt" in result.stderr


# -- zoo data ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["data", "list"], ["data", "info", "fashion-mnist"]])
def test_data_commands_do_not_import_torch(tmp_path, args):
    import subprocess
    import sys

    code = ("import sys; from zoo.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'onnx', 'pydantic', 'pooch', 'requests') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "ZOO_CACHE_DIR": str(tmp_path)})
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_data_list_shows_size_license_cache_and_checksums(tmp_path):
    result = run_cli("data", "list", env={"ZOO_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert rows["fashion-mnist"].split()[2:] == ["30.9", "MB", "MIT", "no", "verified"]
    assert rows["iris"].endswith("- (no download)")


@pytest.mark.parametrize("args, needles", [
    (["data", "fetch", "fashon-mnist"], ["unknown dataset 'fashon-mnist'", "did you mean: fashion-mnist"]),
    (["data", "path", "mnist"], ["'mnist'", "zoo data fetch mnist"]),  # fashion-mnist: Debian's may be there
    (["data", "fetch", "fashion-mnist", "--mirror", "EMPTY"],
     ["has no fashion-mnist/train-images-idx3-ubyte.gz", "http://fashion-mnist.s3-website"]),
    (["data", "verify", "fashion-mnist"], ["missing or not matching", "zoo data fetch fashion-mnist"]),
])
def test_data_errors_are_one_line(tmp_path, args, needles):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    result = run_cli(*args, env={"ZOO_CACHE_DIR": str(tmp_path / "cache"), "ZOO_DATA_DIR": ""})
    _user_error(result, *needles)
    assert result.stderr.count("\n") == 1


def test_data_fetch_from_a_mirror_folder_checks_the_published_md5(tmp_path):
    """Fashion-MNIST's declared md5s are the published ones: bytes that are not the canonical
    files (here: made-up ones) are refused, and nothing reaches the cache."""
    mirror = tmp_path / "mirror" / "fashion-mnist"
    mirror.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (mirror / name).write_bytes(b"not the real file")
    cache = tmp_path / "cache"
    result = run_cli("data", "fetch", "fashion-mnist", "--mirror", str(mirror.parent), env={"ZOO_CACHE_DIR": str(cache)})
    _user_error(result, "checksum mismatch", "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d")
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`zoo list | head -1`: no "error: Broken pipe" and no traceback once the reader is gone."""
    import subprocess
    import sys

    zoo = subprocess.Popen([sys.executable, "-m", "zoo", "list", "--datasets"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    zoo.stdout.close()  # the reader is gone before zoo writes (`zoo list | true`): EPIPE for sure
    stderr = zoo.stderr.read().decode()
    assert zoo.wait(timeout=60) in (0, 141) and stderr == "", stderr
