"""One tuning trial as a task of the engine, and the ask-and-tell driver that runs them.

:func:`run_trial` is the function a worker runs for a trial of ``privbench tune`` (a Ray worker,
or the driver's own process with ``--workers 1``: the same function). It runs the trial's spec —
the designer fit at the sampled α, then the task and attack cells — through an ordinary
:class:`~privbench.runs.runner.Runner` executing in process, against a :class:`RowCollector`
instead of the results store: the driver stays the store's only writer, and writes the rows the
report carries when it comes back. The pruning rule is applied in the worker, inside the
designer's report callback, because it only needs two settings (not Optuna): a trial whose
utility signal is below ``prune_below`` after ``prune_after`` cycles stops its fit there.

:class:`StudyDriver` is the driver's side (see :mod:`privbench.runs.tuning` for the study's
semantics: parallel trials, determinism, resumption).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import math
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from privbench.api.errors import PrivbenchError
from privbench.api.evaluation import Progress
from privbench.api.registry import ATTACKS, DATASETS, DESIGNERS, ENCODERS, TASKS
from privbench.engine import ExecutionConfig, TaskResources
from privbench.engine.events import Reporter, worker_id
from privbench.runs.progress import ProgressFactory
from privbench.runs.rows import ResultRow
from privbench.runs.spec import BenchmarkSpec, ComponentSpec
from privbench.runs.tuning import (
    HEARTBEAT_INTERVAL_S,
    UTILITY_SIGNALS,
    Heartbeats,
    TuneSettings,
    sample_encoder_config,
    trial_scores,
)

#: The columns of a result row, so that an empty collector still has them.
ROW_COLUMNS = [f.name for f in dataclasses.fields(ResultRow)]


def prune_reason(
    step: int, values: dict[str, float], prune_below: float | None, prune_after: int
) -> str | None:
    """Why a trial is hopeless after designer cycle ``step`` (its encoder already destroyed the
    task), or None while it may go on."""
    signal = next((values[k] for k in UTILITY_SIGNALS if k in values), None)
    if prune_below is None or signal is None or step < prune_after or signal >= prune_below:
        return None
    return f"utility validation accuracy {signal:.3f} < {prune_below} after {step} designer cycles"


class TrialPruned(PrivbenchError):
    """Raised in the designer's report callback to stop a hopeless trial's fit."""


@dataclass
class TrialJob:
    """Everything a worker needs to run one trial: its spec (the reference spec with the trial's
    encoder entry), where to run, the cells the store already holds, the pruning rule and the
    modules that register the components it names (a user's plugin is imported in the worker
    as it was in the driver)."""

    study: str
    trial: int
    spec: BenchmarkSpec
    device: str
    cache_root: str
    execution: ExecutionConfig
    stored: frozenset[str] = frozenset()
    prune_below: float | None = None
    prune_after: int = 2
    modules: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        """The display's task id."""
        return f"trial:{self.study}#{self.trial}"


@dataclass
class TrialReport:
    """What a trial task returns: the rows to store, the cell failures to record (arguments of
    ``ResultStore.record_failure``), the run's failures (fits included), every intermediate
    value, and why it was pruned or could not run."""

    trial: int
    rows: list[ResultRow] = field(default_factory=list)
    failures: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    run_failures: list[tuple[str, str]] = field(default_factory=list)
    intermediate: list[dict[str, float]] = field(default_factory=list)
    pruned: str | None = None
    error: str | None = None
    worker: str = ""
    wall_time_s: float = 0.0


class RowCollector:
    """The results-store interface the runner writes to, in memory: rows and failure records
    are kept for the driver to write; ``stored`` (the driver's stored keys) are skipped."""

    def __init__(self, stored: frozenset[str] | set[str] = frozenset()) -> None:
        self._keys = set(stored)
        self.rows: list[ResultRow] = []
        self.failures: list[tuple[str, str, str, str, str]] = []

    def cell_keys(self) -> set[str]:
        return set(self._keys)

    def add(self, row: ResultRow) -> bool:
        if row.cell_key in self._keys:
            return False
        self._keys.add(row.cell_key)
        self.rows.append(row)
        return True

    def record_failure(
        self, cell_key: str, cell_name: str, benchmark: str, benchmark_version: str, reason: str
    ) -> None:
        self.failures.append((cell_key, cell_name, benchmark, benchmark_version, reason))

    def dataframe(self, *, benchmark: str | None = None, study: str | None = None) -> pd.DataFrame:
        rows = [
            row.to_record()
            for row in self.rows
            if (benchmark is None or row.benchmark == benchmark)
            and (study is None or row.study == study)
        ]
        return pd.DataFrame.from_records(rows, columns=ROW_COLUMNS)


class _TaskProgress(ProgressFactory):
    """The runner's progress factory over a task's forwarded progress (a Ray worker's bars)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def __call__(self, total: int, description: str):
        return self._progress(total, description)


def run_trial(
    job: TrialJob, resources: TaskResources, reporter: Reporter, engine: str
) -> TrialReport:
    """Run one trial (see module docstring); never raises for the trial's own errors."""
    import torch

    from privbench.api.cache import ArtifactCache
    from privbench.runs.runner import Runner

    worker = worker_id()
    reporter.started(job.task, worker)
    log = reporter.logger(job.task)
    started = time.perf_counter()
    report = TrialReport(job.trial, worker=worker)

    def design_report(step: int, values: dict[str, float]) -> None:
        report.intermediate.append({"step": step, **values})
        reason = prune_reason(step, values, job.prune_below, job.prune_after)
        if reason is not None:
            report.pruned = reason
            raise TrialPruned(reason)

    progress = reporter.progress(job.task)
    if not isinstance(progress, ProgressFactory):
        progress = _TaskProgress(progress)
    collector = RowCollector(job.stored)
    try:
        for module in job.modules:
            importlib.import_module(module)
        run = Runner(
            job.spec,
            store=collector,
            device=torch.device(job.device),
            cache=ArtifactCache(job.cache_root),
            progress=progress,
            log=log,
            study=job.study,
            trial=job.trial,
            design_report=design_report,
            execution=job.execution,
        ).execute()
        report.run_failures = list(run.failures)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # the study goes on; this trial is told FAIL with the reason
        report.error = f"{type(error).__name__}: {error}"
        log(f"trial {job.trial} failed:\n{traceback.format_exc()}")
    report.rows, report.failures = collector.rows, collector.failures
    report.wall_time_s = time.perf_counter() - started
    return report


@dataclass
class StudyDriver:
    """Ask-and-tell: keeps up to ``workers`` trials in flight, sampling each one when a slot
    frees (so the sampler sees every trial finished so far), and tells each trial what its
    stored rows score."""

    settings: TuneSettings
    study: Any
    storage: Any
    engine: Any
    display: Any
    store: Any
    reference: BenchmarkSpec
    fingerprint: str
    device: str
    cache_root: str
    execution: ExecutionConfig
    log: Callable[[str], None]

    def run(self) -> None:
        import optuna

        name = self.settings.name
        finished = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        )
        done = sum(1 for t in self.study.trials if t.state in finished)
        remaining = max(0, self.settings.trials - done)
        if not remaining:
            asked = self.settings.trials
            self.log(f"study {name!r} already has {done} finished trials (asked for {asked})")
            return
        self._resources = self._trial_resources()
        self._modules = self._plugin_modules()
        parallel = self._parallel()
        self.log(
            f"study {name!r}: {done} trials finished, running {remaining} more "
            f"({parallel} at a time)"
        )
        in_flight: dict[int, tuple[Any, TrialJob]] = {}
        submitted = 0
        with Heartbeats(self.storage, HEARTBEAT_INTERVAL_S) as heartbeats:
            try:
                while submitted < remaining or in_flight:
                    while submitted < remaining and len(in_flight) < parallel:
                        trial, job = self._ask()
                        heartbeats.add(trial)
                        self.display.expect(job.task, f"trial #{trial.number}")
                        task_id = self.engine.submit(
                            run_trial, (job,), self._resources, f"trial {name} #{trial.number}"
                        )
                        in_flight[task_id] = (trial, job)
                        submitted += 1
                    for report in self.engine.wait():
                        trial, job = in_flight[report.task_id]
                        self.display.finished(job.task)
                        self._tell(trial, report.value, report.error)
                        del in_flight[report.task_id]
                        heartbeats.remove(trial)
                        gc.collect()
            except BaseException as error:  # Ctrl-C, a store error: no trial is left RUNNING
                self._abandon([trial for trial, _ in in_flight.values()], error)
                raise

    def _abandon(self, trials: list[Any], error: BaseException) -> None:
        """Fail the trials in flight when the driver stops on ``error``."""
        reason = f"the driver stopped before the trial finished ({type(error).__name__})"
        for trial in trials:
            try:
                self._fail(trial, reason)
            except Exception:  # told meanwhile, or the storage is what failed: the next
                pass  # start fails it as left running (no heartbeat)

    def _ask(self) -> tuple[Any, TrialJob]:
        """A new trial with its α and tunables sampled here, in the driver."""
        import optuna

        settings = self.settings
        with warnings.catch_warnings():  # the driver records the heartbeats itself (Heartbeats)
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            trial = self.study.ask()
        try:
            alpha = 10 ** trial.suggest_float(
                "log10_alpha", math.log10(settings.alpha_min), math.log10(settings.alpha_max)
            )
            trial.set_user_attr("alpha", alpha)
            encoder_config = sample_encoder_config(trial, ENCODERS.get(settings.encoder))
        except Exception as error:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        entry = ComponentSpec(
            name=settings.encoder,
            config=encoder_config,
            label=f"{settings.encoder} [{settings.name} #{trial.number}]",
            designer=ComponentSpec(
                name=settings.designer, config={**(settings.designer_config or {}), "alpha": alpha}
            ),
        )
        job = TrialJob(
            study=settings.name,
            trial=trial.number,
            spec=self.reference.model_copy(update={"encoders": [entry]}),
            device=self.device,
            cache_root=self.cache_root,
            execution=self.execution.model_copy(update={"workers": 1, "address": None}),
            stored=frozenset(self.store.cell_keys()),
            prune_below=settings.prune_below,
            prune_after=settings.prune_after,
            modules=self._modules,
        )
        return trial, job

    def _tell(self, trial: Any, report: TrialReport | None, error: str | None) -> None:
        """Store the trial's rows (the driver is the store's only writer), then tell Optuna."""
        import optuna

        if report is None:
            return self._fail(trial, error or "the trial's task returned no report")
        duplicates = sum(not self.store.add(row) for row in report.rows)
        if duplicates:
            self.log(f"trial {trial.number}: {duplicates} row(s) already stored: not written twice")
        for failure in report.failures:
            self.store.record_failure(*failure)
        if report.intermediate:
            trial.set_user_attr("intermediate", report.intermediate)
        if report.pruned is not None:
            trial.set_user_attr("prune_reason", report.pruned)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            self.log(f"trial {trial.number} pruned: {report.pruned}")
            return None
        if report.error is not None:
            return self._fail(trial, report.error)
        if report.run_failures:
            failures = "; ".join(f"{name}: {message}" for name, message in report.run_failures)
            return self._fail(trial, f"PrivbenchError: {failures}")
        try:
            utility, privacy = trial_scores(self._rows(), self.settings.name, trial.number)
        except PrivbenchError as error:
            return self._fail(trial, f"{type(error).__name__}: {error}")
        trial.set_user_attr("utility", utility)
        trial.set_user_attr("privacy", privacy)
        self.study.tell(trial, [utility, privacy])
        alpha = trial.user_attrs.get("alpha", math.nan)
        self.log(f"trial {trial.number}: α={alpha:.4g} utility={utility:.4f} privacy={privacy:.4f}")
        return None

    def _fail(self, trial: Any, reason: str) -> None:
        import optuna

        trial.set_user_attr("fail_reason", reason)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.log(f"trial {trial.number} failed: {reason}")

    def _rows(self) -> pd.DataFrame:
        """The store's rows of the reference's (benchmark, version, dataset) group."""
        rows = self.store.dataframe(benchmark=self.reference.name)
        return rows[
            (rows["benchmark_version"] == self.reference.version)
            & (rows["dataset_fingerprint"] == self.fingerprint)
        ]

    def _trial_resources(self) -> TaskResources:
        """A trial task reserves what its largest cell reserves (its fit and cells run one
        after another in it)."""
        from privbench.runs.graph import resources_of

        default = self.execution.cell_resources(self.device)
        entries = [*self.reference.tasks, *self.reference.attacks]
        reserved = [resources_of(entry, default) for entry in entries] + [default]
        return TaskResources(cpus=max(r.cpus for r in reserved), gpus=max(r.gpus for r in reserved))

    def _parallel(self) -> int:
        """Trials in flight: the worker count, or on a cluster what its resources admit."""
        workers = self.execution.resolved_workers(self.device)
        if workers >= 1:
            return workers
        import ray

        total, reserved = ray.cluster_resources(), self._resources
        slots = int(total.get("CPU", 1) // reserved.cpus)
        if reserved.gpus:
            slots = min(slots, int(total.get("GPU", 0) / reserved.gpus))
        return max(1, slots)

    def _plugin_modules(self) -> tuple[str, ...]:
        """The modules that register the components a trial names, for the worker to import."""
        spec, settings = self.reference, self.settings
        named = [
            (ENCODERS, settings.encoder),
            (DESIGNERS, settings.designer),
            (DATASETS, spec.dataset.name),
            *[(TASKS, entry.name) for entry in spec.tasks],
            *[(ATTACKS, entry.name) for entry in spec.attacks],
        ]
        modules = [getattr(registry.get(name), "__module__", None) for registry, name in named]
        return tuple(dict.fromkeys(module for module in modules if module))
