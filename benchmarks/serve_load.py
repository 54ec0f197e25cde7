"""Load test of `zoo serve` on loopback: throughput and latency with and without dynamic batching.

Trains (or reuses) a small model, starts `zoo serve` on a free 127.0.0.1 port, sends a bounded
number of requests from N concurrent clients, checks every answer against onnxruntime, and prints
a table. Only loopback traffic; the loop stops by itself.

    python benchmarks/serve_load.py [--requests 5000] [--concurrency 32] [--repeats 3] [--model mlp|cnn] [--run RUN_DIR]
                                    [--client triton|json]

Also reported: the server process's CPU time per request (from /proc), steadier than throughput
when other work shares the cores.
"""

from __future__ import annotations

import argparse
import asyncio
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
               client_kind: str = "triton"):
    """``concurrency`` clients share ``requests`` requests; returns (wall s, latencies, errors, wrong).

    ``raw``: requests encoded once, sent over one keep-alive HTTP/1.1 connection per client
    (what Triton's perf_analyzer does: the load generator should not need the CPU it measures);
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

    async def raw_client() -> None:
        """perf_analyzer-style: requests encoded once up front (binary tensors), one keep-alive
        HTTP/1.1 connection per client, responses parsed with the standard library."""
        nonlocal errors, wrong
        import json as _json

        hostname, _, port = host.partition(":")
        reader, writer = await asyncio.open_connection(hostname, int(port))
        try:
            for i in counter:
                request = encoded[i % len(encoded)]
                start = time.perf_counter()
                try:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    body = await reader.readexactly(length)
                    latencies.append(time.perf_counter() - start)
                    if not head.startswith(b"HTTP/1.1 200"):
                        errors += 1
                        continue
                    out = np.asarray(_json.loads(body)["outputs"][0]["data"], dtype=np.float32)
                    if not np.allclose(out, expected[i % len(inputs)].reshape(-1), atol=1e-4):
                        wrong += 1
                except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                    errors += 1
        finally:
            writer.close()

    if client_kind == "raw":
        import json as _json

        encoded = []
        for x in inputs:
            header = _json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                              "parameters": {"binary_data_size": x.nbytes}}]}).encode()
            body = header + x.astype(np.float32).tobytes()
            encoded.append(f"POST /{rest} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
                           f"Inference-Header-Content-Length: {len(header)}\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        start = time.perf_counter()
        await asyncio.gather(*[raw_client() for _ in range(concurrency)])
        wall = time.perf_counter() - start
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


def run_server(run: Path, max_batch: int, port: int, threads: int | None = None) -> subprocess.Popen:
    extra = ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", f"model={run}", "--port", str(port),
                             "--max-batch", str(max_batch), "--max-delay-ms", "2", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--run", type=Path, help="A run directory with model.onnx (default: train --model).")
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                        help="mlp: 8x8 digits, 128 hidden (78 us per single-row call here); cnn: the small "
                             "Fashion-MNIST CNN (about 0.8 ms per single-row call, 0.3 ms per row at 32).")
    parser.add_argument("--client", choices=("raw", "triton", "json"), default="raw",
                        help="raw: pre-encoded binary-tensor requests over keep-alive connections (light, as "
                             "perf_analyzer; leaves the cores to the server); triton: tritonclient.http.aio "
                             "with binary tensors; json: httpx with JSON tensors.")
    parser.add_argument("--repeats", type=int, default=3, help="off/on pairs, alternating (medians reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="zoo serve --threads (onnxruntime intra-op threads; default one per core)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="--max-batch of the batching server (below the concurrency, two batches overlap: "
                             "one in onnxruntime while the event loop answers the other)")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args()
    from zoo.core.runtime import make_session

    tmp = tempfile.TemporaryDirectory()
    run = args.run
    if run is None:
        from zoo.core import api

        run = Path(tmp.name) / args.model
        if args.model == "mlp":
            api.train("mlp", options={"data": {"name": "digits"}, "train": {"epochs": 3, "progress": False},
                                      "model": {"hidden": [128]}}, out=str(run), log=None)
        else:  # weights do not matter for a load test: one short epoch on a slice of the data
            api.train("cnn", options={"data": {"limit": 2048}, "train": {"epochs": 1, "progress": False}},
                      out=str(run), log=None)
    session = make_session(run / "model.onnx")
    feature_shape = [d for d in session.get_inputs()[0].shape[1:]]
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, *feature_shape), dtype=np.float32) for _ in range(64)]
    expected = [session.run(None, {"x": x})[0] for x in inputs]
    def measure(max_batch: int) -> tuple:
        port = free_port()
        proc = run_server(run, max_batch, port, args.threads)
        try:
            url = f"http://127.0.0.1:{port}/v2/models/model/infer"
            asyncio.run(load(url, 200, args.concurrency, inputs, expected, args.client))  # warm-up
            server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
            wall, lat, errors, wrong = asyncio.run(load(url, args.requests, args.concurrency, inputs, expected,
                                                        args.client))
            client_cpu = (time.process_time() - client_cpu) / args.requests * 1e3
            import httpx

            counts = httpx.get(f"http://127.0.0.1:{port}/v2/models/model/stats").json()["model_stats"][0]
            mean_batch = counts["inference_count"] / max(counts["execution_count"], 1)
            if server_cpu is not None:
                server_cpu = (cpu_seconds(proc.pid) - server_cpu) / args.requests * 1e3
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        lat_ms = sorted(x * 1e3 for x in lat)
        return (max_batch, args.requests / wall, statistics.median(lat_ms),
                lat_ms[int(0.99 * (len(lat_ms) - 1))], errors, wrong, server_cpu, client_cpu, mean_batch)

    # Off and on alternate, ``--repeats`` times; each figure is the median over the repeats
    # (errors and wrong answers are summed), and so is the ratio of each pair.
    pairs = [(measure(1), measure(args.max_batch)) for _ in range(args.repeats)]
    ratios = sorted(on[1] / off[1] for off, on in pairs)

    def combine(runs: list[tuple]) -> tuple:
        cpu = [r[6] for r in runs if r[6] is not None]
        return (runs[0][0], *(statistics.median(r[i] for r in runs) for i in (1, 2, 3)),
                sum(r[4] for r in runs), sum(r[5] for r in runs), statistics.median(cpu) if cpu else None,
                *(statistics.median(r[i] for r in runs) for i in (7, 8)))

    rows = [combine([p[0] for p in pairs]), combine([p[1] for p in pairs])]
    print(f"zoo serve load: {args.requests} requests, {args.concurrency} concurrent clients, model {run.name} "
          f"(input {feature_shape}), loopback, one batch row per request, client {args.client}")
    print(f"machine: {os.cpu_count()} cores shared by server and client")
    print("| dynamic batching | requests/s | p50 ms | p99 ms | server CPU ms/request | client CPU ms/request "
          "| mean batch | errors | wrong answers |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for max_batch, rps, p50, p99, errors, wrong, cpu, client, mean_batch in rows:
        label = "off (--max-batch 1)" if max_batch == 1 else f"on (--max-batch {max_batch}, 2 ms)"
        shown = f"{cpu:.3f}" if cpu is not None else "n/a"
        print(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {shown} | {client:.3f} | {mean_batch:.1f} | {errors} | {wrong} |")
    print(f"throughput ratio on/off = {rows[1][1] / rows[0][1]:.2f} (medians of {args.repeats} alternating runs; "
          f"ratio of each pair: {', '.join(f'{r:.2f}' for r in ratios)}; goal >= 2)")
    if rows[0][6] and rows[1][6]:
        print(f"server CPU per request off/on = {rows[0][6] / rows[1][6]:.2f} "
              "(the steadier figure when the client shares the machine's cores)")
    if args.json:
        import json

        keys = ("max_batch", "requests_per_s", "p50_ms", "p99_ms", "errors", "wrong", "server_cpu_ms",
                "client_cpu_ms", "mean_batch")
        Path(args.json).write_text(json.dumps({"requests": args.requests, "concurrency": args.concurrency,
                                               "repeats": args.repeats, "pair_ratios": ratios,
                                               "model": run.name, "client": args.client,
                                               "rows": [dict(zip(keys, row)) for row in rows]}))


if __name__ == "__main__":
    main()
