"""Model server throughput and latency: Predict with batches of 1, 32 and 256 windows.

The server runs in its own process (as in production); the client is the job's own
``ScoringClient`` (one channel, deadlines). The model is a dense autoencoder of the size
sensorwatch trains (S=16 -> 32 -> 4 -> 32 -> 16), exported as a SavedModel.

    .venv/bin/python bench/serving.py [--seconds 5 --threads 2]

Ends with one JSON line: {"windows_per_s", "p99_ms", "batch", ...}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# This file is bench/serving.py: as a script, its folder comes first on sys.path and
# would shadow the `serving` package it measures.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

S = 16


def export_model(path: Path) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class DenseAE(tf.Module):
        def __init__(self):
            super().__init__()
            dims = [S, 32, 4, 32, S]
            self.w = [tf.Variable(rng.normal(0, 0.3, (a, b)).astype(np.float32)) for a, b in zip(dims, dims[1:])]
            self.b = [tf.Variable(np.zeros(b, np.float32)) for b in dims[1:]]

        @tf.function(input_signature=[tf.TensorSpec([None, S], tf.float32, name="values")])
        def serve(self, values):
            h = values
            for i, (w, b) in enumerate(zip(self.w, self.b)):
                h = h @ w + b
                if i < len(self.w) - 1:
                    h = tf.nn.relu(h)
            err = tf.square(h - values)
            score = tf.reduce_mean(err, axis=1)
            thr = tf.fill(tf.shape(score), 1.0)
            return {"score": score, "threshold": thr, "is_anomaly": score > thr, "per_step_error": err}

    m = DenseAE()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})


def run_batch(client, batch: int, seconds: float, threads: int) -> dict:
    w = np.random.default_rng(batch).normal(0, 1, (batch, S)).astype(np.float32)
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker():
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            client.score("bench", w)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    for _ in range(20):
        client.score("bench", w)  # warm up
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    a = np.array(lat) * 1000
    return {
        "batch": batch,
        "requests": len(lat),
        "windows_per_s": round(len(lat) * batch / elapsed),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2, help="concurrent client threads")
    args = ap.parse_args()

    from sensorwatch.core.config import ServingConfig
    from sensorwatch.serving.client import ScoringClient
    from sensorwatch.serving.repository import ModelRepository
    from sensorwatch.stack import free_port

    base = Path(tempfile.mkdtemp(prefix="sw-serving-bench-"))
    repo = ModelRepository(base)
    repo.publish("bench", export_model)
    repo.register("bench")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sensorwatch.serving.server",
            "--port",
            str(port),
            "--model_config_file",
            str(repo.config_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = ScoringClient(
            ServingConfig(target=f"127.0.0.1:{port}", backoff_initial_s=0.2, backoff_max_s=0.5, deadline_s=10),
            attempts=100,
        )
        client.score("bench", np.zeros((1, S), np.float32))
        rows = [run_batch(client, b, args.seconds, args.threads) for b in (1, 32, 256)]
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"{'batch':>6} {'windows/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
    for r in rows:
        print(f"{r['batch']:>6} {r['windows_per_s']:>10,} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['requests']:>9}")
    best = max(rows, key=lambda r: r["windows_per_s"])
    print(f"batching gain (256 vs 1): {rows[2]['windows_per_s'] / rows[0]['windows_per_s']:.1f}x")
    print(
        json.dumps(
            {
                "windows_per_s": best["windows_per_s"],
                "p99_ms": best["p99_ms"],
                "batch": best["batch"],
                "by_batch": rows,
                "threads": args.threads,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
