"""Load test of `zoo serve` on loopback: throughput and latency with and without dynamic batching,
and against a peer server (MLServer) serving the same ONNX model.

Trains (or reuses) a small model, starts two `zoo serve` processes on free 127.0.0.1 ports,
batching off (`--max-batch 1`) and the default batching, then for each concurrency (1, 8 and 32
clients unless `--concurrency` is given) sends a bounded number of requests to one and then the
other, `--repeats` times, checks every answer against onnxruntime, and prints medians. Only
loopback traffic; the loop stops by itself.

    python benchmarks/serve_load.py [--requests 3000] [--concurrency N ...] [--repeats 3] [--model mlp|cnn]
                                    [--run RUN_DIR] [--client raw|triton|json] [--also-delay-ms MS ...]
                                    [--peer mlserver [--peer-batch N]] [--body binary|json]

Goals: the default within 10 % of batching off at one client, >= 1.8x batching off at 32 clients,
and its p99 latency no worse than batching off at any concurrency.

``--peer mlserver``: also MLServer 1.7.1 with a minimal onnxruntime runtime
(benchmarks/mlserver/runtime.py, the same session options), tuned as its docs allow (no access
log, no gzip, no metrics, inference in the server process, uvloop and httptools), started from
its own virtual environment (``benchmarks/.venv-mlserver``, or ``--mlserver-python``; see
benchmarks/mlserver/README.md). Every server then gets the same pre-encoded JSON-tensor requests
(MLServer's REST API has no binary tensors). Without MLServer the peer is skipped with a message
and the zoo rows are still measured. Goal: zoo >= 1.5x MLServer's requests/s at equal or lower p99.

Every load run's p99 moves with scheduling: ``--max-batch 1`` runs two identical servers (an A/A
run), whose per-round p99 differences show this machine's resolution; the p99 goal line gives the
paired per-round differences and their bootstrap interval next to the medians' verdict.

Also reported: the server process's CPU time per request (from /proc), steadier than throughput
when other work shares the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, requests: int, concurrency: int, inputs: list[np.ndarray], expected: list[np.ndarray],
               client_kind: str = "triton", body_kind: str = "binary"):
    """``concurrency`` clients share ``requests`` requests; returns (wall s, latencies, errors, wrong).

    ``raw``: requests encoded once, sent over one keep-alive HTTP/1.1 connection per client
    (what Triton's perf_analyzer does: the load generator should not need the CPU it measures),
    as binary tensors (``body_kind="binary"``) or JSON tensors (``"json"``, what every v2 server
    reads);
    ``triton``: the official ``tritonclient.http.aio`` client (aiohttp, binary tensors, as a Triton
    user would call it); ``json``: plain JSON tensors over httpx.
    """
    latencies: list[float] = []
    errors = 0
    wrong = 0
    counter = iter(range(requests))
    host, _, rest = url.removeprefix("http://").partition("/")
    model = rest.split("/")[2]

    async def triton_client(c) -> None:
        nonlocal errors, wrong
        from tritonclient.http.aio import InferInput

        for i in counter:
            x = inputs[i % len(inputs)]
            item = InferInput("x", list(x.shape), "FP32")
            item.set_data_from_numpy(x, binary_data=True)
            start = time.perf_counter()
            try:
                result = await c.infer(model, [item])
                latencies.append(time.perf_counter() - start)
                out = result.as_numpy(result.get_response()["outputs"][0]["name"])
                if not np.allclose(out.reshape(-1), expected[i % len(inputs)].reshape(-1), atol=1e-4):
                    wrong += 1
            except Exception:  # noqa: BLE001 - any failed request counts as an error
                errors += 1

    async def json_client(c) -> None:
        nonlocal errors, wrong
        import httpx

        for i in counter:
            x = inputs[i % len(inputs)]
            body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                "data": x.reshape(-1).tolist()}]}
            start = time.perf_counter()
            try:
                response = await c.post(url, json=body)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1
                    continue
                out = np.array(response.json()["outputs"][0]["data"], dtype=np.float32)
                if not np.allclose(out, expected[i % len(inputs)].reshape(-1), atol=1e-4):
                    wrong += 1
            except httpx.HTTPError:
                errors += 1

    if client_kind == "raw":
        encoded = [encode_request(x, f"/{rest}", host, body_kind) for x in inputs]
        wall, latencies, answers, errors = await raw_load(host, encoded, requests, concurrency)
        wrong = check_answers(answers, expected)
    elif client_kind == "triton":
        from tritonclient.http.aio import InferenceServerClient

        c = InferenceServerClient(host, conn_limit=concurrency)
        try:
            start = time.perf_counter()
            await asyncio.gather(*[triton_client(c) for _ in range(concurrency)])
            wall = time.perf_counter() - start
        finally:
            await c.close()
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as c:
            start = time.perf_counter()
            await asyncio.gather(*[json_client(c) for _ in range(concurrency)])
            wall = time.perf_counter() - start
    return wall, latencies, errors, wrong


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection, perf_analyzer style: the next request is written
    from the callback that completes the previous answer (no coroutine switch per request), and
    answers are kept as bytes, checked after the clock stops, so the load generator takes as
    little as it can of the CPU the server needs."""

    def __init__(self, shared: dict, done: asyncio.Future) -> None:
        self.shared, self.done, self.buffer, self.transport = shared, done, b"", None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        shared = self.shared
        i = next(shared["counter"], None)
        if i is None:
            self.transport.close()
            return
        self.index, self.start = i, time.perf_counter()
        self.transport.write(shared["encoded"][i % len(shared["encoded"])])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end]
        length = content_length(head)
        if len(self.buffer) < head_end + 4 + length:
            return
        body, self.buffer = self.buffer[head_end + 4:head_end + 4 + length], self.buffer[head_end + 4 + length:]
        self.shared["latencies"].append(time.perf_counter() - self.start)
        if head.startswith(b"HTTP/1.1 200"):
            self.shared["answers"].append((self.index, body))
        else:
            self.shared["errors"] += 1
        self._send()

    def connection_lost(self, exc) -> None:
        if exc is not None or self.buffer:
            self.shared["errors"] += 1
        if not self.done.done():
            self.done.set_result(None)


def content_length(head: bytes) -> int:
    """The Content-Length of a response head (0 when there is none)."""
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return 0


def run_async(coroutine):
    """``asyncio.run`` on uvloop when it is installed (a lighter load generator), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def raw_load(host: str, encoded: list[bytes], requests: int, concurrency: int):
    """``concurrency`` keep-alive connections share ``requests`` pre-encoded requests →
    (wall s, latencies, [(request index, answer body)], errors)."""
    loop = asyncio.get_running_loop()
    hostname, _, port = host.partition(":")
    shared = {"counter": iter(range(requests)), "encoded": encoded, "latencies": [], "answers": [], "errors": 0}
    finished = [loop.create_future() for _ in range(concurrency)]
    start = time.perf_counter()
    for done in finished:
        await loop.create_connection(lambda done=done: _RawConnection(shared, done), hostname, int(port))
    await asyncio.gather(*finished)
    wall = time.perf_counter() - start
    return wall, shared["latencies"], shared["answers"], shared["errors"]


def check_answers(answers: list[tuple[int, bytes]], expected: list[np.ndarray]) -> int:
    """How many answers (JSON output tensors) differ from onnxruntime's own outputs."""
    import json as _json

    wrong = 0
    for i, body in answers:
        try:
            out = np.asarray(_json.loads(body)["outputs"][0]["data"], dtype=np.float32)
            wrong += not np.allclose(out, expected[i % len(expected)].reshape(-1), atol=1e-4)
        except (ValueError, KeyError, IndexError):
            wrong += 1
    return wrong


def encode_request(x: np.ndarray, path: str, host: str, body_kind: str) -> bytes:
    """One infer request, head and body, ready to write to a socket."""
    import json as _json

    if body_kind == "json":
        body = _json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                        "data": x.reshape(-1).tolist()}]}).encode()
        head = "Content-Type: application/json\r\n"
    else:
        header = _json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                          "parameters": {"binary_data_size": x.nbytes}}]}).encode()
        body = header + x.astype(np.float32).tobytes()
        head = f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {len(header)}\r\n"
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body)


def wait_ready(proc: subprocess.Popen, port: int, what: str, log: Path | None = None) -> subprocess.Popen:
    """``proc`` once its v2 ready route answers 200 (at most 120 s)."""
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/models/model/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    why = log.read_text(errors="replace") if log is not None else proc.stderr.read()
    raise SystemExit(f"{what} did not start: {why[-3000:]}")


def run_server(run: Path, max_batch: int, port: int, threads: int | None = None,
               max_delay_ms: float = 2.0) -> subprocess.Popen:
    extra = ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", f"model={run}", "--port", str(port),
                             "--max-batch", str(max_batch), "--max-delay-ms", f"{max_delay_ms:g}", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return wait_ready(proc, port, "zoo serve")


MLSERVER_DIR = Path(__file__).resolve().parent / "mlserver"
MLSERVER_VENV = Path(__file__).resolve().parent / ".venv-mlserver"


def mlserver_python(given: str | None) -> tuple[str | None, str]:
    """(the interpreter that has MLServer, its version) or (None, why not)."""
    python = given or os.environ.get("ZOO_MLSERVER_PYTHON") or str(MLSERVER_VENV / "bin" / "python")
    if not Path(python).is_file():
        return None, (f"MLServer is not installed ({python} does not exist); see benchmarks/mlserver/README.md "
                      f"to install it in its own virtual environment")
    probe = subprocess.run([python, "-c", "import mlserver, onnxruntime; print(mlserver.__version__)"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        return None, f"MLServer is not installed in {python}: {probe.stderr.strip().splitlines()[-1:]}"
    return python, probe.stdout.strip()


def run_mlserver(python: str, run: Path, port: int, folder: Path, threads: int | None = None,
                 max_batch: int = 1, max_delay_ms: float = 2.0) -> subprocess.Popen:
    """MLServer serving ``run/model.onnx`` as ``model`` through benchmarks/mlserver/runtime.py, tuned:
    no access log (debug off), no gzip, no metrics server, inference in this process (no worker
    pool: a pipe per request costs more than this model), adaptive batching when ``max_batch`` > 1."""
    import json
    import shutil

    root = folder / f"mlserver-{port}"
    (root / "model").mkdir(parents=True)
    shutil.copy(MLSERVER_DIR / "runtime.py", root / "model" / "runtime.py")
    (root / "settings.json").write_text(json.dumps({
        "debug": False, "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
        "metrics_endpoint": None, "gzip_enabled": False, "parallel_workers": 0, "load_models_at_startup": True}))
    (root / "model" / "model-settings.json").write_text(json.dumps({
        "name": "model", "implementation": "runtime.OnnxRuntime",
        "parameters": {"uri": str((run / "model.onnx").resolve())},
        **({"max_batch_size": max_batch, "max_batch_time": max_delay_ms / 1000} if max_batch > 1 else {})}))
    env = {**os.environ, "ZOO_PEER_THREADS": str(threads or 0), "PYTHONPATH": str(root / "model")}
    log = root / "mlserver.log"  # a file, not a pipe nobody reads: a full pipe would stall the server
    with log.open("w") as sink:
        proc = subprocess.Popen([str(Path(python).parent / "mlserver"), "start", str(root)], cwd=root, env=env,
                                stdout=sink, stderr=subprocess.STDOUT, text=True)
    return wait_ready(proc, port, "MLServer", log)


def train_model(name: str, folder: Path) -> Path:
    """A small model to serve: the digits MLP (8x8 inputs, 128 hidden) or the Fashion-MNIST CNN."""
    from zoo.core import api

    run = folder / name
    if name == "mlp":
        api.train("mlp", options={"data": {"name": "digits"}, "train": {"epochs": 3, "progress": False},
                                  "model": {"hidden": [128]}}, out=str(run), log=None)
    else:  # weights do not matter for a load test: one short epoch on a slice of the data
        api.train("cnn", options={"data": {"limit": 2048}, "train": {"epochs": 1, "progress": False}},
                  out=str(run), log=None)
    return run


KEYS = ("requests_per_s", "p50_ms", "p99_ms", "max_ms", "server_cpu_ms", "client_cpu_ms", "mean_batch")


def measure(server: dict, concurrency: int, args, inputs, expected) -> dict:
    """One load run against a started server → its figures (zoo's counters read before and
    after, so several runs can share a server; a peer has none: mean batch n/a)."""
    import httpx

    port, pid = server["port"], server["proc"].pid
    url = f"http://127.0.0.1:{port}/v2/models/model/infer"
    stats_url = f"http://127.0.0.1:{port}/v2/models/model/stats"
    run_async(load(url, 200, concurrency, inputs, expected, args.client, args.body))  # warm-up

    def counts() -> tuple[int, int]:
        if server["kind"] != "zoo":
            return 0, 0
        s = httpx.get(stats_url).json()["model_stats"][0]
        return s["inference_count"], s["execution_count"]

    before = counts()
    gc.collect()  # the client's own collections (up to ~45 ms for a full one) stay out of the latencies
    gc.disable()
    server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
    try:
        wall, lat, errors, wrong = run_async(load(url, args.requests, concurrency, inputs, expected, args.client,
                                                    args.body))
    finally:
        gc.enable()
    client_cpu = (time.process_time() - client_cpu) / args.requests * 1e3
    if server_cpu is not None:
        server_cpu = (cpu_seconds(pid) - server_cpu) / args.requests * 1e3
    after = counts()
    lat_ms = sorted(x * 1e3 for x in lat) or [float("nan")]
    return {"requests_per_s": args.requests / wall, "p50_ms": statistics.median(lat_ms),
            "p99_ms": lat_ms[int(0.99 * (len(lat_ms) - 1))], "max_ms": lat_ms[-1], "latencies_ms": lat_ms, "errors": errors, "wrong": wrong,
            "server_cpu_ms": server_cpu, "client_cpu_ms": client_cpu,
            "mean_batch": (after[0] - before[0]) / max(after[1] - before[1], 1) if server["kind"] == "zoo" else None}


def combine(runs: list[dict]) -> dict:
    """Medians over the repeats (errors and wrong answers summed)."""
    out = {k: statistics.median(r[k] for r in runs) if all(r[k] is not None for r in runs) else None
           for k in KEYS}
    pooled = sorted(x for r in runs for x in r["latencies_ms"])
    return {**out, "p99_pooled_ms": pooled[int(0.99 * (len(pooled) - 1))], "round_p99_ms": [r["p99_ms"] for r in runs],
            "errors": sum(r["errors"] for r in runs), "wrong": sum(r["wrong"] for r in runs)}


def paired_interval(differences: list[float], draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """A 95 % bootstrap interval of the mean of the paired per-round differences (rounds taken as
    independent: slow drifts of the machine make it narrower than it should be, so it describes
    the spread of the rounds, not a verdict; an A/A run calibrates it)."""
    values = np.asarray(differences, dtype=np.float64)
    if len(values) < 2:
        return float("-inf"), float("inf")
    means = np.random.default_rng(seed).choice(values, (draws, len(values))).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def goals(rows: list[dict]) -> list[str]:
    """The issues' goals, each with its measured figure and whether it is met."""
    off = {r["concurrency"]: r for r in rows if r["kind"] == "zoo" and r["max_batch"] == 1 and not r["default"]}
    default = {r["concurrency"]: r for r in rows if r.get("default")}
    peer = {r["concurrency"]: r for r in rows if r["kind"] == "mlserver" and r["max_batch"] == 1}
    lines = []
    for c, goal in ((1, 0.9), (32, 1.8)):
        if c in off and c in default:
            ratio = statistics.median(default[c]["pair_ratios"])  # rounds are pairs measured back to back
            lines.append(f"{c} client(s): default / off throughput {ratio:.2f} (median of the rounds; goal >= {goal}): "
                         f"{'met' if ratio >= goal else 'NOT met'}")
    for c in sorted(set(off) & set(default)):
        a, b = default[c]["p99_ms"], off[c]["p99_ms"]
        rounds = [x - y for x, y in zip(default[c]["round_p99_ms"], off[c]["round_p99_ms"])]
        low, high = paired_interval(rounds)
        lines.append(f"{c} client(s): p99 default {a:.3f} ms vs off {b:.3f} ms (goal: no worse): "
                     f"{'met' if a <= b else 'NOT met'}; default - off per round: mean "
                     f"{statistics.fmean(rounds):+.3f} ms, bootstrap 95 % interval [{low:+.3f}, {high:+.3f}] ms "
                     f"(rounds {', '.join(f'{d:+.3f}' for d in rounds)}; an A/A run, --max-batch 1, shows how far "
                     f"two identical servers drift apart here); p99 of all rounds' requests "
                     f"{default[c]['p99_pooled_ms']:.3f} vs {off[c]['p99_pooled_ms']:.3f} ms")
    for c in sorted(set(peer) & set(default)):
        ratio = default[c]["requests_per_s"] / peer[c]["requests_per_s"]
        a, b = default[c]["p99_ms"], peer[c]["p99_ms"]
        lines.append(f"{c} client(s): zoo default / MLServer throughput {ratio:.2f} (goal >= 1.5), p99 {a:.2f} vs "
                     f"{b:.2f} ms (goal: no worse): {'met' if ratio >= 1.5 and a <= b else 'NOT met'}")
    return lines


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per load run")
    parser.add_argument("--concurrency", type=int, action="append",
                        help="concurrent clients; repeat for several (default: 1, 8 and 32)")
    parser.add_argument("--run", type=Path, help="A run directory with model.onnx (default: train --model).")
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                        help="mlp: 8x8 digits, 128 hidden (78 us per single-row call here); cnn: the small "
                             "Fashion-MNIST CNN (about 0.8 ms per single-row call, 0.3 ms per row at 32).")
    parser.add_argument("--client", choices=("raw", "triton", "json"), default="raw",
                        help="raw: pre-encoded requests over keep-alive connections (light, as perf_analyzer; "
                             "leaves the cores to the server); triton: tritonclient.http.aio with binary "
                             "tensors; json: httpx with JSON tensors.")
    parser.add_argument("--body", choices=("binary", "json"), default=None,
                        help="the raw client's tensors: binary (the binary data extension; default) or JSON "
                             "(the default with --peer, whose REST API reads JSON only)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over the servers, alternating (medians)")
    parser.add_argument("--threads", type=int, default=None,
                        help="zoo serve --threads (onnxruntime intra-op threads; default one per core); "
                             "the peer's runtime gets the same")
    parser.add_argument("--max-batch", type=int, default=32, help="--max-batch of the batching server")
    parser.add_argument("--max-delay-ms", type=float, default=2.0, help="--max-delay-ms of the batching server")
    parser.add_argument("--also-delay-ms", type=float, action="append", default=[],
                        help="also measure a batching server with this --max-delay-ms (repeatable; 0: "
                             "never hold a request back for company)")
    parser.add_argument("--peer", choices=("mlserver",), help="also measure this peer server on the same model")
    parser.add_argument("--peer-batch", type=int, default=0,
                        help="also the peer with its adaptive batching (max_batch_size N, max_batch_time "
                             "--max-delay-ms)")
    parser.add_argument("--mlserver-python", help="the interpreter of MLServer's virtual environment "
                                                  "(default: benchmarks/.venv-mlserver/bin/python)")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args()
    if args.body is None:
        args.body = "json" if args.peer else "binary"
    if args.peer and args.body != "json":
        parser.error("--peer sends JSON tensors to every server (MLServer's REST API has no binary tensors)")
    return args


def start_servers(args, run: Path, folder: Path) -> tuple[list[dict], str | None]:
    """The servers to compare, started: zoo off, zoo default, zoo at each --also-delay-ms, then the
    peer when asked for and installed → (servers, why the peer was skipped or None)."""
    configs = [(1, args.max_delay_ms), (args.max_batch, args.max_delay_ms),
               *((args.max_batch, d) for d in args.also_delay_ms)]
    servers = []
    for i, (max_batch, delay) in enumerate(configs):
        port = free_port()
        label = ("zoo, batching off (--max-batch 1)" if max_batch == 1 else
                 f"zoo{', default' if i == 1 else ''} (--max-batch {max_batch} --max-delay-ms {delay:g})")
        servers.append({"kind": "zoo", "label": label, "max_batch": max_batch, "max_delay_ms": delay,
                        "default": i == 1, "port": port,
                        "proc": run_server(run, max_batch, port, args.threads, delay)})
    skipped = None
    if args.peer == "mlserver":
        python, version = mlserver_python(args.mlserver_python)
        if python is None:
            skipped = version
            print(f"peer skipped: {skipped}", file=sys.stderr)
        for batch in ([1, args.peer_batch] if args.peer_batch > 1 else [1]) if python else []:
            port = free_port()
            label = f"MLServer {version}" + (f", adaptive batching ({batch}, {args.max_delay_ms:g} ms)"
                                             if batch > 1 else "")
            servers.append({"kind": "mlserver", "label": label, "max_batch": batch, "max_delay_ms": args.max_delay_ms,
                            "default": False, "port": port,
                            "proc": run_mlserver(python, run, port, folder, args.threads, batch, args.max_delay_ms)})
    return servers, skipped


def measure_all(servers: list[dict], concurrencies: list[int], args, inputs, expected) -> list[dict]:
    """Every server at every concurrency, ``args.repeats`` alternating rounds → one row each
    (medians, and each round's throughput over batching off in the same round)."""
    results: dict[tuple[int, int], list[dict]] = {}
    for round_ in range(args.repeats):  # each round: every concurrency, the servers one after the other,
        order = list(enumerate(servers))  # in reverse order every other round, so that no server
        if round_ % 2:                    # always runs first (a run after a busy one meets a warm CPU)
            order.reverse()
        for c in concurrencies:
            for i, server in order:
                results.setdefault((c, i), []).append(measure(server, c, args, inputs, expected))
    rows = []
    for c in concurrencies:
        off = results[(c, 0)]
        for i, server in enumerate(servers):
            pair_ratios = sorted(r["requests_per_s"] / o["requests_per_s"] for r, o in zip(results[(c, i)], off))
            rows.append({"concurrency": c, **{k: server[k] for k in ("kind", "label", "max_batch", "max_delay_ms",
                                                                     "default")},
                         **combine(results[(c, i)]), "pair_ratios": pair_ratios})
    return rows


def report(rows: list[dict], args, run: Path, feature_shape, skipped: str | None) -> None:
    print(f"zoo serve load: {args.requests} requests per run, model {run.name} (input {feature_shape}), "
          f"loopback, one batch row per request, client {args.client} ({args.body} tensors), {args.repeats} "
          f"alternating rounds (medians)")
    print(f"machine: {os.cpu_count()} cores shared by server and client; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if skipped:
        print(f"peer skipped: {skipped}")
    print("| clients | server | requests/s | p50 ms | p99 ms | max ms | server CPU ms/request | mean batch "
          "| errors | wrong answers | throughput / zoo off (each round) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cpu = f"{r['server_cpu_ms']:.3f}" if r["server_cpu_ms"] is not None else "n/a"
        batch = f"{r['mean_batch']:.1f}" if r["mean_batch"] is not None else "n/a"
        ratios = ", ".join(f"{x:.2f}" for x in r["pair_ratios"])
        print(f"| {r['concurrency']} | {r['label']} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} "
              f"| {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {cpu} | {batch} | {r['errors']} | {r['wrong']} | {ratios} |")
    for line in goals(rows):
        print(line)


def main() -> None:
    args = parse_args()
    concurrencies = args.concurrency or [1, 8, 32]
    from zoo.core.deploy.runtime import make_session

    tmp = tempfile.TemporaryDirectory()
    run = args.run or train_model(args.model, Path(tmp.name))
    session = make_session(run / "model.onnx")
    feature_shape = [d for d in session.get_inputs()[0].shape[1:]]
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, *feature_shape), dtype=np.float32) for _ in range(64)]
    expected = [session.run(None, {"x": x})[0] for x in inputs]
    servers: list[dict] = []
    try:
        servers, skipped = start_servers(args, run, Path(tmp.name))
        rows = measure_all(servers, concurrencies, args, inputs, expected)
    finally:
        for server in servers:
            server["proc"].terminate()
        for server in servers:
            server["proc"].wait(timeout=60)
    report(rows, args, run, feature_shape, skipped)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "requests": args.requests, "concurrency": concurrencies, "repeats": args.repeats, "model": run.name,
            "client": args.client, "body": args.body, "peer": args.peer, "peer_skipped": skipped,
            "loadavg": os.getloadavg(), "rows": rows, "goals": goals(rows)}))


if __name__ == "__main__":
    main()
