"""Load test of `zoo serve` on loopback: throughput and latency with and without dynamic batching.

Trains (or reuses) a small model, starts `zoo serve` on a free 127.0.0.1 port, sends a bounded
number of requests from N concurrent clients, checks every answer against onnxruntime, and prints
a table. Only loopback traffic; the loop stops by itself.

    python benchmarks/serve_load.py [--requests 5000] [--concurrency 32] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, requests: int, concurrency: int, inputs: list[np.ndarray], expected: list[np.ndarray]):
    import httpx

    latencies: list[float] = []
    errors = 0
    wrong = 0
    counter = iter(range(requests))

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal errors, wrong
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

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as c:
        start = time.perf_counter()
        await asyncio.gather(*[client(c) for _ in range(concurrency)])
        wall = time.perf_counter() - start
    return wall, latencies, errors, wrong


def run_server(run: Path, max_batch: int, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", f"model={run}", "--port", str(port),
                             "--max-batch", str(max_batch), "--max-delay-ms", "2"],
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
    parser.add_argument("--run", type=Path, help="A run directory with model.onnx (default: train mlp on digits).")
    args = parser.parse_args()
    from zoo.core.runtime import make_session

    tmp = tempfile.TemporaryDirectory()
    run = args.run
    if run is None:
        from zoo.core import api

        run = Path(tmp.name) / "mlp"
        api.train("mlp", options={"data": {"name": "digits"}, "train": {"epochs": 3, "progress": False},
                                  "model": {"hidden": [128]}}, out=str(run), log=None)
    session = make_session(run / "model.onnx")
    feature_shape = [d for d in session.get_inputs()[0].shape[1:]]
    rng = np.random.default_rng(0)
    inputs = [rng.random((1, *feature_shape), dtype=np.float32) for _ in range(64)]
    expected = [session.run(None, {"x": x})[0] for x in inputs]
    rows = []
    for max_batch in (1, 32):
        port = free_port()
        proc = run_server(run, max_batch, port)
        try:
            url = f"http://127.0.0.1:{port}/v2/models/model/infer"
            asyncio.run(load(url, 200, args.concurrency, inputs, expected))  # warm-up
            wall, lat, errors, wrong = asyncio.run(load(url, args.requests, args.concurrency, inputs, expected))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        lat_ms = sorted(x * 1e3 for x in lat)
        rows.append((max_batch, args.requests / wall, statistics.median(lat_ms),
                     lat_ms[int(0.99 * (len(lat_ms) - 1))], errors, wrong))
    print(f"zoo serve load: {args.requests} requests, {args.concurrency} concurrent clients, model {run.name} "
          f"(input {feature_shape}), loopback, one batch row per request")
    print("| dynamic batching | requests/s | p50 ms | p99 ms | errors | wrong answers |")
    print("| --- | --- | --- | --- | --- | --- |")
    for max_batch, rps, p50, p99, errors, wrong in rows:
        label = "off (--max-batch 1)" if max_batch == 1 else f"on (--max-batch {max_batch}, 2 ms)"
        print(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {errors} | {wrong} |")
    print(f"throughput ratio on/off = {rows[1][1] / rows[0][1]:.2f} (goal >= 2)")


if __name__ == "__main__":
    main()
