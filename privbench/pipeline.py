"""The end-to-end pipeline behind ``privbench run`` and :func:`privbench.run`.

It sits above both the execution layer and the presentation layer: resolve the spec
(:func:`~privbench.runs.spec.resolve_spec`), execute its cells into the store
(:class:`~privbench.runs.runner.Runner`), then render what the report holds (results, data,
fitted encoders) with :func:`~privbench.report.leaderboard.render_outputs`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from privbench.api.cache import ArtifactCache
from privbench.api.camera import as_encoder
from privbench.api.encoder import Encoder
from privbench.api.errors import ConfigError
from privbench.engine import ExecutionConfig
from privbench.runs.cameras import camera_spec
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
    overrides: dict[str, Any] | None = None,
    cameras: Mapping[str, Encoder] | None = None,
):
    """Run a benchmark and return its results as a DataFrame (or the full RunReport).

    ``spec``: a BenchmarkSpec, dict, YAML path or built-in benchmark name (default: the
    embedded ``synthfaces`` benchmark). ``preset``: e.g. ``quick`` (default) or ``standard``.
    ``encoders``: restrict to these encoder entries. ``store``: SQLAlchemy URL (default: SQLite
    file in ``out_dir``). ``seed``: run only this seed instead of the spec's seeds.
    ``data_paths``: name → path of the datasets (and files) the spec reads from disk, filling its
    ``${NAME}`` placeholders (the paper presets: ``{"vggface2": "/data/vggface2", ...}``); a
    MissingDataError lists what is still needed before any work starts. ``overrides``: dotted
    spec paths → values (``{"evaluations.face-id.training.epochs": 3}``, as ``--set``; see
    :mod:`privbench.runs.overrides`).

    Execution (:class:`~privbench.engine.ExecutionConfig`, or these shortcuts): ``workers`` (1:
    in this process; more: a local Ray instance; default: from the machine or
    ``$PRIVBENCH_WORKERS``), ``address`` (join a Ray cluster: ``"auto"``, ``"ray://HOST:PORT"``),
    ``cpus_per_cell`` (torch threads per task, part of the numerical recipe: default 2),
    ``gpus_per_cell`` (GPU share per cell on CUDA, e.g. 0.25).

    ``cameras``: the unregistered encoders the spec's ``camera:LABEL`` entries stand for (what
    :func:`evaluate` passes; see :func:`privbench.runs.cameras.camera_spec`).
    """
    execution = ExecutionConfig.of(
        execution,
        workers=workers,
        address=address,
        cpus_per_cell=cpus_per_cell,
        gpus_per_cell=gpus_per_cell,
    )
    source = spec
    spec = resolve_spec(
        spec,
        preset=preset,
        encoders=encoders,
        seed=seed,
        data_paths=data_paths,
        log=log,
        overrides=overrides,
    )
    runner = Runner(
        spec,
        store=None,
        device=resolve_device(device),
        cache=ArtifactCache(cache_dir),
        progress=progress,
        log=log or (lambda message: None),
        execution=execution,
        cameras=cameras,
    )
    try:  # a bad component or a missing prerequisite: an error before any file exists
        runner.check()
    except ConfigError as error:
        if isinstance(source, (str, Path)) and Path(source).suffix in (".yaml", ".yml"):
            raise ConfigError(f"In spec file {str(source)!r}: {error}") from None
        raise
    out_path = prepare_output_dir(out_dir) if out_dir is not None else None
    if store is None:
        if out_path is None:
            raise ConfigError("Give either an output folder (out_dir) or a store URL (store).")
        store = default_store_url(out_path)
    result_store = runner.store = ResultStore(store)
    try:
        run_report = runner.execute()
        if render and out_path is not None:
            run_report.outputs = render_report(run_report, out_path)
    finally:
        result_store.close()
    return run_report if report else run_report.results


#: run()'s parameters that evaluate() sets itself.
_NOT_OPTIONS = ("spec", "encoders", "cameras")


def evaluate(
    camera: Any,
    benchmark: Any = None,
    *,
    label: str | None = None,
    compare: Sequence[str] | str | None = None,
    designer: str | dict | None = None,
    alphas: list[float] | None = None,
    measurement_range: tuple[float, float] | None = None,
    **options: Any,
):
    """Run your own camera on a benchmark, like a registered encoder: any
    :class:`~privbench.api.encoder.Encoder` instance, or a plain ``nn.Module`` mapping
    ``(B, 3, H, W)`` images in [0, 1] to a measurement (its output shape found by running it
    once; ``measurement_range``: the values its measurement spans, default (0, 1)), fitted or
    not. Its cache keys come from its weights and its source code, so an edited camera is never
    scored with the old one's measurements.

    ``benchmark``: as :func:`run`'s ``spec`` (default: the built-in ``synthfaces``).
    ``label``: its leaderboard name (default: its class name). ``compare``: which of the
    benchmark's encoder entries run beside it, ``None`` (default) for only ``identity``, whose
    clean rows every utility and privacy score is measured against, ``"all"``, or a list of
    labels (``identity`` is always added). ``designer`` and ``alphas``: fit a learnable camera
    first, as a spec's encoder entry would (``designer="adversarial"``, ``alphas=[1, 50]``).
    ``options``: :func:`run`'s keyword options (``preset``, ``out_dir``, ``store``, ``device``,
    ``seed``, ``cache_dir``, ``workers``, ``report``, ...); rows of earlier runs in the same store
    are reused, so the comparison encoders of a finished default run cost nothing.
    """
    if "encoders" in options:
        raise ConfigError(
            "evaluate() takes compare= (the benchmark's encoders to run beside the camera), "
            "not encoders=."
        )
    run_options = [name for name in inspect.signature(run).parameters if name not in _NOT_OPTIONS]
    unknown = sorted(set(options) - set(run_options))
    if unknown:
        raise ConfigError(
            f"evaluate() got unknown option(s) {', '.join(unknown)}; it takes run()'s options: "
            f"{', '.join(run_options)}."
        )
    spec = resolve_spec(
        benchmark,
        preset=options.pop("preset", None),
        seed=options.pop("seed", None),
        data_paths=options.get("data_paths"),
        log=options.get("log"),
        overrides=options.pop("overrides", None),
    )
    spec, cameras = camera_spec(
        spec,
        as_encoder(camera, measurement_range=measurement_range),
        label=label,
        compare=compare,
        designer=designer,
        alphas=alphas,
    )
    return run(spec, cameras=cameras, **options)


def render_report(run_report: RunReport, out_path: Path, **options: Any) -> dict[str, Path]:
    """The leaderboard files of a finished run (see
    :func:`privbench.report.leaderboard.render_outputs`)."""
    from privbench.report.leaderboard import render_outputs

    spec = run_report.spec
    # titled like `privbench leaderboard` titles the same store: from the rows
    return render_outputs(
        run_report.results,
        out_path,
        data=run_report.data,
        encoders={label: fitted.encoder for label, fitted in run_report.fitted.items()},
        samples=spec.sample_encoder_inputs,
        device=run_report.cells[0].device if run_report.cells else "cpu",
        **options,
    )
