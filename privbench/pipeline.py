"""The end-to-end pipeline behind ``privbench run`` and :func:`privbench.run`.

It sits above both the execution layer and the presentation layer: resolve the spec
(:func:`~privbench.runs.spec.resolve_spec`), execute its cells into the store
(:class:`~privbench.runs.runner.Runner`), then render what the report holds (results, data,
fitted encoders) with :func:`~privbench.report.leaderboard.render_outputs`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from privbench.api.cache import ArtifactCache
from privbench.api.errors import ConfigError
from privbench.engine import ExecutionConfig
from privbench.runs.progress import ProgressFactory
from privbench.runs.runner import DEFAULT_OUT, Runner, RunReport, prepare_output_dir, resolve_device
from privbench.runs.spec import resolve_spec
from privbench.runs.store import ResultStore, default_store_url


def run(
    spec: Any = None,
    *,
    preset: str | None = None,
    encoders: list[str] | None = None,
    out_dir: str | Path | None = DEFAULT_OUT,
    store: str | None = None,
    device: str | None = "cpu",
    seed: int | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
    render: bool = True,
    report: bool = False,
    data_paths: dict[str, str] | None = None,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_cell: int | None = None,
    gpus_per_cell: float | None = None,
    execution: ExecutionConfig | dict | None = None,
):
    """Run a benchmark and return its results as a DataFrame (or the full RunReport).

    ``spec``: a BenchmarkSpec, dict, YAML path or built-in benchmark name (default: the
    embedded ``synthfaces`` benchmark). ``preset``: e.g. ``quick`` (default) or ``standard``.
    ``encoders``: restrict to these encoder entries. ``store``: SQLAlchemy URL (default: SQLite
    file in ``out_dir``). ``seed``: run only this seed instead of the spec's seeds.
    ``data_paths``: name → path of the datasets (and files) the spec reads from disk, filling its
    ``${NAME}`` placeholders (the paper presets: ``{"vggface2": "/data/vggface2", ...}``); a
    MissingDataError lists what is still needed before any work starts.

    Execution (:class:`~privbench.engine.ExecutionConfig`, or these shortcuts): ``workers`` (1:
    in this process; more: a local Ray instance; default: from the machine or
    ``$PRIVBENCH_WORKERS``), ``address`` (join a Ray cluster: ``"auto"``, ``"ray://HOST:PORT"``),
    ``cpus_per_cell`` (torch threads per task, part of the numerical recipe: default 2),
    ``gpus_per_cell`` (GPU share per cell on CUDA, e.g. 0.25).
    """
    execution = ExecutionConfig.of(
        execution,
        workers=workers,
        address=address,
        cpus_per_cell=cpus_per_cell,
        gpus_per_cell=gpus_per_cell,
    )
    spec = resolve_spec(
        spec, preset=preset, encoders=encoders, seed=seed, data_paths=data_paths, log=log
    )
    torch_device = resolve_device(device)
    out_path = prepare_output_dir(out_dir) if out_dir is not None else None
    if store is None:
        if out_path is None:
            raise ConfigError("Give either an output folder (out_dir) or a store URL (store).")
        store = default_store_url(out_path)
    result_store = ResultStore(store)
    runner = Runner(
        spec,
        store=result_store,
        device=torch_device,
        cache=ArtifactCache(cache_dir),
        progress=progress,
        log=log or (lambda message: None),
        execution=execution,
    )
    try:
        run_report = runner.execute()
        if render and out_path is not None:
            run_report.outputs = render_report(run_report, out_path)
    finally:
        result_store.close()
    return run_report if report else run_report.results


def render_report(run_report: RunReport, out_path: Path, **options: Any) -> dict[str, Path]:
    """The leaderboard files of a finished run (see
    :func:`privbench.report.leaderboard.render_outputs`)."""
    from privbench.report.leaderboard import render_outputs

    spec = run_report.spec
    return render_outputs(
        run_report.results,
        out_path,
        title=f"{spec.name} v{spec.version} ({spec.preset or 'default'} preset)",
        data=run_report.data,
        encoders={label: fitted.encoder for label, fitted in run_report.fitted.items()},
        samples=spec.sample_encoder_inputs,
        device=run_report.cells[0].device if run_report.cells else "cpu",
        **options,
    )
