"""A run as a task graph: dataset → one task per designer fit → one task per cell → store.

The driver builds the dataset and every evaluation (so a bad config or a missing data part stops
the run before any work), shares the dataset with the engine once, and submits work as it
becomes possible: the cells of fixed encoders at once, each learned encoder's fit at once, and a
learned encoder's cells the moment its fit returns (their keys hash the fitted weights). Each
result is written to the store the moment it returns — the driver is the store's only writer — so
an interrupted run loses at most the tasks in flight, and a rerun skips every stored cell.
A failed fit fails its encoder's cells; a failed cell (exception, non-finite metric, a worker that
died more often than the retries allow) is recorded with its reason, and the other cells go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from privbench.api.errors import ConfigError
from privbench.engine import Engine, Shared, TaskResources
from privbench.runs.cells import Cell, DatasetRef, FittedEncoder
from privbench.runs.progress import RunDisplay
from privbench.runs.spec import ComponentSpec
from privbench.runs.tasks import CellReport, FitJob, FitReport, run_cell, run_fit

if TYPE_CHECKING:
    from privbench.runs.runner import Runner, RunReport


@dataclass
class _Pending:
    """What the driver knows about a submitted task."""

    kind: str  # "fit" or "cell"
    task: str  # the display's task id: the cell key or fit:KEY
    entry: ComponentSpec
    cell: Cell | None = None
    encoder: object = None
    job: FitJob | None = None


@dataclass
class RunGraph:
    runner: Runner
    engine: Engine
    display: RunDisplay
    report: RunReport
    stored: set[str] = field(default_factory=set)

    def run(self, evaluations, reference: DatasetRef, shared: Shared) -> None:
        runner, spec = self.runner, self.runner.spec
        self._evaluations, self._reference, self._shared = evaluations, reference, shared
        self._pending: dict[int, _Pending] = {}
        self._cell_bar = runner.progress.stage(
            "cells", total=len(spec.encoders) * len(evaluations) * len(spec.seeds)
        )
        fits = [entry for entry in spec.encoders if entry.designer is not None]
        self._fit_bar = runner.progress.stage("designer fits", total=len(fits)) if fits else None
        try:
            for entry in spec.encoders:
                encoder = runner.construct_encoder(entry)
                if entry.designer is None:
                    self._add_cells(entry, FittedEncoder.of(entry.display_name, encoder))
                else:
                    self._add_fit(entry, encoder)
            while self.engine.pending:
                for done in self.engine.wait():
                    pending = self._pending.pop(done.task_id)
                    self.display.finished(pending.task)
                    if pending.kind == "fit":
                        self._fit_returned(pending, done.value, done.error)
                    else:
                        self._cell_returned(pending, done.value, done.error)
        finally:
            self._cell_bar.close()
            if self._fit_bar is not None:
                self._fit_bar.close()
        self._in_plan_order()

    def _in_plan_order(self) -> None:
        """Cells and fitted encoders in the spec's order (encoder entry × evaluation × seed),
        whichever task finished first, so that the report and what is rendered from it are the
        same for any number of workers."""
        spec = self.runner.spec
        encoders = {entry.display_name: index for index, entry in enumerate(spec.encoders)}
        evaluations = {id(entry): index for index, (entry, _) in enumerate(self._evaluations)}
        seeds = {seed: index for index, seed in enumerate(spec.seeds)}
        self.report.cells.sort(
            key=lambda cell: (
                encoders[cell.encoder_entry.display_name],
                evaluations[id(cell.evaluation_entry)],
                seeds[cell.seed],
            )
        )
        fitted = self.report.fitted
        self.report.fitted = {
            label: fitted[label] for label in sorted(fitted, key=lambda label: encoders[label])
        }

    # -- fits -----------------------------------------------------------------------------------
    def _add_fit(self, entry: ComponentSpec, encoder) -> None:
        job = self.runner.fit_job(entry, encoder, self.report.data)
        cached = self.runner.cache.load("fitted", job.key)
        if cached is not None:  # fitted before: no task
            self._fit_bar.update(1, fit=f"{entry.display_name} (cached)")
            self._add_cells(entry, self.runner.fitted_encoder(entry, job, cached))
            return
        resources = self.runner.task_resources(entry.designer)
        task = f"fit:{job.key}"
        self.display.expect(task, f"fit {entry.display_name}")
        task_id = self.engine.submit(
            run_fit, (job, self._shared), resources, f"fit {entry.display_name}"
        )
        self._pending[task_id] = _Pending("fit", task, entry, encoder=encoder, job=job)

    def _fit_returned(self, pending: _Pending, value: FitReport | None, error: str | None):
        entry = pending.entry
        self._fit_bar.update(1, fit=entry.display_name)
        reason = error or (value.failure if value is not None else "no report")
        if value is not None and value.failure is None:
            self.report.fit_profiles[entry.display_name] = value.profile
            fitted = {"state": value.state, "history": value.history}
            self._add_cells(entry, self.runner.fitted_encoder(entry, pending.job, fitted))
            return
        cells = len(self._evaluations) * len(self.runner.spec.seeds)
        message = f"the designer fit of {entry.display_name!r} failed: {reason}"
        self.report.failures.append((f"{entry.display_name} (fit, {cells} cells)", message))
        self.runner.log(f"fit {entry.display_name} failed: {reason}")
        self._cell_bar.update(cells)

    # -- cells ----------------------------------------------------------------------------------
    def _add_cells(self, entry: ComponentSpec, fitted: FittedEncoder) -> None:
        self.report.fitted[fitted.label] = fitted
        for evaluation_entry, evaluation in self._evaluations:
            for seed in self.runner.spec.seeds:
                cell = self.runner.make_cell(
                    entry, fitted, evaluation_entry, evaluation, seed, self._reference
                )
                self.report.cells.append(cell)
                if cell.key in self.stored:
                    self.report.skipped += 1
                    self._cell_bar.update(1)
                    continue
                resources = self.runner.task_resources(evaluation_entry)
                self.display.expect(cell.key, cell.name)
                task_id = self.engine.submit(
                    run_cell, (cell, self._shared), resources, f"cell {cell.name}"
                )
                self._pending[task_id] = _Pending("cell", cell.key, entry, cell=cell)

    def _cell_returned(self, pending: _Pending, value: CellReport | None, error: str | None):
        cell = pending.cell
        self._cell_bar.update(1, cell=cell.name)
        if value is not None and value.failure is None:
            if self.runner.store.add(value.row):
                self.report.ran += 1
            else:
                self.report.duplicates += 1
                self.runner.log(
                    f"cell {cell.name} was already stored (by another driver): not written twice."
                )
            return
        reason = error or value.failure
        self.report.failures.append((cell.name, reason))
        self.runner.log(f"cell {cell.name} failed: {reason}")
        spec = self.runner.spec
        self.runner.store.record_failure(cell.key, cell.name, spec.name, spec.version, reason)


def resources_of(entry: ComponentSpec | None, default: TaskResources) -> TaskResources:
    """What a spec entry's task reserves: its ``resources`` where it names them, else the
    run's per-cell default."""
    if entry is None or entry.resources is None:
        return default
    merged = {**default.model_dump(), **entry.resources.model_dump(exclude_unset=True)}
    try:
        return TaskResources(**merged)
    except ValueError as error:
        raise ConfigError(f"resources of {entry.display_name!r}: {error}") from None
