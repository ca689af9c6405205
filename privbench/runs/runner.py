"""The runner: plans a benchmark's cells and executes them into the store.

Data flows one way: dataset → encoder → evaluation model → metrics → result row → store →
leaderboard. :meth:`Runner.plan` loads the dataset, builds and checks every evaluation (before
any encoder is fitted), fits the learned encoders with their designers (fitted weights are
cached by content) and returns one self-contained :class:`~privbench.runs.cells.Cell` per
encoder × evaluation × seed; :meth:`Runner.execute` runs the cells the store does not hold yet
with :func:`~privbench.runs.cells.evaluate_cell` and writes each row the moment it returns, so
a rerun recomputes nothing and an interrupted run resumes where it stopped. Rendering is not
the runner's business: :func:`privbench.pipeline.run` hands the report to :mod:`privbench.report`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from privbench.api.adapter import load_dataset
from privbench.api.cache import ArtifactCache
from privbench.api.config import stable_hash
from privbench.api.encoder import Encoder
from privbench.api.errors import ConfigError, OutputError, PrivbenchError
from privbench.api.evaluation import Evaluation, RunContext
from privbench.api.registry import ATTACKS, DESIGNERS, ENCODERS, TASKS, Registry
from privbench.data.containers import BenchmarkData
from privbench.runs.cells import Cell, DatasetRef, FittedEncoder, dataset_view, evaluate_cell
from privbench.runs.progress import ProgressFactory, RichProgressFactory  # noqa: F401 (re-exported)
from privbench.runs.spec import BenchmarkSpec, ComponentSpec, require_data_paths
from privbench.runs.store import ResultStore

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
    outputs: dict[str, Path] = field(default_factory=dict)
    wall_time_s: float = 0.0


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
    ) -> None:
        self.spec = spec
        self.store = store
        self.device = device
        self.cache = cache
        self.progress = progress or ProgressFactory()
        self.log = log
        self.study = study
        self.trial = trial
        #: Receives the designer's per-cycle metrics (the tuner prunes hopeless trials here).
        self.design_report = design_report or (lambda step, values: None)

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

    def fit_encoders(self, data: BenchmarkData) -> list[tuple[ComponentSpec, FittedEncoder]]:
        """Each encoder entry with its encoder, fitted by its designer (or taken from the cache)."""
        fitted = []
        for entry in self.spec.encoders:
            encoder = construct_component(ENCODERS, entry)
            if entry.designer is None:
                fitted.append((entry, FittedEncoder.of(entry.display_name, encoder)))
            else:
                fitted.append((entry, self.fit_encoder(entry, encoder, data)))
        return fitted

    def fit_encoder(
        self, entry: ComponentSpec, encoder: Encoder, data: BenchmarkData
    ) -> FittedEncoder:
        """Fit ``encoder`` with the entry's designer; fitted weights are cached by content."""
        if not encoder.learnable:
            raise ConfigError(
                f"Encoder entry {entry.display_name!r} names designer {entry.designer.name!r}, but "
                f"encoder {entry.name!r} has no learnable "
                "parameters (fixed baselines are never fitted)."
            )
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
        cached = self.cache.load("fitted", key)
        if cached is None:
            ctx = RunContext(
                device=self.device,
                seed=designer.config.seed,
                workdir=self.cache.root / "checkpoints" / f"design-{key}",
                progress=self.progress,
                log=self.log,
                report=self.design_report,
            )
            with self.progress.stage(f"fit {entry.display_name}", total=1) as bar:
                history = designer.fit(encoder, view, ctx)
                bar.update(1)
            state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
            self.cache.save("fitted", key, {"state": state, "history": history})
        else:
            encoder.load_state_dict(cached["state"])
            history = cached["history"]
        return FittedEncoder.of(
            entry.display_name,
            encoder,
            alpha=float(designer.config.alpha),
            designer=designer.name,
            history=history,
        )

    def plan(self, data: BenchmarkData) -> tuple[list[Cell], dict[str, FittedEncoder]]:
        """The run's cells (and its fitted encoders by label), every evaluation checked first."""
        evaluations = self.evaluations()
        check_requirements(evaluations, data)
        fitted = self.fit_encoders(data)
        reference = DatasetRef.of(
            data, self.spec.dataset.name, self.spec.dataset.config, self.cache
        )
        cells = [
            Cell(
                benchmark=self.spec.name,
                benchmark_version=self.spec.version,
                preset=self.spec.preset,
                encoder_entry=encoder_entry,
                fitted=encoder,
                evaluation_entry=evaluation_entry,
                evaluation=evaluation,
                seed=seed,
                data=reference,
                device=str(self.device),
                cache_root=str(self.cache.root),
                study=self.study,
                trial=self.trial,
            )
            for encoder_entry, encoder in fitted
            for evaluation_entry, evaluation in evaluations
            for seed in self.spec.seeds
        ]
        return cells, {encoder.label: encoder for _, encoder in fitted}

    # -- execution ----------------------------------------------------------------------
    def execute(self) -> RunReport:
        """Plan, run every cell not yet in the store, and report (see module docstring)."""
        if self.store is None:
            raise ConfigError("Runner.execute needs a results store to write the rows to.")
        started = time.perf_counter()
        data = self.load_data()
        cells, fitted = self.plan(data)
        done = self.store.cell_keys()
        todo = [cell for cell in cells if cell.key not in done]
        report = RunReport(
            spec=self.spec,
            results=pd.DataFrame(),
            data=data,
            fitted=fitted,
            cells=cells,
            skipped=len(cells) - len(todo),
        )
        if report.skipped:
            self.log(f"{report.skipped} of {len(cells)} cells already in the store: skipped.")
        with self.progress.stage("cells", total=len(todo)) as bar:
            for cell in todo:
                bar.update(0, cell=cell.name)
                try:
                    row = evaluate_cell(cell, self.progress, self.log)
                except PrivbenchError as error:
                    report.failures.append((cell.name, str(error)))
                    self.log(f"cell {cell.name} failed: {error}")
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as error:  # keep the other cells' results; report this one
                    report.failures.append((cell.name, f"{type(error).__name__}: {error}"))
                    self.log(f"cell {cell.name} failed:\n{traceback.format_exc()}")
                else:
                    self.store.add(row)
                    report.ran += 1
                bar.update(1)
        results = self.store.dataframe(benchmark=self.spec.name)
        report.results = results[
            (results["benchmark_version"] == self.spec.version)
            & (results["dataset_fingerprint"] == data.fingerprint)
        ].reset_index(drop=True)
        report.wall_time_s = time.perf_counter() - started
        return report
