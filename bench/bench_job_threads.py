"""Training throughput of two 1-thread jobs side by side against one 2-thread job.

The choice behind ``cpu_threads: 1`` (config/README): on a 2-core machine Snakemake can run
either one training job on both cores or two jobs on one core each.

Target: two processes started together, each on one thread (``use_threads(1)``), each training
the same run for the same steps. Baseline: one process on two threads, the same run and steps,
measured in the same run of this bench. Each process is a real job's trainer
(``bench_trainer.run_trainer``: loader thread, checks, logging) on the run's own settings from
``config/config.yaml`` (net, method, batch, ``precision``, ``channels_last``), shortened to one
timed call, on a synthetic 56x48 shard written once. Each process times its loop after a few
warm-up steps; a pair's rate is the sum of its two rates (they run side by side throughout, as
``overlap`` shows: the share of the longer call the shorter one covered). ``ratio`` = pair
img/s / single img/s: above 1, two 1-thread jobs train more images per second than one 2-thread
job. Rounds alternate single and pair so that drifting load hits both; the best single and the
best pair count, and every round's two rates are in ``rounds``.

OpenMP keeps its default wait policy in every process, as in a workflow job.

Run from the repository root: ``python bench/bench_job_threads.py [--quick]``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import parse_args, report  # noqa: E402

RUNS = ("softmax", "facenet", "deepid2plus", "compact_32x1")


def worker(run_name: str, threads: int, shard: Path, work: Path, steps: int, warmup: int,
           batch: int | None) -> None:
    """One job: train ``run_name`` for ``steps`` on ``threads`` threads; print its figures."""
    from facerepro.threads import use_threads

    use_threads(threads)
    import torch  # noqa: F401  loaded before bench_trainer sets a passive OpenMP wait policy

    from facerepro.config import load

    bt = importlib.import_module("bench_trainer")

    run = bt.shortened(load(bt.DEFAULT_CONFIG)["runs"][run_name], steps, batch)
    start = time.time()
    result = bt.run_trainer(run, shard, work, warmup)
    print(json.dumps({"img_s": result["steps_per_s"] * run["batch_size"], "start": start,
                      "end": time.time(), "precision": result["precision"]}))


def jobs(run_name: str, threads: int, copies: int, shard: Path, work: Path, steps: int,
         warmup: int, batch: int | None) -> list[dict]:
    """``copies`` worker processes started together; their figures once all have ended."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--worker", run_name, str(threads), str(shard),
         str(work / f"{run_name}-{threads}t-{k}-{time.monotonic_ns()}"), str(steps),
         str(warmup), str(batch or 0)], stdout=subprocess.PIPE, text=True, env=env)
        for k in range(copies)]
    outs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a {run_name} worker failed: {outs}")
    return [json.loads(out.splitlines()[-1]) for out in outs]


def overlap(pair: list[dict]) -> float:
    """Share of the longer call's wall time that the other call ran alongside it."""
    shared = min(p["end"] for p in pair) - max(p["start"] for p in pair)
    return max(shared, 0.0) / max(p["end"] - p["start"] for p in pair)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        name, threads, shard, work, steps, warmup, batch = sys.argv[2:]
        worker(name, int(threads), Path(shard), Path(work), int(steps), int(warmup),
               int(batch) or None)
        return
    args = parse_args(__doc__.splitlines()[0])
    import bench_trainer as bt

    quick = {"runs": RUNS[:1], "steps": 4, "warmup": 1, "rounds": 1, "batch": 16,
             "n_images": 64, "n_ids": 8}
    full = {"runs": RUNS, "steps": 40, "warmup": 5, "rounds": 2, "batch": None,
            "n_images": 3_000, "n_ids": 100}
    s = quick if args.quick else full
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_job_threads_") as tmp:
        shard = bt.make_shard(Path(tmp) / "shard", s["n_images"], s["n_ids"])
        for name in s["runs"]:
            rounds = []
            for _ in range(s["rounds"]):
                [single] = jobs(name, 2, 1, shard, Path(tmp), s["steps"], s["warmup"],
                                s["batch"])
                pair = jobs(name, 1, 2, shard, Path(tmp), s["steps"], s["warmup"], s["batch"])
                rounds.append({"single_img_s": single["img_s"],
                               "pair_img_s": sum(p["img_s"] for p in pair),
                               "overlap": overlap(pair), "precision": single["precision"]})
            single_img_s = max(r["single_img_s"] for r in rounds)
            pair = max(rounds, key=lambda r: r["pair_img_s"])
            rows.append({"run": name, "precision": pair["precision"],
                         "single_img_s": single_img_s, "pair_img_s": pair["pair_img_s"],
                         "ratio": pair["pair_img_s"] / single_img_s, "overlap": pair["overlap"],
                         "rounds": [[round(r["single_img_s"]), round(r["pair_img_s"])]
                                    for r in rounds]})
    report("job_threads", rows, args.out)


if __name__ == "__main__":
    main()
