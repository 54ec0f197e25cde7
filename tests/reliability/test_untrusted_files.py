"""Files a user receives (checkpoints, Planetoid pickles) are data: loading them never runs code,
and a damaged one stops the command with one line naming it (exit 2)."""

from __future__ import annotations

import pickle

import pytest
import torch
from zoo.core import api
from zoo.core.train import checkpoint
from zoo.core.contract.errors import ZooError

QUICK = {"train": {"progress": False, "device": "cpu", "epochs": 2}}


class _CreatesFile:
    """Unpickling this calls ``open(marker, "w")``: proof, if the marker appears, that code ran."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "linear"
    api.train("linear", options={**QUICK, "export": {"enabled": False}}, out=str(out), log=None)
    return out


def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow
def test_checkpoints_hold_only_data_and_a_digest(finished_run):
    payload = torch.load(finished_run / "checkpoint-last.pt", weights_only=True)
    assert payload["sha256"] == checkpoint.content_digest(payload)
    assert checkpoint.load(finished_run / "checkpoint-best.pt")["state"]["epoch"] >= 1


@pytest.mark.slow
def test_a_crafted_checkpoint_runs_nothing_on_export_and_resume(finished_run, tmp_path, cli):
    run = _copy_run(finished_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    for name in ("checkpoint-best.pt", "checkpoint-last.pt"):
        torch.save({"model": _CreatesFile(marker)}, run / name)
    for args in (["export", str(run)], ["train", "--resume", str(run), "--epochs", "5", "-q"]):
        result = cli(*args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "refusing to load" in result.stderr and "checkpoint-" in result.stderr
        assert not marker.exists()


@pytest.mark.slow
def test_a_crafted_checkpoint_is_refused_in_process(finished_run, tmp_path):
    path = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"
    torch.save({"model": _CreatesFile(marker)}, path)
    with pytest.raises(ZooError, match="refusing to load .*evil.pt"):
        checkpoint.load(path)
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["zeros", "truncated", "empty", "random"])
def test_a_damaged_checkpoint_is_one_clear_error(finished_run, tmp_path, damage):
    path = tmp_path / "checkpoint-last.pt"
    data = bytearray((finished_run / "checkpoint-last.pt").read_bytes())
    if damage == "zeros":  # 4 KB of zeros in the middle: the zip still opens, the digest catches it
        middle = len(data) // 2
        data[middle:middle + 4096] = bytes(min(4096, len(data) - middle))
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(torch.randint(0, 256, (len(data),), generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8).numpy().tobytes())
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=f"{path}.*(damaged|not a zoo checkpoint)"):
        checkpoint.load(path)


def test_zeros_inside_tensor_data_are_caught_by_the_digest(tmp_path):
    """A damaged block that the zip reader does not notice (inside a tensor's bytes)."""
    path = tmp_path / "c.pt"
    path.write_bytes(checkpoint.dumps({"model": {"w": torch.arange(4096, dtype=torch.float32)}}))
    data = bytearray(path.read_bytes())
    where = data.find(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[:64])
    assert where > 0
    data[where + 1000: where + 1400] = bytes(400)
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="do not match the SHA-256"):
        checkpoint.load(path)


def _runstring_pickle(code: str) -> bytes:
    """A protocol-0 pickle that calls ``numpy.testing``'s ``runstring(code, {})`` (``exec``)."""
    return (b"cnumpy.testing._private.utils\nrunstring\n(V" + code.encode("raw_unicode_escape")
            + b"\n}tR.")


def test_the_crafted_planetoid_payload_would_run_code_under_plain_pickle(tmp_path):
    """The payload below is real: plain pickle executes it (so the next test can fail)."""
    marker = tmp_path / "pwned"
    pickle.loads(_runstring_pickle(f"open({str(marker)!r}, 'w').close()"))
    assert marker.exists()


@pytest.mark.slow
def test_a_crafted_planetoid_file_runs_nothing(tmp_path, cli):
    folder = tmp_path / "planetoid"
    folder.mkdir()
    marker = tmp_path / "pwned"
    for part in ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"):
        (folder / f"ind.cora.{part}").write_bytes(b"")
    (folder / "ind.cora.x").write_bytes(_runstring_pickle(f"open({str(marker)!r}, 'w').close()"))
    result = cli("train", "gcn", "--data-dir", str(tmp_path), "--epochs", "1", "-q",  # a root: planetoid/ind.cora.*
                 "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert "ind.cora.x" in result.stderr and "refusing to unpickle numpy.testing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # refused before a run directory was made

