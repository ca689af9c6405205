"""The runner: cells = encoders × (tasks ∪ attacks) × seeds, each cell one stored result row.

Data flows one way: dataset → encoder → evaluation model → metrics → result row → store →
leaderboard. A cell is identified by the hash of everything it depends on (benchmark name and
version, dataset fingerprint, encoder config and learned-weights hash, evaluation name, version
and config, seed); cells already in the store are skipped, so a rerun recomputes nothing and an
interrupted run resumes where it stopped. Encoded datasets of an encoder are cached on disk,
content-addressed, and shared by all cells that use them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from privbench.api.cache import ArtifactCache
from privbench.api.config import stable_hash
from privbench.api.encoder import Encoder, encode_batches
from privbench.api.errors import ConfigError, OutputError, PrivbenchError
from privbench.api.evaluation import EvalInputs, Evaluation, Progress, ProgressBar, RunContext
from privbench.api.registry import ATTACKS, DATASETS, ENCODERS, TASKS
from privbench.runs.spec import BenchmarkSpec, ComponentSpec, load_spec
from privbench.runs.store import ResultRow, ResultStore, default_store_url

DEFAULT_BENCHMARK = "synthfaces"
DEFAULT_PRESET = "quick"
DEFAULT_OUT = "privbench-out"


@dataclass
class Cell:
    encoder_spec: ComponentSpec
    encoder: Encoder
    evaluation_spec: ComponentSpec
    evaluation: Evaluation
    seed: int
    key: str = ""


@dataclass
class RunReport:
    """What one run did: the rows of its benchmark group, cells run/skipped/failed, outputs."""

    results: pd.DataFrame
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


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("privbench", "torch", "torchvision", "numpy", "torchmetrics"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """Commit of the privbench source tree, when it is a git checkout (else None)."""
    source = Path(__file__).resolve().parents[2]
    try:
        output = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return output.stdout.strip() or None if output.returncode == 0 else None


def construct_component(registry, entry: ComponentSpec):
    """The registered component an entry names, built from its config (bad config: ConfigError)."""
    factory = registry.get(entry.name)
    try:
        return factory(**entry.config)
    except PrivbenchError:
        raise
    except TypeError as error:
        raise ConfigError(f"Invalid configuration for {registry.kind} {entry.name!r}: {error}") from None


class Runner:
    """Runs one resolved benchmark spec into a store (see module docstring)."""

    def __init__(
        self,
        spec: BenchmarkSpec,
        *,
        store: ResultStore,
        device: torch.device,
        cache: ArtifactCache,
        progress: "ProgressFactory | None" = None,
        log: Callable[[str], None] = print,
        study: str | None = None,
        trial: int | None = None,
        fitted_encoders: dict[str, Encoder] | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.device = device
        self.cache = cache
        self.progress = progress or ProgressFactory()
        self.log = log
        self.study = study
        self.trial = trial
        self.fitted_encoders = fitted_encoders or {}
        #: Receives the designer's per-cycle metrics (the tuner prunes hopeless trials here).
        self.design_report: Callable[[int, dict], None] = lambda step, values: None
        self._versions = package_versions()
        self._commit = git_commit()

    # -- data ---------------------------------------------------------------------------
    def load_data(self):
        # A spec whose ${NAME} data paths were never filled (e.g. a paper preset run without
        # --data) stops here with the list of paths it needs, before any work.
        require_data_paths(self.spec, {})
        builder = DATASETS.get(self.spec.dataset.name)
        with self.progress.stage(f"dataset {self.spec.dataset.name}", total=1) as bar:
            data = builder(cache_dir=self.cache.root / "datasets", **self.spec.dataset.config)
            bar.update(1)
        return data

    # -- cells --------------------------------------------------------------------------
    @staticmethod
    def data_view(data, source: str | None):
        """What an evaluation or designer reads: the dataset, or one source of a composite (``data:``)."""
        if source is None:
            return data
        if not hasattr(data, "source"):
            raise ConfigError(f"'data: {source}' names a source, but dataset {data.name!r} is not a composite.")
        return data.source(source)

    def build_cells(self, data) -> list[Cell]:
        # Evaluations first: a bad evaluation config fails before any encoder is fitted.
        evaluations = [(e, construct_component(TASKS, e)) for e in self.spec.tasks]
        evaluations += [(e, construct_component(ATTACKS, e)) for e in self.spec.attacks]
        return [
            Cell(encoder_spec, encoder, evaluation_spec, evaluation, seed)
            for encoder_spec, encoder in self.build_encoders(data)
            for evaluation_spec, evaluation in evaluations
            for seed in self.spec.seeds
        ]

    def build_encoders(self, data) -> list[tuple[ComponentSpec, Encoder]]:
        """Each encoder entry with its encoder, fitted by its designer (or taken from the cache)."""
        encoders = []
        for entry in self.spec.encoders:
            encoder = self.fitted_encoders.get(entry.display_name)
            if encoder is None:
                encoder = construct_component(ENCODERS, entry)
                if entry.designer is not None:
                    self.fit_encoder(entry, encoder, data)
            encoders.append((entry, encoder))
        return encoders

    def fit_encoder(self, entry: ComponentSpec, encoder: Encoder, data) -> None:
        """Fit ``encoder`` in place with the entry's designer; fitted weights are cached by content."""
        from privbench.api.registry import DESIGNERS

        if not encoder.learnable:
            raise ConfigError(
                f"Encoder entry {entry.display_name!r} names designer {entry.designer.name!r}, but encoder "
                f"{entry.name!r} has no learnable parameters (fixed baselines are never fitted)."
            )
        designer = construct_component(DESIGNERS, entry.designer)
        data = self.data_view(data, entry.designer.data)
        key = stable_hash(
            {
                "encoder": encoder.config_hash(),
                "initial_weights": encoder.weights_hash(),
                "designer": designer.config_hash(),
                "dataset": data.fingerprint,
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
                history = designer.fit(encoder, data, ctx)
                bar.update(1)
            state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
            self.cache.save("fitted", key, {"state": state, "history": history})
        else:
            encoder.load_state_dict(cached["state"])
            history = cached["history"]
        encoder.eval()
        encoder.alpha = float(designer.config.alpha)
        encoder.design_history = history
        encoder.designer_name = designer.name

    def cell_key(self, cell: Cell, data) -> str:
        payload = {
            "benchmark": self.spec.name,
            "benchmark_version": self.spec.version,
            "dataset": data.fingerprint,
            "encoder": cell.encoder.config_hash(),
            "weights": cell.encoder.weights_hash(),
            "evaluation": cell.evaluation.config_hash(),
            "seed": cell.seed,
            "study": self.study,
            "trial": self.trial,
        }
        if cell.evaluation_spec.data is not None:  # the same evaluation on another source is another cell
            payload["data_source"] = cell.evaluation_spec.data
        return stable_hash(payload, length=32)

    def encode_function(self, encoder: Encoder, data) -> Callable[[str, str], torch.Tensor]:
        """``(part, split) -> measurements``, cached on disk by encoder and data content."""

        def encode(part: str, split: str) -> torch.Tensor:
            key = stable_hash(
                {
                    "encoder": encoder.config_hash(),
                    "weights": encoder.weights_hash(),
                    "dataset": data.fingerprint,
                    "part": part,
                    "split": split,
                }
            )
            cached = self.cache.load("encoded", key)
            if cached is not None:
                return cached
            torch.manual_seed(0)  # encoders with sensor noise draw it reproducibly
            encoded = encode_batches(encoder, data.part(part)[split].images, device=self.device)
            self.cache.save("encoded", key, encoded)
            return encoded

        return encode

    def encode_images_function(self, encoder: Encoder) -> Callable[[torch.Tensor], torch.Tensor]:
        """``uint8 images -> measurements`` for evaluations that bring their own images, cached by content."""

        def encode_images(images: torch.Tensor) -> torch.Tensor:
            digest = hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            key = stable_hash(
                {"encoder": encoder.config_hash(), "weights": encoder.weights_hash(), "images": [list(images.shape), digest]}
            )
            cached = self.cache.load("encoded", key)
            if cached is not None:
                return cached
            torch.manual_seed(0)  # encoders with sensor noise draw it reproducibly
            encoded = encode_batches(encoder, images, device=self.device)
            self.cache.save("encoded", key, encoded)
            return encoded

        return encode_images

    def cell_inputs(self, cell: Cell, data) -> tuple[EvalInputs, RunContext]:
        """What the cell's evaluation reads (measurements, cached) and its context (workdir keyed by the cell)."""
        ctx = RunContext(
            device=self.device,
            seed=cell.seed,
            workdir=self.cache.root / "checkpoints" / cell.key,
            progress=self.progress,
            log=self.log,
            cache=self.cache,
        )
        view = self.data_view(data, cell.evaluation_spec.data)
        inputs = EvalInputs(
            view,
            self.encode_function(cell.encoder, view),
            encoder_name=cell.encoder.name,
            encode_images=self.encode_images_function(cell.encoder),
        )
        return inputs, ctx

    def run_cell(self, cell: Cell, data) -> ResultRow:
        inputs, ctx = self.cell_inputs(cell, data)
        torch.manual_seed(cell.seed)
        started = time.perf_counter()
        result = cell.evaluation.evaluate(inputs, ctx)
        elapsed = time.perf_counter() - started
        evaluation = cell.evaluation
        headline = evaluation.headline
        spec = evaluation.metrics.get(headline)
        return ResultRow(
            cell_key=cell.key,
            benchmark=self.spec.name,
            benchmark_version=self.spec.version,
            preset=self.spec.preset,
            dataset=data.name,
            dataset_fingerprint=data.fingerprint,
            encoder=cell.encoder.name,
            encoder_label=cell.encoder_spec.display_name,
            encoder_config=cell.encoder.config_dict(),
            encoder_config_hash=cell.encoder.config_hash(),
            encoder_weights_hash=cell.encoder.weights_hash(),
            encoder_description=cell.encoder.describe(),
            alpha=getattr(cell.encoder, "alpha", None),
            evaluation=evaluation.name,
            evaluation_version=evaluation.version,
            evaluation_config=evaluation.config_dict(),
            role=evaluation.role,
            protocol=evaluation.protocol_name,
            seed=cell.seed,
            metrics={k: float(v) for k, v in result.metrics.items()},
            headline_metric=headline,
            headline_value=float(result.metrics[headline]) if headline in result.metrics else None,
            higher_is_better=spec.higher_is_better if spec else True,
            chance=result.chance,
            details={
                **result.details,
                **({"designer": cell.encoder.designer_name} if hasattr(cell.encoder, "designer_name") else {}),
                **({"data_source": cell.evaluation_spec.data, "data_source_fingerprint": inputs.data.fingerprint} if inputs.data is not data else {}),
            },
            wall_time_s=elapsed,
            device=str(self.device),
            package_versions=self._versions,
            git_commit=self._commit,
            study=self.study,
            trial=self.trial,
        )

    def execute(self) -> RunReport:
        started = time.perf_counter()
        data = self.load_data()
        cells = self.build_cells(data)
        for cell in cells:
            cell.key = self.cell_key(cell, data)
        done = self.store.cell_keys()
        todo = [cell for cell in cells if cell.key not in done]
        report = RunReport(results=pd.DataFrame(), skipped=len(cells) - len(todo))
        if report.skipped:
            self.log(f"{report.skipped} of {len(cells)} cells already in the store: skipped.")
        with self.progress.stage("cells", total=len(todo)) as bar:
            for cell in todo:
                name = f"{cell.encoder_spec.display_name} × {cell.evaluation_spec.display_name} (seed {cell.seed})"
                bar.update(0, cell=name)
                try:
                    row = self.run_cell(cell, data)
                except PrivbenchError as error:
                    report.failures.append((name, str(error)))
                    self.log(f"cell {name} failed: {error}")
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as error:  # keep the other cells' results; report this one
                    report.failures.append((name, f"{type(error).__name__}: {error}"))
                    self.log(f"cell {name} failed:\n{traceback.format_exc()}")
                else:
                    self.store.add(row)
                    report.ran += 1
                bar.update(1)
        report.results = self.store.dataframe(benchmark=self.spec.name)
        report.results = report.results[
            (report.results["benchmark_version"] == self.spec.version)
            & (report.results["dataset_fingerprint"] == data.fingerprint)
        ].reset_index(drop=True)
        report.wall_time_s = time.perf_counter() - started
        self.data = data
        self.cells = cells
        return report


def require_data_paths(spec: BenchmarkSpec, data_paths: dict[str, str]) -> BenchmarkSpec:
    """``spec`` with its ``${NAME}`` data paths filled from ``data_paths`` (see :mod:`privbench.data.paths`).

    Raises a MissingDataError naming every path still needed (and the layout each dataset
    expects), or naming ``data_paths`` entries the spec does not use.
    """
    from privbench.data.paths import resolve_paths

    dumped = spec.model_dump()
    preset = spec.preset if spec.preset not in (None, spec.default_preset, "paper") else None
    filled = resolve_paths(dumped, data_paths, spec.name, spec.paths, preset)
    if filled == dumped:
        return spec
    resolved = BenchmarkSpec(**filled)
    object.__setattr__(resolved, "_preset", spec.preset)
    return resolved


class ProgressFactory(Progress):
    """Silent progress (the base); the CLI passes a rich-backed one."""

    def stage(self, description: str, total: int):
        return self(total, description)


class RichProgressFactory(ProgressFactory):
    """Progress bars on a rich console: one per stage, one per training run (transient)."""

    def __init__(self, console=None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

        self._progress = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self._started = False

    def __enter__(self):
        self._progress.start()
        self._started = True
        return self

    def __exit__(self, *exc):
        self._progress.stop()
        self._started = False

    def __call__(self, total: int, description: str) -> ProgressBar:
        return _RichBar(self._progress, total, description, transient=True)

    def stage(self, description: str, total: int) -> ProgressBar:
        return _RichBar(self._progress, total, description, transient=False)


class _RichBar(ProgressBar):
    def __init__(self, progress, total: int, description: str, transient: bool) -> None:
        self._progress = progress
        self._transient = transient
        self._task = progress.add_task(description, total=max(total, 0), info="")

    def update(self, advance: int = 1, **info: Any) -> None:
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
        self._progress.update(self._task, advance=advance, info=text)

    def close(self) -> None:
        if self._transient:
            self._progress.remove_task(self._task)


def resolve_spec(
    spec: Any = None,
    *,
    preset: str | None = None,
    encoders: list[str] | None = None,
    seed: int | None = None,
    data_paths: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[BenchmarkSpec, str | None]:
    """The spec a run executes, and its preset: loaded, preset applied (the spec's default when
    None), data paths filled, restricted to ``encoders`` and to ``seed`` when given."""
    spec = load_spec(spec if spec is not None else DEFAULT_BENCHMARK)
    if preset is None and spec.presets:
        preset = spec.default_preset or (DEFAULT_PRESET if DEFAULT_PRESET in spec.presets else None)
    spec = spec.resolve(preset)
    from privbench.data.paths import unused_paths

    for name in unused_paths(spec.model_dump(), data_paths):
        (log or (lambda message: None))(f"--data {name}: not used by {spec.name} ({preset or 'default'} preset); ignored.")
    spec = require_data_paths(spec, data_paths or {})
    if encoders:
        spec = spec.with_encoders(encoders)
    if seed is not None:
        spec = spec.model_copy(update={"seeds": [seed]})
        object.__setattr__(spec, "_preset", preset)
    return spec, preset


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
):
    """Run a benchmark and return its results as a DataFrame (or the full RunReport).

    ``spec``: a BenchmarkSpec, dict, YAML path or built-in benchmark name (default: the
    embedded ``synthfaces`` benchmark). ``preset``: e.g. ``quick`` (default) or ``standard``.
    ``encoders``: restrict to these encoder entries. ``store``: SQLAlchemy URL (default: SQLite
    file in ``out_dir``). ``seed``: run only this seed instead of the spec's seeds.
    ``data_paths``: name → path of the datasets (and files) the spec reads from disk, filling its
    ``${NAME}`` placeholders (the paper presets: ``{"vggface2": "/data/vggface2", ...}``); a
    MissingDataError lists what is still needed before any work starts.
    """
    spec, preset = resolve_spec(spec, preset=preset, encoders=encoders, seed=seed, data_paths=data_paths, log=log)
    torch_device = resolve_device(device)
    out_path = prepare_output_dir(out_dir) if out_dir is not None else None
    if store is None:
        if out_path is None:
            raise ConfigError("Give either an output folder (out_dir) or a store URL (store).")
        store = default_store_url(out_path)
    result_store = ResultStore(store)
    cache = ArtifactCache(cache_dir)
    runner = Runner(
        spec,
        store=result_store,
        device=torch_device,
        cache=cache,
        progress=progress,
        log=log or (lambda message: None),
    )
    run_report = runner.execute()
    if render and out_path is not None:
        from privbench.report.leaderboard import render_outputs

        run_report.outputs = render_outputs(
            run_report.results,
            out_path,
            title=f"{spec.name} v{spec.version} ({preset or 'default'} preset)",
            data=runner.data,
            encoders={cell.encoder_spec.display_name: cell.encoder for cell in runner.cells},
            samples=spec.sample_encoder_inputs,
            device=torch_device,
        )
    result_store.close()
    return run_report if report else run_report.results
