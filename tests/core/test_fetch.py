"""Downloads into the cache (zoo.core.train.fetch, `zoo data`), end to end against a local HTTP server.

No network: a ``http.server`` in a thread serves files made at test time; test-only datasets are
declared by putting entries into the (cached) catalogue.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from zoo.cli import main
from zoo.core.train import fetch
from zoo.core.contract.catalogue import Catalogue, DataFile, DatasetEntry, load_catalogue
from zoo.core.train.data import locate
from zoo.core.contract.errors import DataNotFound, ZooError


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    short: set[str] = set()  # paths sent cut short: the full Content-Length, half the bytes, then close
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path in self.short else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"files": {}, "short": set(), "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(root))
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.setattr(fetch, "RETRIES", 0)  # pooch waits 1 s before each retry
    monkeypatch.setattr(fetch, "_warned", set())
    return root


def declare(monkeypatch, name: str, *files: DataFile, task: str = "classification") -> DatasetEntry:
    entry = DatasetEntry(name=name, plugin="datasets", task=task, license="CC0", files=files)
    monkeypatch.setitem(load_catalogue().datasets, name, entry)
    return entry


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served(server, path: str, body: bytes, **declared) -> DataFile:
    """Serve ``body`` at ``/path`` and declare it (sha256 given unless ``declared`` says otherwise)."""
    server.files["/" + path] = body
    declared.setdefault("sha256", sha256(body))
    return DataFile(url=f"{server.url}/{path}", path=path, **declared)


def cli(*args):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def files_under(root: Path) -> list[str]:
    """Files and folders under ``root``: a failed fetch leaves neither (not even an empty folder)."""
    return sorted(str(p.relative_to(root)) + ("" if p.is_file() else "/")
                  for p in root.rglob("*")) if root.exists() else []


# -- fetching ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_right_checksum_is_cached_and_located(server, cache, monkeypatch, algorithm):
    body = b"1 2 3\n" * 100
    digest = {"sha256": sha256(body), "md5": hashlib.md5(body).hexdigest()}[algorithm]
    other = {"md5": ""} if algorithm == "sha256" else {"sha256": ""}
    declare(monkeypatch, "toy", served(server, "toy/a.txt", body, **{algorithm: digest}, **other))
    result = cli("data", "fetch", "toy")
    assert result.exit_code == 0, result.output + result.stderr
    assert (cache / "toy/a.txt").read_bytes() == body
    assert locate("toy", ["toy/a.txt"]) == cache
    assert files_under(cache) == ["toy/", "toy/a.txt"]  # no temporary left behind
    assert fetch.verify("toy")[0]["status"] == "ok"
    # A second fetch finds the file intact and downloads nothing.
    assert cli("data", "fetch", "toy").exit_code == 0 and server.requests == ["/toy/a.txt"]


@pytest.mark.slow
def test_wrong_checksum_caches_nothing(server, cache, monkeypatch):
    declare(monkeypatch, "toy", served(server, "toy/a.txt", b"tampered", sha256="0" * 64))
    result = cli("data", "fetch", "toy")
    one_line_error(result, f"{server.url}/toy/a.txt", "checksum mismatch", "sha256:" + "0" * 64,
                   "got " + sha256(b"tampered"), "--mirror DIR")
    assert files_under(cache) == []


@pytest.mark.slow
def test_404_is_one_line_naming_url_and_fix(server, cache, monkeypatch):
    declare(monkeypatch, "toy", DataFile(url=f"{server.url}/gone.txt", path="toy/gone.txt", sha256="0" * 64))
    result = cli("data", "fetch", "toy")
    one_line_error(result, f"could not download {server.url}/gone.txt", "HTTP 404",
                   "zoo data fetch toy --mirror DIR", "--data-dir DIR")
    assert files_under(cache) == []


@pytest.mark.slow
def test_no_network_is_one_line(cache, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    declare(monkeypatch, "toy", DataFile(url=f"http://127.0.0.1:{port}/a.txt", path="toy/a.txt"))
    one_line_error(cli("data", "fetch", "toy"), "no connection", "Connection refused", "--mirror DIR")


@pytest.mark.slow
@pytest.mark.parametrize("checksum", [True, False], ids=["verified", "unverified"])
def test_download_cut_short_caches_nothing(server, cache, monkeypatch, checksum):
    body = bytes(range(256)) * 400
    file = served(server, "toy/big.bin", body, sha256=sha256(body) if checksum else "")
    server.short.add("/toy/big.bin")
    declare(monkeypatch, "toy", file)
    result = cli("data", "fetch", "toy")
    one_line_error(result, "toy/big.bin", "toy")
    if not checksum:  # nothing but the transfer itself can tell
        assert "closed before the whole file arrived" in result.stderr
    assert files_under(cache) == []


@pytest.mark.slow
def test_unverified_file_is_fetched_marked_and_warned_once(server, cache, monkeypatch):
    declare(monkeypatch, "toy", served(server, "toy/a.txt", b"a", sha256=""),
            served(server, "toy/b.txt", b"b", sha256=""))
    result = cli("data", "fetch", "toy")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("no published checksum") == 1
    assert "Downloading" not in result.stderr and "known_hash" not in result.stderr  # pooch's INFO lines
    assert files_under(cache) == ["toy/", "toy/a.txt", "toy/b.txt"]
    row = fetch.status(load_catalogue().datasets["toy"])
    assert (row["cached"], row["checksums"]) == (True, "unverified")
    assert [r["status"] for r in fetch.verify("toy")] == ["unverified", "unverified"]
    monkeypatch.setattr(fetch, "_warned", set())  # a new process: nothing to fetch, nothing "fetched unverified"
    again = cli("data", "fetch", "toy")
    assert again.exit_code == 0 and "no published checksum" not in again.stderr, again.stderr


@pytest.mark.slow
def test_declared_size_guards_an_unverified_file(server, cache, monkeypatch):
    declare(monkeypatch, "toy", served(server, "toy/a.txt", b"abc", sha256="", size=4))
    one_line_error(cli("data", "fetch", "toy"), "3 bytes, the declaration says 4")
    assert files_under(cache) == []


# -- archives ----------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("unpack, pack, archive", [("zip", _zip, "tu/TOY.zip"), ("tar.gz", _tar_gz, "tu/TOY.tgz")])
def test_archive_is_unpacked_into_its_folder_and_removed(server, cache, monkeypatch, unpack, pack, archive):
    members = {"TOY/TOY_A.txt": b"1, 2\n", "TOY/TOY_graph_indicator.txt": b"1\n1\n", "TOY/README": b"x"}
    provides = ("tu/TOY/TOY_A.txt", "tu/TOY/TOY_graph_indicator.txt")
    entry = declare(monkeypatch, "toy", served(server, archive, pack(members), unpack=unpack, provides=provides),
                    task="graph-classification")
    assert cli("data", "fetch", "toy").exit_code == 0
    assert locate("toy", list(provides)) == cache
    assert (cache / "tu/TOY/TOY_A.txt").read_bytes() == b"1, 2\n"
    assert fetch.status(entry)["cached"]
    # A deleted member is unpacked again from the cached archive, without a download.
    (cache / provides[0]).unlink()
    assert cli("data", "fetch", "toy").exit_code == 0 and len(server.requests) == 1
    assert (cache / provides[0]).is_file()
    result = cli("data", "rm", "toy")
    assert result.exit_code == 0 and "removed 4 file(s)" in result.output
    assert files_under(cache) == [] and not (cache / "tu").exists()


@pytest.mark.slow
def test_gz_is_decompressed_next_to_it(server, cache, monkeypatch):
    declare(monkeypatch, "toy", served(server, "text/toy.txt.gz", gzip.compress(b"hello world\n"), unpack="gz"))
    assert cli("data", "fetch", "toy").exit_code == 0
    assert (cache / "text/toy.txt").read_bytes() == b"hello world\n"
    assert fetch.path("toy") == cache


# -- mirrors -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_mirror_folder_is_checked_by_the_same_checksums(tmp_path, cache, monkeypatch):
    body = b"mirrored\n"
    declare(monkeypatch, "toy", DataFile(url="http://127.0.0.1:9/unused/a.txt", path="toy/a.txt",
                                         sha256=sha256(body)))
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    # A folder without the file: one line naming the folder and the path.
    one_line_error(cli("data", "fetch", "toy", "--mirror", str(mirror)), f"mirror {mirror} has no toy/a.txt")
    (mirror / "toy/a.txt").write_bytes(b"corrupted\n")
    one_line_error(cli("data", "fetch", "toy", "--mirror", str(mirror)), "checksum mismatch")
    assert files_under(cache) == []
    (mirror / "toy/a.txt").write_bytes(body)
    result = cli("data", "fetch", "toy", "--mirror", str(mirror))
    assert result.exit_code == 0, result.stderr
    assert (cache / "toy/a.txt").read_bytes() == body


@pytest.mark.slow
def test_mirror_url(server, cache, monkeypatch):
    body = b"from the mirror\n"
    server.files["/base/toy/a.txt"] = body
    declare(monkeypatch, "toy", DataFile(url="http://127.0.0.1:9/a.txt", path="toy/a.txt", sha256=sha256(body)))
    assert cli("data", "fetch", "toy", "--mirror", server.url + "/base/").exit_code == 0
    assert server.requests == ["/base/toy/a.txt"] and (cache / "toy/a.txt").read_bytes() == body


@pytest.mark.slow
def test_mirror_that_is_neither_folder_nor_url(cache, monkeypatch, tmp_path):
    declare(monkeypatch, "toy", DataFile(url="http://127.0.0.1:9/a.txt", path="toy/a.txt"))
    one_line_error(cli("data", "fetch", "toy", "--mirror", str(tmp_path / "nope")), "neither a folder nor a URL")


# -- offline, and a cache that cannot be written ------------------------------------------------


@pytest.mark.slow
def test_zoo_offline_stops_zoo_data_fetch_before_the_network(server, cache, monkeypatch, tmp_path):
    body = b"offline\n"
    declare(monkeypatch, "toy", served(server, "toy/a.txt", body))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    one_line_error(cli("data", "fetch", "toy"), "ZOO_OFFLINE", "toy/a.txt", "--mirror DIR")
    one_line_error(cli("data", "fetch", "toy", "--mirror", server.url), "ZOO_OFFLINE")
    assert server.requests == [] and files_under(cache) == []
    mirror = tmp_path / "mirror"  # a folder is no network: offline may copy from it
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy/a.txt").write_bytes(body)
    assert cli("data", "fetch", "toy", "--mirror", str(mirror)).exit_code == 0
    import pooch.hashes

    hashed = []
    counted = lambda fname, *args, **kw: hashed.append(fname) or real_hash(fname, *args, **kw)  # noqa: E731
    real_hash = pooch.hashes.file_hash
    monkeypatch.setattr(pooch.hashes, "file_hash", counted)
    monkeypatch.setattr(pooch, "file_hash", counted)
    result = cli("data", "fetch", "toy")  # already cached and intact: nothing to download
    assert result.exit_code == 0, result.stderr
    assert server.requests == [] and (cache / "toy/a.txt").read_bytes() == body
    assert len(hashed) == 1  # the cached copy is read once, not again by pooch


def _toy_mirror(tmp_path, monkeypatch):
    """A mirror folder holding dataset ``toy``'s one file, declared with its checksum; online."""
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy/a.txt").write_bytes(b"x")
    declare(monkeypatch, "toy", DataFile(url="http://127.0.0.1:9/a.txt", path="toy/a.txt", sha256=sha256(b"x")))
    return mirror


@pytest.mark.parametrize("make", ["file", "under-a-file"])
def test_a_cache_that_is_not_a_folder_is_one_line_naming_zoo_cache_dir(tmp_path, monkeypatch, make):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    root = blocker if make == "file" else blocker / "cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(root))
    mirror = _toy_mirror(tmp_path, monkeypatch)
    one_line_error(cli("data", "fetch", "toy", "--mirror", str(mirror)), f"dataset cache {root}", "ZOO_CACHE_DIR",
                   "--data-dir DIR")
    assert blocker.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "mirror"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_cache_is_one_line_naming_zoo_cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o555)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(root))
    mirror = _toy_mirror(tmp_path, monkeypatch)
    try:
        one_line_error(cli("data", "fetch", "toy", "--mirror", str(mirror)), f"dataset cache {root}", "ZOO_CACHE_DIR")
        assert list(root.iterdir()) == []
    finally:
        root.chmod(0o755)


# -- verify, path, rm, list, info ---------------------------------------------------------------


@pytest.mark.slow
def test_verify_finds_a_corrupted_file_and_fetch_repairs_it(server, cache, monkeypatch):
    body = b"good\n"
    declare(monkeypatch, "toy", served(server, "toy/a.txt", body))
    assert cli("data", "fetch", "toy").exit_code == 0
    (cache / "toy/a.txt").write_bytes(b"bad\n")
    result = cli("data", "verify", "toy")
    one_line_error(result, "1 cached file(s)", "zoo data fetch toy")
    assert "mismatch" in result.output
    assert cli("data", "fetch", "toy").exit_code == 0  # pooch sees the wrong hash and downloads again
    assert (cache / "toy/a.txt").read_bytes() == body and cli("data", "verify").exit_code == 0


@pytest.mark.slow
def test_path_follows_the_search_order(server, cache, monkeypatch, tmp_path):
    declare(monkeypatch, "toy", served(server, "toy/a.txt", b"x"))
    with pytest.raises(DataNotFound, match="zoo data fetch toy"):
        fetch.path("toy")
    own = tmp_path / "own"
    (own / "toy").mkdir(parents=True)
    (own / "toy/a.txt").write_text("mine")
    monkeypatch.setenv("ZOO_DATA_DIR", str(own))
    result = cli("data", "path", "toy")
    assert result.exit_code == 0 and result.output.strip() == str(own)
    # rm never touches a ZOO_DATA_DIR folder.
    assert cli("data", "rm", "toy").exit_code == 0 and (own / "toy/a.txt").exists()


def test_path_and_info_look_in_the_declared_system_folders_last(cache, monkeypatch, tmp_path):
    """`zoo data path` searches as the loaders do: a system package's folder (Debian's
    /usr/share/datasets) after the cache; ZOO_DATA_DIR without the files does not hide it."""
    system = tmp_path / "usr-share"
    (system / "toy").mkdir(parents=True)
    (system / "toy/a.txt").write_text("packaged")
    entry = DatasetEntry(name="toy", plugin="datasets", task="classification", system=(str(system),),
                         files=(DataFile(url="http://127.0.0.1:9/a.txt", path="toy/a.txt"),))
    monkeypatch.setitem(load_catalogue().datasets, "toy", entry)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "empty"))
    result = cli("data", "path", "toy")
    assert result.exit_code == 0 and result.output.strip() == str(system), result.output + result.stderr
    assert fetch.info("toy")["found"] == str(system)
    (cache / "toy").mkdir(parents=True)
    (cache / "toy/a.txt").write_text("cached")
    assert cli("data", "path", "toy").output.strip() == str(cache)  # the cache comes first


def test_fashion_mnist_declares_the_debian_folder_its_loader_reads():
    from zoo.core.train.roots import system_roots

    assert load_catalogue().dataset("fashion-mnist").system == ("/usr/share/datasets",)
    assert system_roots("fashion-mnist") == [Path("/usr/share/datasets")]  # what locate searches last
    assert system_roots("cora") == [] and system_roots("not-declared") == []


@pytest.mark.slow
def test_list_and_info(server, cache, monkeypatch):
    declare(monkeypatch, "toy", served(server, "toy/a.txt", b"abc", size=3, checksum_source="https://example.org/sums"))
    assert cli("data", "fetch", "-q", "toy").exit_code == 0
    listed = {r["name"]: r for r in json.loads(cli("data", "list", "--json").output)}
    assert {k: listed["toy"][k] for k in ("cached", "checksums", "size", "license")} == {
        "cached": True, "checksums": "verified", "size": 3, "license": "CC0"}
    assert listed["iris"]["checksums"] == "" and listed["fashion-mnist"]["checksums"] == "verified"
    text = cli("data", "info", "toy").output
    assert "sha256:" + sha256(b"abc") in text and "https://example.org/sums" in text and "cached" in text


@pytest.mark.slow
@pytest.mark.parametrize("args, needle", [
    (["data", "fetch", "fashion-mnst"], "did you mean: fashion-mnist"),
    (["data", "info", "cora2"], "did you mean: cora"),
    (["data", "fetch", "iris"], "has no files to fetch"),
])
def test_unknown_or_fileless_names(cache, args, needle):
    one_line_error(cli(*args), needle)


@pytest.mark.slow
def test_fetch_checks_every_name_before_downloading(server, cache, monkeypatch):
    declare(monkeypatch, "toy", served(server, "toy/a.txt", b"x"))
    one_line_error(cli("data", "fetch", "toy", "nope"), "unknown dataset 'nope'")
    assert server.requests == []


# -- the catalogue schema ----------------------------------------------------------------------


@pytest.mark.parametrize("file, message", [
    ({"path": "a"}, r"files\[0\] needs url"),
    ({"url": "u", "path": "a", "md5": "abc"}, "md5 must be 32 hex digits"),
    ({"url": "u", "path": "../a"}, "no '..'"),
    ({"url": "u", "path": "a", "sha": "x"}, r"unknown key\(s\) \['sha'\]"),
    ({"url": "u", "path": "a.zip", "provides": ["a/b"]}, "provides needs unpack"),
    ({"url": "u", "path": "a.rar", "unpack": "rar"}, "unpack must be one of"),
    ({"url": "u", "path": "a", "size": "big"}, "size must be a number of bytes"),
])
def test_bad_file_declarations_name_dataset_and_key(file, message):
    manifest = {"datasets": {"d": {"plugin": "p", "task": "t", "files": [file]}}}
    with pytest.raises(ZooError, match=r"m\.toml: \[datasets\.d\] " + (message if message.startswith("files") else "files.*" + message)):
        Catalogue().add_manifest(manifest, origin="m.toml")


def test_fashion_mnist_declares_the_published_md5s():
    from zoo.plugins.datasets import idx

    entry = load_catalogue().dataset("fashion-mnist")
    declared = {Path(f.path).name: f.md5 for f in entry.files}
    # zalandoresearch/fashion-mnist README, "Get the Data"
    assert declared == {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
    assert set(declared) == set(idx.FILES)  # what the loader reads
    assert all(f.checksum_source and f.path.startswith("fashion-mnist/") for f in entry.files)


# -- zoo train ---------------------------------------------------------------------------------


def _idx(data, dims: tuple[int, ...]) -> bytes:
    """An unsigned-byte IDX file, gzipped as Fashion-MNIST is distributed."""
    import numpy as np

    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return gzip.compress(header + np.asarray(data, dtype=np.uint8).tobytes())


@pytest.fixture
def tiny_fashion_mnist(server, cache, monkeypatch):
    """Fashion-MNIST declared with 40 + 20 tiny images on the local server, and its loader going
    through ``core.data.locate`` (as every public loader does), so a missing copy raises
    ``DataNotFound('fashion-mnist')``."""
    import numpy as np
    from zoo.core.contract.plugins import get_zoo
    from zoo.plugins.datasets import fashion_mnist

    rng = np.random.default_rng(0)
    files = []
    for split, n in (("train", 40), ("t10k", 20)):
        labels = rng.integers(0, 10, n)
        images = (labels[:, None, None] * 25 + rng.integers(0, 5, (n, 28, 28))).clip(0, 255)
        for kind, data, dims in (("images-idx3", images, (n, 28, 28)), ("labels-idx1", labels, (n,))):
            body = _idx(data, dims)
            files.append(served(server, f"fashion-mnist/{split}-{kind}-ubyte.gz", body,
                                md5=hashlib.md5(body).hexdigest(), sha256=""))
    entry = load_catalogue().dataset("fashion-mnist")
    # system=(): as on a machine without Debian's package (locate would find its real copy)
    monkeypatch.setitem(load_catalogue().datasets, "fashion-mnist",
                        dataclasses.replace(entry, files=tuple(files), system=()))

    def loader(options, data_dir):
        root = locate("fashion-mnist", [f.path for f in files], data_dir)
        return fashion_mnist.load_fashion_mnist(options, str(root))

    spec = get_zoo().registry.datasets["fashion-mnist"]
    monkeypatch.setitem(get_zoo().registry.datasets, "fashion-mnist", dataclasses.replace(spec, loader=loader))
    return server


def _train(tmp_path, *extra):
    return cli("train", "softmax", "--epochs", "1", "--no-export", "-q", "--device", "cpu",
               "--out", str(tmp_path / "run"), "--set", "data.val_fraction=0.25", *extra)


@pytest.mark.slow
def test_train_offline_never_touches_the_network(tiny_fashion_mnist, cache, tmp_path, monkeypatch):
    one_line_error(_train(tmp_path, "--offline"), "'fashion-mnist'", "zoo data fetch fashion-mnist")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    one_line_error(_train(tmp_path), "zoo data fetch fashion-mnist")
    assert tiny_fashion_mnist.requests == [] and files_under(cache) == []
    assert not (tmp_path / "run").exists()  # nothing written before the data loaded


@pytest.mark.slow
def test_train_fetches_what_is_missing_then_trains(tiny_fashion_mnist, cache, tmp_path):
    result = _train(tmp_path)
    assert result.exit_code == 0, result.output + result.stderr
    assert sorted(tiny_fashion_mnist.requests) == sorted(
        "/fashion-mnist/" + n for n in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    assert "fetching fashion-mnist/train-images-idx3-ubyte.gz" in result.stderr  # progress on stderr
    assert "softmax on fashion-mnist" in result.output
    assert len(files_under(cache)) == 5  # fashion-mnist/ and its four files
