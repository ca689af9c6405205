"""The two kinds of task a run is made of, as functions a worker runs: a designer fit and a cell.

Both engines call these same functions (``--workers 1`` in the driver's process, Ray in worker
processes), each inside :func:`task_environment`: the task's torch threads are its reserved CPUs,
and its random state is forked and seeded, so a task's numbers depend on the task alone — not on
the worker that ran it, nor on what that worker ran before (the determinism of issue 13: a run
with two workers stores the same bits as a run with one).

A cell's failure (an exception, or a metric that is not a finite number) comes back as a
:class:`CellReport` with its reason, so the driver records a failed row and the other cells go on.
A worker process that dies (``kill -9``, out of memory) is not an exception here: Ray reruns the
task, and the rerun resumes from the cell's epoch checkpoints in the shared artifact cache.
"""

from __future__ import annotations

import math
import random
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from privbench.api.cache import ArtifactCache
from privbench.api.designer import Designer
from privbench.api.encoder import Encoder
from privbench.api.errors import PrivbenchError
from privbench.api.evaluation import RunContext
from privbench.api.profiling import profiled
from privbench.data.containers import BenchmarkData
from privbench.engine.config import TaskResources
from privbench.engine.events import Reporter, worker_id
from privbench.runs.cells import Cell, dataset_view, evaluate_cell
from privbench.runs.rows import ResultRow, hardware


@contextmanager
def task_environment(resources: TaskResources, device: str, seed: int) -> Iterator[None]:
    """Run a task with ``resources.cpus`` torch threads and a forked random state seeded with
    ``seed`` (torch, numpy, random); both are restored afterwards, so the driver's process is
    left as it was when the task runs in it."""
    threads = torch.get_num_threads()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    torch.set_num_threads(resources.cpus)
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        torch.set_num_threads(threads)
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@dataclass
class CellReport:
    """What a cell task returns: its row, or the reason it failed, and who ran it."""

    key: str
    name: str
    row: ResultRow | None
    failure: str | None
    worker: str
    wall_time_s: float


def run_cell(
    cell: Cell, data: BenchmarkData, resources: TaskResources, reporter: Reporter, engine: str
) -> CellReport:
    """Evaluate ``cell`` on ``data`` (see module docstring); never raises for the cell's own
    errors."""
    worker = worker_id()
    reporter.started(cell.key, worker)
    log = reporter.logger(cell.key)
    started = time.perf_counter()
    row, failure = None, None
    try:
        with task_environment(resources, cell.device, cell.seed), profiled() as profile:
            row = evaluate_cell(cell, reporter.progress(cell.key), log, data=data)
        failure = non_finite_metrics(row.metrics)
    except PrivbenchError as error:
        failure = str(error)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # the other cells go on; this one is reported with its trace
        failure = f"{type(error).__name__}: {error}"
        log(f"cell {cell.name} failed:\n{traceback.format_exc()}")
    if row is not None:
        row.execution = {
            "engine": engine,
            "threads": resources.cpus,
            "worker": worker,
            **hardware(),
            "profile": profile.as_dict(),
        }
        if resources.gpus:
            row.execution["gpus"] = resources.gpus
    elapsed = time.perf_counter() - started
    return CellReport(cell.key, cell.name, None if failure else row, failure, worker, elapsed)


def non_finite_metrics(metrics: dict[str, float]) -> str | None:
    """The reason a cell whose metrics are not all finite numbers is a failure, not a result
    (a NaN loss leaves chance-level metrics or NaNs, which must never be ranked)."""
    bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
    if not bad:
        return None
    listed = ", ".join(f"{name}={value}" for name, value in sorted(bad.items()))
    return f"non-finite metric(s) {listed}: the evaluation's training diverged or was empty"


@dataclass
class FitJob:
    """One designer fit: the encoder entry's label, the encoder at its initial weights, its
    designer, the content key the fitted weights are cached under, and where to run."""

    label: str
    encoder: Encoder
    designer: Designer
    key: str
    data_source: str | None
    device: str
    cache_root: str
    #: Receives the designer's per-cycle metrics; only in the driver's process (tuning).
    report: Callable[[int, dict], None] | None = field(default=None, compare=False)


@dataclass
class FitReport:
    label: str
    key: str
    state: dict[str, torch.Tensor] | None
    history: Any
    failure: str | None
    worker: str
    wall_time_s: float
    #: Where the fit's time went (:func:`privbench.api.profiling.profiled`); empty when cached.
    profile: dict[str, dict[str, float]] = field(default_factory=dict)


def run_fit(
    job: FitJob, data: BenchmarkData, resources: TaskResources, reporter: Reporter, engine: str
) -> FitReport:
    """Fit ``job.encoder`` with its designer, or take the fitted weights from the cache; a
    second process asking for the same key waits for the first (the cache's per-key lock)."""
    worker = worker_id()
    task = f"fit:{job.key}"
    reporter.started(task, worker)
    started = time.perf_counter()
    cache = ArtifactCache(job.cache_root)

    def build() -> dict[str, Any]:
        ctx = RunContext(
            device=torch.device(job.device),
            seed=job.designer.config.seed,
            workdir=cache.root / "checkpoints" / f"design-{job.key}",
            progress=reporter.progress(task),
            log=reporter.logger(task),
            report=job.report or (lambda step, values: None),
        )
        view = dataset_view(data, job.data_source)
        history = job.designer.fit(job.encoder, view, ctx)
        state = {k: v.detach().cpu() for k, v in job.encoder.state_dict().items()}
        return {"state": state, "history": history}

    try:
        with (
            task_environment(resources, job.device, job.designer.config.seed),
            profiled() as profile,
        ):
            fitted = cache.get_or_build("fitted", job.key, build)
    except PrivbenchError as error:
        return FitReport(job.label, job.key, None, None, str(error), worker, 0.0)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # the encoder's cells fail with this reason; the others go on
        reporter.log(task, f"fit of {job.label} failed:\n{traceback.format_exc()}")
        reason = f"{type(error).__name__}: {error}"
        return FitReport(job.label, job.key, None, None, reason, worker, 0.0)
    elapsed = time.perf_counter() - started
    return FitReport(
        job.label,
        job.key,
        fitted["state"],
        fitted["history"],
        None,
        worker,
        elapsed,
        profile.as_dict(),
    )
