"""The runner: plans a benchmark's cells and executes them into the store.

Data flows one way: dataset → encoder → evaluation model → metrics → result row → store →
leaderboard. The runner knows how to make each piece — the dataset, the evaluations (built and
checked before any encoder is fitted), each learned encoder's designer fit (cached by content),
one self-contained :class:`~privbench.runs.cells.Cell` per encoder × evaluation × seed.
:meth:`Runner.execute` runs them as a task graph on the run's engine (:mod:`privbench.runs.graph`,
:mod:`privbench.engine`: in process, or on Ray workers) and writes each row the moment it returns,
so a rerun recomputes nothing and an interrupted run resumes where it stopped; :meth:`Runner.plan`
makes every cell here and now (figures, tests). Rendering is not the runner's business:
:func:`privbench.pipeline.run` hands the report to :mod:`privbench.report`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from privbench.api.adapter import load_dataset
from privbench.api.cache import ArtifactCache
from privbench.api.config import stable_hash
from privbench.api.encoder import Encoder
from privbench.api.errors import (
    ConfigError,
    OutputError,
    PrerequisiteError,
    PrivbenchError,
    TaskError,
)
from privbench.api.evaluation import Evaluation
from privbench.api.registry import ATTACKS, DESIGNERS, ENCODERS, TASKS, Registry
from privbench.data.containers import BenchmarkData
from privbench.engine import ExecutionConfig, TaskResources, open_engine
from privbench.engine.events import DirectReporter
from privbench.runs.cells import Cell, DatasetRef, FittedEncoder, dataset_view
from privbench.runs.graph import RunGraph, resources_of
from privbench.runs.progress import (
    ProgressFactory,
    RichProgressFactory,  # noqa: F401 (re-exported)
    RunDisplay,
)
from privbench.runs.spec import BenchmarkSpec, ComponentSpec, require_data_paths
from privbench.runs.store import ResultStore
from privbench.runs.tasks import FitJob, run_fit

DEFAULT_OUT = "privbench-out"


@dataclass
class RunReport:
    """What one run did: the rows of its benchmark group, cells run/skipped/failed, and what the
    cells were computed from (the data and the fitted encoders), for rendering."""

    spec: BenchmarkSpec
    results: pd.DataFrame
    data: BenchmarkData | None = None
    fitted: dict[str, FittedEncoder] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Rows another driver stored first (two drivers on one store): not written twice.
    duplicates: int = 0
    #: What executed the tasks (engine, workers, nodes).
    engine: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    wall_time_s: float = 0.0
    #: Wall seconds of loading (or generating) the dataset.
    data_time_s: float = 0.0
    #: The profile of each designer fit this run computed (not a cached one), by encoder label
    #: (:mod:`privbench.api.profiling`); the cells keep theirs in their rows.
    fit_profiles: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def resolve_device(device: str | torch.device | None) -> torch.device:
    name = str(device or "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"Unknown device {name!r}; use 'cpu' or 'cuda' (or 'cuda:N').")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"Device {name!r} was requested but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}). Use --device cpu."
        )
    return torch.device(name)


def prepare_output_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and check that it is writable before any work starts."""
    path = Path(out_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".privbench-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise OutputError(
            f"Cannot write to the output folder {str(path)!r} ({error.strerror or error}). "
            f"Choose a writable folder with --out."
        ) from None
    return path


def construct_component(registry: Registry, entry: ComponentSpec):
    """The registered component an entry names, built from its config (bad config: ConfigError)."""
    factory = registry.get(entry.name)
    try:
        return factory(**entry.config)
    except PrivbenchError:
        raise
    except TypeError as error:
        raise ConfigError(
            f"Invalid configuration for {registry.kind} {entry.name!r}: {error}"
        ) from None


def check_requirements(
    evaluations: list[tuple[ComponentSpec, Evaluation]], data: BenchmarkData
) -> None:
    """Every evaluation's declared ``requires`` must be parts of the data it reads."""
    for entry, evaluation in evaluations:
        view = dataset_view(data, entry.data)
        missing = [part for part in evaluation.requires if not view.has_part(part)]
        if missing:
            raise ConfigError(
                f"{evaluation.role} evaluation {entry.display_name!r} needs the data part(s) "
                f"{', '.join(missing)}, but dataset {view.name!r} provides only "
                f"{', '.join(view.available_parts()) or 'nothing'}. Choose evaluations that use "
                f"those parts, or a dataset (or 'data:' source) that provides them."
            )


def check_prerequisites(evaluations: list[tuple[ComponentSpec, Evaluation]]) -> None:
    """What the evaluations need on the machine (:meth:`Evaluation.missing_prerequisites`: a
    Java runtime, ...) must be there before any work; one error lists all that is missing."""
    missing: dict[str, list[str]] = {}
    for entry, evaluation in evaluations:
        for reason in evaluation.missing_prerequisites():
            missing.setdefault(reason, []).append(entry.display_name)
    if missing:
        listed = "; ".join(
            f"{reason} (for {', '.join(names)})" for reason, names in missing.items()
        )
        raise PrerequisiteError(f"This run needs what the machine does not have: {listed}.")


class Runner:
    """Plans and executes one resolved benchmark spec into a store (see module docstring)."""

    def __init__(
        self,
        spec: BenchmarkSpec,
        *,
        store: ResultStore | None,
        device: torch.device,
        cache: ArtifactCache,
        progress: ProgressFactory | None = None,
        log: Callable[[str], None] = print,
        study: str | None = None,
        trial: int | None = None,
        design_report: Callable[[int, dict], None] | None = None,
        execution: ExecutionConfig | None = None,
        cameras: Mapping[str, Encoder] | None = None,
    ) -> None:
        self.spec = spec
        #: Unregistered encoders by the entry name standing for them (privbench.runs.cameras).
        self.cameras = dict(cameras or {})
        self._checked: list[tuple[ComponentSpec, Evaluation]] | None = None
        self.store = store
        self.device = device
        self.cache = cache
        self.progress = progress or ProgressFactory()
        self.log = log
        self.study = study
        self.trial = trial
        #: Receives the designer's per-cycle metrics (the tuner prunes hopeless trials here).
        self.design_report = design_report or (lambda step, values: None)
        self.execution = execution or ExecutionConfig(workers=1)

    # -- planning -----------------------------------------------------------------------
    def load_data(self) -> BenchmarkData:
        # A spec whose ${NAME} data paths were never filled (e.g. a paper preset run without
        # --data) stops here with the list of paths it needs, before any work.
        require_data_paths(self.spec, {})
        name, config = self.spec.dataset.name, self.spec.dataset.config
        with self.progress.stage(f"dataset {name}", total=1) as bar:
            data = load_dataset(name, config, self.cache.root / "datasets")
            bar.update(1)
        return data

    def evaluations(self) -> list[tuple[ComponentSpec, Evaluation]]:
        """Every task and attack entry with its evaluation (a bad config fails here)."""
        built = [(e, construct_component(TASKS, e)) for e in self.spec.tasks]
        return built + [(e, construct_component(ATTACKS, e)) for e in self.spec.attacks]

    def construct_encoder(self, entry: ComponentSpec) -> Encoder:
        """The entry's encoder at its initial weights (a designer on a fixed one: ConfigError);
        an entry standing for one of :attr:`cameras` gets a copy of it (fits and ``.to(device)``
        never touch the caller's object)."""
        if entry.name in self.cameras:
            encoder = copy.deepcopy(self.cameras[entry.name])
        else:
            encoder = construct_component(ENCODERS, entry)
        if entry.designer is not None and not encoder.learnable:
            raise ConfigError(
                f"Encoder entry {entry.display_name!r} names designer {entry.designer.name!r}, but "
                f"encoder {entry.name!r} has no learnable "
                "parameters (fixed baselines are never fitted)."
            )
        return encoder

    def fit_job(self, entry: ComponentSpec, encoder: Encoder, data: BenchmarkData) -> FitJob:
        """The designer fit of a learned encoder entry, keyed by everything the fitted weights
        depend on (encoder config and initial weights, designer config, the data it reads)."""
        designer = construct_component(DESIGNERS, entry.designer)
        view = dataset_view(data, entry.designer.data)
        key = stable_hash(
            {
                "encoder": encoder.config_hash(),
                "initial_weights": encoder.weights_hash(),
                "designer": designer.config_hash(),
                "dataset": view.fingerprint,
            }
        )
        return FitJob(
            label=entry.display_name,
            encoder=encoder,
            designer=designer,
            key=key,
            data_source=entry.designer.data,
            device=str(self.device),
            cache_root=str(self.cache.root),
            report=self.design_report,
        )

    def fitted_encoder(
        self, entry: ComponentSpec, job: FitJob, fitted: dict[str, Any]
    ) -> FittedEncoder:
        """The entry's encoder with the fitted weights a fit task (or the cache) returned."""
        job.encoder.load_state_dict(fitted["state"])
        return FittedEncoder.of(
            entry.display_name,
            job.encoder,
            alpha=float(job.designer.config.alpha),
            designer=job.designer.name,
            history=fitted["history"],
        )

    def fit_encoder(
        self, entry: ComponentSpec, encoder: Encoder, data: BenchmarkData
    ) -> FittedEncoder:
        """Fit ``encoder`` with the entry's designer here and now (cached by content)."""
        job = self.fit_job(entry, encoder, data)
        fitted = self.cache.load("fitted", job.key)
        if fitted is None:
            reporter = DirectReporter(self.progress, self.log)
            with self.progress.stage(f"fit {entry.display_name}", total=1) as bar:
                report = run_fit(job, data, self.task_resources(entry.designer), reporter, "local")
                bar.update(1)
            if report.failure is not None:
                raise TaskError(f"The fit of {entry.display_name!r} failed: {report.failure}")
            fitted = {"state": report.state, "history": report.history}
        return self.fitted_encoder(entry, job, fitted)

    def task_resources(self, entry: ComponentSpec | None) -> TaskResources:
        """What a cell (or a designer fit) of ``entry`` reserves on its worker (no GPU on
        ``--device cpu``, whatever the spec asks for a CUDA run)."""
        resources = resources_of(entry, self.execution.cell_resources(str(self.device)))
        if self.device.type == "cpu" and resources.gpus:
            resources = resources.model_copy(update={"gpus": 0.0})
        return resources

    def make_cell(
        self,
        encoder_entry: ComponentSpec,
        fitted: FittedEncoder,
        evaluation_entry: ComponentSpec,
        evaluation: Evaluation,
        seed: int,
        reference: DatasetRef,
    ) -> Cell:
        return Cell(
            benchmark=self.spec.name,
            benchmark_version=self.spec.version,
            preset=self.spec.preset,
            encoder_entry=encoder_entry,
            fitted=fitted,
            evaluation_entry=evaluation_entry,
            evaluation=evaluation,
            seed=seed,
            data=reference,
            device=str(self.device),
            cache_root=str(self.cache.root),
            study=self.study,
            trial=self.trial,
        )

    def plan(self, data: BenchmarkData) -> tuple[list[Cell], dict[str, FittedEncoder]]:
        """Every cell of the run, its learned encoders fitted here and now (for figures and
        tests; :meth:`execute` fits them as tasks of the run's graph instead)."""
        evaluations = self.evaluations()
        check_requirements(evaluations, data)
        reference = self.dataset_reference(data)
        cells, fitted = [], {}
        for entry in self.spec.encoders:
            encoder = self.construct_encoder(entry)
            if entry.designer is None:
                record = FittedEncoder.of(entry.display_name, encoder)
            else:
                record = self.fit_encoder(entry, encoder, data)
            fitted[record.label] = record
            cells += [
                self.make_cell(entry, record, evaluation_entry, evaluation, seed, reference)
                for evaluation_entry, evaluation in evaluations
                for seed in self.spec.seeds
            ]
        return cells, fitted

    def check(self) -> list[tuple[ComponentSpec, Evaluation]]:
        """Build every component of the spec (a bad config is a ConfigError naming it) and check
        that the machine has what the evaluations need, before any data is built or any file
        written; returns the evaluations (built once per runner: the spec does not change)."""
        if self._checked is not None:
            return self._checked
        evaluations = self.evaluations()
        check_prerequisites(evaluations)
        for entry in self.spec.encoders:
            self.construct_encoder(entry)
            if entry.designer is not None:
                construct_component(DESIGNERS, entry.designer)
        self._checked = evaluations
        return evaluations

    def dataset_reference(self, data: BenchmarkData) -> DatasetRef:
        return DatasetRef.of(data, self.spec.dataset.name, self.spec.dataset.config, self.cache)

    # -- execution ----------------------------------------------------------------------
    def execute(self) -> RunReport:
        """Run every cell the store does not hold yet on the run's engine (see
        :mod:`privbench.runs.graph`) and report."""
        if self.store is None:
            raise ConfigError("Runner.execute needs a results store to write the rows to.")
        started = time.perf_counter()
        evaluations = self.check()
        data = self.load_data()
        data_time_s = time.perf_counter() - started
        check_requirements(evaluations, data)
        report = RunReport(
            spec=self.spec, results=pd.DataFrame(), data=data, data_time_s=data_time_s
        )
        stored = self.store.cell_keys()
        display = RunDisplay(self.progress, self.log)
        engine = open_engine(
            self.execution,
            device=str(self.device),
            cache_root=self.cache.root,
            progress=self.progress,
            log=self.log,
            sink=display,
        )
        engine.check_device(str(self.device))
        with engine:
            report.engine = engine.description
            self.log(f"running on {engine.description}")
            shared = engine.share(data, data.fingerprint)
            graph = RunGraph(self, engine, display, report, stored)
            graph.run(evaluations, self.dataset_reference(data), shared)
        if report.skipped:
            self.log(
                f"{report.skipped} of {len(report.cells)} cells already in the store: skipped."
            )
        report.results = self.run_results(report)
        report.wall_time_s = time.perf_counter() - started
        return report

    def run_results(self, report: RunReport) -> pd.DataFrame:
        """The store's rows of this benchmark version on this data: this run's cells in plan
        order (encoder entry × evaluation × seed, whichever worker finished first), then rows
        earlier runs left for other encoders, in the order they were stored."""
        results = self.store.dataframe(benchmark=self.spec.name)
        results = results[
            (results["benchmark_version"] == self.spec.version)
            & (results["dataset_fingerprint"] == report.data.fingerprint)
        ]
        order = {cell.key: index for index, cell in enumerate(report.cells)}
        rank = results["cell_key"].map(lambda key: order.get(key, len(order)))
        return (
            results.assign(_rank=rank)
            .sort_values("_rank", kind="stable")
            .drop(columns="_rank")
            .reset_index(drop=True)
        )
