"""The model hub (issue 24): push, pull, checksums, tags, a read-only HTTP hub, concurrent pulls,
``hub:NAME`` in place of a run directory, ``--init`` fine-tuning and ``zoo.pull``.

No network: a directory hub in tmp_path, and the same folder served by a local ``http.server``.
The Hugging Face test runs only where the Hub is reachable and a test account is configured.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from zoo.cli import main
from zoo.core import api
from zoo.core.contract.errors import ZooError
from zoo.core.hub import HubRef, pull, push
from zoo.core.hub.card import front_matter, to_yaml

NAME = "linear-demo"


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hub-run") / "linear"
    api.train("linear", options={"train": {"progress": False, "epochs": 2}}, out=str(out), log=None)
    return out


@pytest.fixture(scope="module")
def pushed(linear_run, tmp_path_factory):
    """A hub folder holding NAME:v1 (pushed once per module; tests copy it before changing it)."""
    hub = tmp_path_factory.mktemp("hub-pushed") / "hub"
    result = push(str(linear_run), f"{hub}/{NAME}:v1")
    assert result["ref"] == f"{hub}/{NAME}:v1"
    return hub


@pytest.fixture
def hub(pushed, tmp_path, monkeypatch):
    """A private copy of the pushed hub as the default hub, and an empty pull cache."""
    copy = tmp_path / "hub"
    shutil.copytree(pushed, copy)
    monkeypatch.setenv("ZOO_HUB", str(copy))
    monkeypatch.setenv("ZOO_HUB_CACHE", str(tmp_path / "cache"))
    return copy


def _cached_files(tmp_path) -> list[str]:
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- references and the card ---------------------------------------------------------------------


@pytest.mark.parametrize("text, hub, name, tag", [
    ("/srv/hub/gcn", "/srv/hub", "gcn", None),
    ("hub:/srv/hub/gcn:v2", "/srv/hub", "gcn", "v2"),
    ("https://host:8000/models/gcn-cora:v1", "https://host:8000/models", "gcn-cora", "v1"),
    ("s3://bucket/zoo/mlp", "s3://bucket/zoo", "mlp", None),
    ("hf://someone/mlp-mnist:v3", "hf://someone", "mlp-mnist", "v3"),
])
def test_references_parse(text, hub, name, tag):
    assert HubRef.parse(text) == HubRef(hub, name, tag)


def test_a_bare_name_uses_the_default_hub_and_folders_are_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HUB", str(tmp_path))
    assert HubRef.parse("hub:gcn:v1") == HubRef(str(tmp_path), "gcn", "v1")
    monkeypatch.chdir(tmp_path)
    assert HubRef.parse("team/hub/gcn") == HubRef(str(tmp_path / "team" / "hub"), "gcn")


@pytest.mark.parametrize("text", ["", "hub:", "x/..:v1", "gcn:", "g cn", "gcn:v1:v2"])
def test_bad_references_are_one_line_errors(text):
    with pytest.raises(ZooError) as caught:
        HubRef.parse(text)
    assert "\n" not in str(caught.value)


def test_card_yaml_reads_back_exactly():
    yaml = pytest.importorskip("yaml")
    value = {"a": "x: y # z", "b": [1, 2.5, None, True], "model-index": [{"name": "m", "results": [
        {"metrics": [{"type": "acc", "value": 0.5}]}]}], "empty": [], "q": "\"quoted\"\n'"}
    assert yaml.safe_load(to_yaml(value)) == value


def test_push_writes_card_weights_manifest_and_index(pushed):
    folder = pushed / NAME / "v1"
    manifest = json.loads((folder / "manifest.json").read_text())
    files = sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
    assert files == sorted(manifest["files"]) and {"README.md", "model.onnx", "checkpoint-best.pt",
                                                   "config.toml", "summary.json"} <= set(files)
    assert all(_sha(folder / f) == facts["sha256"] for f, facts in manifest["files"].items())
    index = json.loads((pushed / "index.json").read_text())
    assert index["models"][NAME]["latest"] == "v1"
    assert index["models"][NAME]["tags"]["v1"]["manifest_sha256"] == _sha(folder / "manifest.json")
    weights = torch.load(folder / "checkpoint-best.pt", weights_only=True)  # tensors and plain values
    assert set(weights) == {"model", "data_info", "sha256"} and weights["model"]
    yaml = pytest.importorskip("yaml")
    card = yaml.safe_load(front_matter((folder / "README.md").read_text()))
    summary = json.loads((folder / "summary.json").read_text())
    assert card["library_name"] == "zoo" and card["datasets"] == ["synthetic-linear"]
    assert card["zoo"]["parity"] == summary["parity"] < 1e-4
    assert card["zoo"]["command"] == "zoo train linear --config config.toml"
    results = card["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in results} == summary["metrics"]


def test_an_unfinished_run_is_refused(tmp_path):
    (tmp_path / "config.toml").write_text('[model]\nname = "linear"\n')
    result = CliRunner().invoke(main, ["push", str(tmp_path), f"{tmp_path}/hub/x"])
    assert result.exit_code == 2 and "not a finished, exported run" in result.stderr


# -- pull: verified, cached, refused ---------------------------------------------------------------


def test_pull_verifies_then_uses_the_cache(hub, tmp_path):
    first = pull(NAME)
    assert first.downloaded and first.ref.tag == "v1" and (first.path / "model.onnx").is_file()
    again = pull(f"{NAME}:v1")
    assert not again.downloaded and again.path == first.path
    result = CliRunner().invoke(main, ["pull", NAME])
    assert result.exit_code == 0 and result.output.startswith(f"cached {hub}/{NAME}:v1: ")


@pytest.mark.parametrize("damage, needle", [
    (lambda f: f.joinpath("model.onnx").write_bytes(f.joinpath("model.onnx").read_bytes() + b"x"),
     "model.onnx does not match its SHA-256 in the manifest"),
    (lambda f: f.joinpath("checkpoint-best.pt").unlink(), "checkpoint-best.pt is missing"),
    (lambda f: f.joinpath("manifest.json").write_text(
        f.joinpath("manifest.json").read_text().replace('"linear"', '"linear2"', 1)),
     "manifest.json does not match the SHA-256 the hub's index records"),
])
def test_a_damaged_push_is_refused_and_nothing_is_cached(hub, tmp_path, damage, needle):
    damage(hub / NAME / "v1")
    result = CliRunner().invoke(main, ["pull", f"{NAME}:v1"])
    assert result.exit_code == 2, result.output
    (error,) = [line for line in result.stderr.splitlines() if not line.startswith("pulling ")]
    assert error.startswith("error: ") and needle in error and "nothing was kept" in error
    assert _cached_files(tmp_path) == []
    assert not (tmp_path / "cache").exists() or not any(
        p.name.startswith(NAME) for p in (tmp_path / "cache").rglob("*"))


def test_a_cached_copy_damaged_later_is_pulled_again(hub):
    path = pull(NAME).path
    (path / "config.toml").write_text("tampered")
    again = pull(NAME)
    assert again.downloaded and _sha(again.path / "config.toml") == _sha(hub / NAME / "v1" / "config.toml")


def test_unknown_model_and_tag(hub, tmp_path):
    empty = CliRunner().invoke(main, ["predict", f"hub:{tmp_path}/nohub/x", "--input", "x.npy"])
    assert empty.exit_code == 2 and "it holds no models yet" in empty.stderr
    with pytest.raises(ZooError, match="unknown model .* 'linear-dem'; did you mean: linear-demo"):
        pull("linear-dem")
    with pytest.raises(ZooError, match="unknown tag of linear-demo 'v9'"):
        pull(f"{NAME}:v9")


# -- tags ----------------------------------------------------------------------------------------


def test_tags_are_immutable_unless_forced(hub, linear_run):
    runner = CliRunner()
    again = runner.invoke(main, ["push", str(linear_run), f"{NAME}:v1"])
    assert again.exit_code == 2 and "tags are immutable" in again.stderr
    (hub / NAME / "v1" / "stray.bin").write_bytes(b"left by someone")
    assert runner.invoke(main, ["push", str(linear_run), f"{NAME}:v1", "--force"]).exit_code == 0
    assert not (hub / NAME / "v1" / "stray.bin").exists()  # the tag's folder was replaced whole
    assert pull(f"{NAME}:v1").downloaded
    nxt = runner.invoke(main, ["push", str(linear_run), NAME, "--json"])
    assert nxt.exit_code == 0 and json.loads(nxt.stdout)["ref"].endswith(f"{NAME}:v2")
    assert pull(NAME).ref.tag == "v2"  # no tag: the latest push
    listed = json.loads(runner.invoke(main, ["hub", "list", "--json"]).stdout)
    assert [(r["tag"], r["latest"]) for r in listed] == [("v1", False), ("v2", True)]
    shown = runner.invoke(main, ["hub", "show", f"{NAME}:v1"])
    assert shown.exit_code == 0 and "tags: v1, v2" in shown.output


# -- a read-only hub over HTTP -------------------------------------------------------------------


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_hub(hub, monkeypatch):
    pytest.importorskip("aiohttp")  # fsspec's HTTP backend
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    handler = functools.partial(_Quiet, directory=str(hub))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_hub_pulls_lists_and_refuses_pushes(http_hub, hub, linear_run, tmp_path):
    runner = CliRunner()
    pulled = runner.invoke(main, ["pull", f"{http_hub}/{NAME}"])
    assert pulled.exit_code == 0 and pulled.stdout.startswith(f"pulled {http_hub}/{NAME}:v1"), pulled.output
    listed = runner.invoke(main, ["hub", "list", http_hub])
    assert listed.exit_code == 0 and f"{NAME}:v1 (latest)" in listed.output
    refused = runner.invoke(main, ["push", str(linear_run), f"{http_hub}/{NAME}:v2"])
    assert refused.exit_code == 2 and "read-only" in refused.stderr
    (hub / NAME / "v1" / "model.onnx").write_bytes(b"not the model")
    shutil.rmtree(tmp_path / "cache")
    tampered = runner.invoke(main, ["pull", f"{http_hub}/{NAME}:v1"])
    assert tampered.exit_code == 2 and "model.onnx does not match" in tampered.stderr
    assert _cached_files(tmp_path) == []


def test_offline_uses_the_cache_only(http_hub, monkeypatch):
    pull(f"{http_hub}/{NAME}:v1")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert not pull(f"{http_hub}/{NAME}:v1").downloaded
    with pytest.raises(ZooError, match="offline"):
        pull(f"{http_hub}/{NAME}")  # which tag is latest needs the hub


# -- concurrent pulls ----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_pull_one_model_at_once(hub, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "zoo", "pull", f"{NAME}:v1"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    words = sorted(out.split()[0] for out, _ in outs)
    assert words == ["cached", "pulled"]  # the lock: one downloads, the other finds it verified
    folder = Path(outs[0][0].split(": ", 1)[1].strip())
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (hub / NAME / "v1").iterdir())
    assert not [p for p in folder.parent.iterdir() if "partial" in p.name]


# -- hub:NAME wherever a run directory goes --------------------------------------------------------


def test_predict_runs_show_export_and_serve_take_hub_references(hub, linear_run, tmp_path):
    runner = CliRunner()
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).normal(size=(3, 2)).astype("float32"))
    from_run = runner.invoke(main, ["predict", str(linear_run), "--input", str(x), "--json"])
    from_hub = runner.invoke(main, ["predict", f"hub:{NAME}", "--input", str(x), "--json"])
    assert from_hub.exit_code == 0 and json.loads(from_hub.stdout) == json.loads(from_run.stdout)
    shown = runner.invoke(main, ["runs", "show", f"hub:{NAME}:v1", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["model"] == "linear"
    compared = runner.invoke(main, ["runs", "compare", f"hub:{NAME}", str(linear_run), "--json"])
    assert compared.exit_code == 0 and json.loads(compared.stdout)["runs"] == [f"{NAME}@v1", "linear"]
    exported = runner.invoke(main, ["export", f"hub:{NAME}", "--triton", str(tmp_path / "triton")])
    assert exported.exit_code == 0 and (tmp_path / "triton" / NAME / "config.pbtxt").is_file()
    assert _sha(tmp_path / "triton" / NAME / "1" / "model.onnx") == _sha(hub / NAME / "v1" / "model.onnx")
    refused = runner.invoke(main, ["export", f"hub:{NAME}", "--opset", "17"])
    assert refused.exit_code == 2 and "read-only" in refused.stderr
    from zoo.core.hub import serve_targets

    served = serve_targets([f"hub:{NAME}", f"other=hub:{NAME}:v1", str(linear_run)])
    assert served[0] == f"{NAME}={pull(NAME).path}" and served[1].startswith("other=")
    assert served[2] == str(linear_run)


def test_serve_answers_under_the_hub_name(hub):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from zoo.core.hub import serve_targets
    from zoo.core.serve import build_app

    app = build_app(serve_targets([f"hub:{NAME}", f"other=hub:{NAME}:v1"]), log=lambda line: None)
    x = [[1.0, 1.0]]
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": x[0]}]}
    with TestClient(app) as client:
        assert client.get("/v2").json()["models"] == [NAME, "other"]
        answers = [client.post(f"/v2/models/{m}/infer", json=body).json() for m in (NAME, "other")]
    (expected,) = zoo_pull_outputs(np.array(x, dtype=np.float32))
    for answer in answers:
        assert np.allclose(answer["outputs"][0]["data"], expected.reshape(-1), atol=1e-6)


def zoo_pull_outputs(x):
    import zoo

    return list(zoo.pull(NAME).session(x).values())


def test_zoo_pull_gives_a_session_and_the_torch_module(hub):
    import zoo

    model = zoo.pull(f"{NAME}:v1")
    x = np.random.default_rng(1).normal(size=(5, 2)).astype("float32")
    (onnx_out,) = model.session(x).values()
    with torch.no_grad():
        torch_out = model.module(torch.from_numpy(x)).numpy()
    assert np.abs(onnx_out - torch_out).max() < 1e-5
    assert model.card["zoo"]["model"] == "linear" and model.session.provider == "CPUExecutionProvider"


# -- fine-tuning from pulled weights ---------------------------------------------------------------


def test_init_fine_tunes_from_pulled_weights(hub, tmp_path):
    from zoo.core.hub.model import build_module, init_weights

    pushed = build_module(hub / NAME / "v1")
    _, spec, run_config = api.resolve_config("linear")
    fresh = api.build_model(spec, run_config, pushed_info(hub))
    source = init_weights(fresh, f"hub:{NAME}")
    assert source == f"hub:{hub}/{NAME}:v1"
    for key, value in pushed.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    summary = api.train("linear", options={"train": {"progress": False, "epochs": 1, "init": f"hub:{NAME}"}},
                        out=str(tmp_path / "ft"), log=None)
    assert summary["status"] == "finished"
    assert f'init = "hub:{hub}/{NAME}:v1"' in (tmp_path / "ft" / "config.toml").read_text()


def pushed_info(hub):
    from zoo.core.train.data import DataInfo

    info = torch.load(hub / NAME / "v1" / "checkpoint-best.pt", weights_only=True)["data_info"]
    return DataInfo(**{**info, "input_shape": tuple(info["input_shape"])})


def test_init_that_does_not_fit_is_one_clear_error(hub):
    from zoo.core.hub.model import init_weights

    with pytest.raises(ZooError) as caught:
        init_weights(torch.nn.Linear(5, 3), f"hub:{NAME}")
    message = str(caught.value)
    assert "do not fit this model" in message and "--set model.*" in message and "\n" not in message
    result = CliRunner().invoke(main, ["train", "linear", "--init", str(hub / "nowhere"), "--epochs", "1"])
    assert result.exit_code == 2 and "no checkpoint-best.pt or checkpoint-last.pt" in result.stderr


def test_the_hub_package_ships_in_the_wheel():
    import tomllib

    root = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert "zoo.core.hub" in pyproject["tool"]["setuptools"]["packages"]
    assert any(d.startswith(("fsspec", "filelock")) for d in pyproject["project"]["dependencies"])
    assert any(d.startswith("aiohttp") for d in pyproject["project"]["optional-dependencies"]["test"])


# -- the Hugging Face Hub (only where it is reachable and a test account is set) -------------------


class _FakeHfApi:
    """The few HfApi calls HfStore makes, over in-memory repositories: commits and git tags."""

    repos: dict = {}

    def __init__(self) -> None:
        self.repos = _FakeHfApi.repos

    def repo_exists(self, repo_id):
        return repo_id in self.repos

    def create_repo(self, repo_id, exist_ok=False):
        self.repos.setdefault(repo_id, {"commits": {}, "tags": {}, "main": None})

    def upload_folder(self, repo_id, folder_path, commit_message):
        from types import SimpleNamespace

        repo = self.repos[repo_id]
        oid = f"c{len(repo['commits'])}"
        repo["commits"][oid] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        repo["main"] = oid
        return SimpleNamespace(oid=oid)

    def create_tag(self, repo_id, tag, revision):
        self.repos[repo_id]["tags"][tag] = revision

    def delete_tag(self, repo_id, tag):
        del self.repos[repo_id]["tags"][tag]

    def list_repo_refs(self, repo_id):
        from types import SimpleNamespace

        return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in self.repos[repo_id]["tags"]])

    def _files(self, repo_id, revision):
        repo = self.repos[repo_id]
        return repo["commits"][repo["main"] if revision == "main" else repo["tags"][revision]]

    def hf_hub_download(self, repo_id, filename, revision):
        from huggingface_hub.utils import EntryNotFoundError

        files = self._files(repo_id, revision)
        if filename not in files:
            raise EntryNotFoundError(filename)
        path = Path(self.scratch) / f"{len(os.listdir(self.scratch))}-{filename}"
        path.write_bytes(files[filename])
        return str(path)

    def snapshot_download(self, repo_id, revision, local_dir, allow_patterns):
        for name, data in self._files(repo_id, revision).items():
            if name in allow_patterns:
                Path(local_dir, name).write_bytes(data)
        Path(local_dir, ".cache").mkdir(exist_ok=True)  # as huggingface_hub leaves one

    def list_models(self, author, filter):
        from types import SimpleNamespace

        return [SimpleNamespace(id=r) for r in self.repos if r.startswith(f"{author}/")]


def test_hf_store_logic_on_a_fake_hub(linear_run, tmp_path, monkeypatch):
    """HfStore's tags, push, pull and refusal, against an in-memory stand-in for HfApi (the real
    Hub is tested below where reachable)."""
    hf = pytest.importorskip("huggingface_hub")
    _FakeHfApi.repos = {}
    _FakeHfApi.scratch = str(tmp_path)
    monkeypatch.setattr(hf, "HfApi", _FakeHfApi)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.setenv("ZOO_HUB_CACHE", str(tmp_path / "cache"))
    assert push(str(linear_run), "hf://alice/lin")["ref"] == "hf://alice/lin:v1"
    assert _FakeHfApi.repos["alice/lin"]["tags"] == {"v1": "c0"}
    with pytest.raises(ZooError, match="tags are immutable"):
        push(str(linear_run), "hf://alice/lin:v1")
    pulled = pull("hf://alice/lin:v1")
    assert pulled.downloaded and not (pulled.path / ".cache").exists()
    latest = pull("hf://alice/lin")  # no tag: the repository's main branch
    assert latest.ref.tag == "main" and _sha(latest.path / "model.onnx") == _sha(pulled.path / "model.onnx")
    rows = CliRunner().invoke(main, ["hub", "list", "hf://alice", "--json"])
    assert [r["name"] for r in json.loads(rows.stdout)] == ["lin"]
    _FakeHfApi.repos["alice/lin"]["commits"]["c0"]["config.toml"] = b"changed"
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(ZooError, match="config.toml does not match its SHA-256"):
        pull("hf://alice/lin:v1")
    assert _cached_files(tmp_path) == []



def _hf_reason() -> str | None:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError as err:
        return f"the Hugging Face Hub is unreachable here ({err})"
    if not os.environ.get("ZOO_HF_TEST_USER"):
        return "set ZOO_HF_TEST_USER (and HF_TOKEN with write access) to push to hf://USER"
    return None


def test_hugging_face_hub_round_trip(linear_run, tmp_path, monkeypatch):
    reason = _hf_reason()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.setenv("ZOO_HUB_CACHE", str(tmp_path / "cache"))
    target = f"hf://{os.environ['ZOO_HF_TEST_USER']}/zoo-test-{os.getpid()}:v1"
    push(str(linear_run), target)
    pulled = pull(target)
    assert pulled.downloaded and (pulled.path / "model.onnx").is_file()
