"""Runner benchmark: workers × threads on a fixed small spec, Ray start-up and per-task overhead.

    python benchmarks/bench_runner.py              # about 15 minutes on 2 CPU cores
    python benchmarks/bench_runner.py --max-workers 8   # on a bigger machine

The spec is fixed: synthfaces ``quick``, four fixed encoders (identity, Gaussian blur,
pixelation, 16×16 low resolution) × face vs no-face and face-ID (small CNN), short budgets.
Every configuration runs the same 8 cells from an empty store and an empty artifact cache (the
generated dataset is built once beforehand and shared, so it is not timed), one after the other
in this process, ``--repeats`` rounds interleaved (medians printed: a shared machine's slow
spells hit every configuration alike), and prints:

1. ``1 worker × all threads`` vs ``N workers × 1 thread`` (the cores split between workers):
   the default (``--cpus-per-cell 2``, ``--workers`` = cores ÷ 2) must be the faster here;
2. scaling N = 1, 2, 4, … up to the cores: speed-up over N = 1 (target ≥ 0.8·N where the
   machine has the cores);
3. Ray start-up (a private local instance) and the per-task overhead of an empty task, Ray vs
   in process;
4. whether the runs with equal threads per cell stored bit-identical metrics.

Nothing else may compute on the machine while this runs (the figures are wall times).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import privbench
from privbench.api.evaluation import Progress
from privbench.engine import ExecutionConfig, TaskResources, open_engine
from privbench.engine.config import available_cpus
from privbench.engine.events import Reporter

SPEC = {
    "name": "runner-benchmark",
    "version": "1",
    "dataset": {"name": "synthfaces", "config": {"preset": "quick", "seed": 0}},
    "encoders": [
        "identity",
        {"name": "gaussian-blur", "config": {"sigma_px": 2.0}},
        {"name": "pixelate", "config": {"block_px": 8}},
        {"name": "low-res", "config": {"size_px": 16}},
    ],
    "tasks": [{"name": "face-vs-noface", "config": {"training": {"epochs": 2}}}],
    "attacks": [{"name": "face-id", "config": {"model": "small-cnn", "training": {"epochs": 3}}}],
    "seeds": [0],
    "sample_encoder_inputs": 0,
}


def empty_task(resources, reporter, engine_name):
    return None


def run_configuration(root: Path, datasets: Path, name: str, workers: int, cpus: int):
    """One run of the spec from an empty store and cache; (wall s, cell metrics by key)."""
    cache = root / f"cache-{name}"
    cache.mkdir()
    (cache / "datasets").symlink_to(datasets)
    started = time.perf_counter()
    report = privbench.run(
        SPEC,
        out_dir=root / f"out-{name}",
        cache_dir=cache,
        workers=workers,
        cpus_per_cell=cpus,
        render=False,
        report=True,
    )
    wall = time.perf_counter() - started
    if report.failures:
        raise SystemExit(f"{name}: cells failed: {report.failures}")
    metrics = {row.cell_key: row.metrics for row in report.results.itertuples()}
    cell_seconds = float(report.results["wall_time_s"].sum())
    return wall, metrics, cell_seconds


def median_run(runs: list[tuple[float, dict, float]]) -> tuple[float, dict, float]:
    """The run with the median wall time (its metrics and cell seconds with it)."""
    return sorted(runs, key=lambda run: run[0])[len(runs) // 2]


def task_overhead(workers: int, tasks: int) -> tuple[float, float]:
    """(start-up s, seconds per empty task) of the engine ``workers`` selects."""
    config = ExecutionConfig(workers=workers)
    started = time.perf_counter()
    engine = open_engine(
        config,
        device="cpu",
        cache_root=Path(tempfile.gettempdir()),
        progress=Progress(),
        log=lambda message: None,
        sink=Reporter(),
    )
    with engine:
        startup = time.perf_counter() - started
        resources = TaskResources()
        for _ in range(workers):  # warm the workers
            engine.submit(empty_task, (), resources, "warm-up")
        while engine.pending:
            engine.wait()
        started = time.perf_counter()
        for _ in range(tasks):
            engine.submit(empty_task, (), resources, "empty")
        while engine.pending:
            engine.wait()
        per_task = (time.perf_counter() - started) / tasks
    return startup, per_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-workers", type=int, default=available_cpus())
    parser.add_argument("--tasks", type=int, default=200, help="empty tasks for the overhead")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds; each runs every configuration once, interleaved (medians are printed)",
    )
    args = parser.parse_args()
    cores = available_cpus()
    print(f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"machine: {platform.machine()}, {cores} usable cores, {platform.platform()}")
    print(f"python {platform.python_version()}, privbench {privbench.__version__}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}\n")

    root = Path(tempfile.mkdtemp(prefix="privbench-bench-runner-"))
    try:
        datasets = root / "datasets"
        privbench.load_dataset("synthfaces", {"preset": "quick", "seed": 0}, cache_dir=datasets)
        counts = [1]
        while counts[-1] * 2 <= min(args.max_workers, cores):
            counts.append(counts[-1] * 2)
        plan = [("1x_all", 1, cores)] + [(f"{n}x1", n, 1) for n in counts]
        rounds: dict[str, list[tuple[float, dict, float]]] = {key: [] for key, _, _ in plan}
        for round_ in range(args.repeats):  # interleaved: a slow spell of the machine hits all
            for key, workers, cpus in plan:
                rounds[key].append(
                    run_configuration(root, datasets, f"{key}-{round_}", workers, cpus)
                )
        walls = {key: [run[0] for run in runs] for key, runs in rounds.items()}
        print("wall s of each round:", {k: [round(w, 1) for w in v] for k, v in walls.items()})
        results = {key: median_run(runs) for key, runs in rounds.items()}

        print(f"{'configuration':28s} {'wall s':>8s} {'cell s':>8s} {'mean cell s':>12s}")
        rows = [(f"1 worker x {cores} threads", "1x_all")]
        rows += [(f"{n} worker(s) x 1 thread", f"{n}x1") for n in counts]
        for label, key in rows:
            wall, metrics, cells = results[key]
            print(f"{label:28s} {wall:8.1f} {cells:8.1f} {cells / len(metrics):12.2f}")
        print(
            "(cell s: the cells' own wall times summed; the rest of a run's wall time is the "
            "dataset load, planning, Ray start-up and idle workers at the end)"
        )
        split = f"{cores}x1" if f"{cores}x1" in results else f"{counts[-1]}x1"
        ratio = results["1x_all"][0] / results[split][0]
        workers = split.replace("x1", "")
        print(f"\n1 worker x all threads ÷ {workers} workers x 1 thread: {ratio:.2f}")
        os.environ.pop("PRIVBENCH_WORKERS", None)
        default = ExecutionConfig()
        workers = default.resolved_workers("cpu")
        faster = (
            f"{split.replace('x1', '')} workers x 1 thread"
            if ratio > 1
            else (f"1 worker x {cores} threads")
        )
        print(
            f"default on this machine: {workers} worker(s) x {default.cpus_per_cell} threads; "
            f"faster here: {faster}"
        )
        base, _, base_cells = results["1x1"]
        for n in counts[1:]:
            wall, _, cells = results[f"{n}x1"]
            print(
                f"speed-up N={n}: {base / wall:.2f} (target ≥ {0.8 * n:.1f}); a cell takes "
                f"{cells / base_cells:.2f}x as long when {n} run at once"
            )
        same = all(run[1] == rounds["1x1"][0][1] for n in counts for run in rounds[f"{n}x1"])
        print(f"metrics bit-identical across N workers x 1 thread: {same}")

        startup, ray_task = task_overhead(2, args.tasks)
        _, local_task = task_overhead(1, args.tasks)
        print(f"\nRay start-up (local instance, 2 workers): {startup:.2f} s")
        print(f"per empty task: Ray {ray_task * 1e3:.2f} ms, in process {local_task * 1e6:.1f} µs")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
