"""Self-contained cells: one encoder configuration × one evaluation × one seed.

A :class:`Cell` carries everything its result depends on — the benchmark's identity, the spec
entries, the fitted encoder (:class:`FittedEncoder`, weights hashed once), the evaluation, the
seed, a :class:`DatasetRef` to its data, the device and the artifact cache — so that
:func:`evaluate_cell` is a function of the cell alone: the runner calls it in-process today, and
the same call can run in another process or on another machine (the data reference resolves
there from the content-addressed cache). The cell's key hashes everything it depends on, so a
store that already holds the key never runs it again.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch

from privbench import __version__ as privbench_version
from privbench.api.adapter import load_dataset
from privbench.api.arrays import ArrayFile, ArrayWriter, open_array
from privbench.api.cache import ArtifactCache
from privbench.api.config import stable_hash
from privbench.api.encoder import Encoder, encode_batches
from privbench.api.errors import ConfigError
from privbench.api.evaluation import EvalInputs, EvalResult, Evaluation, Progress, RunContext
from privbench.api.measurements import ArrayMeasurements, EncodedImages, Measurements
from privbench.data.containers import BenchmarkData, ImageSplit
from privbench.runs.rows import ResultRow
from privbench.runs.spec import ComponentSpec


@dataclass
class FittedEncoder:
    """An encoder configuration ready for its cells: the encoder (fitted when it has a designer),
    its config and weights hashes (computed once here), and how it was fitted."""

    label: str
    encoder: Encoder
    config_hash: str
    weights_hash: str | None
    alpha: float | None = None
    designer: str | None = None
    #: The designer's history (per-cycle records), ``None`` for fixed encoders.
    history: Any = None

    @classmethod
    def of(cls, label: str, encoder: Encoder, **fitting: Any) -> FittedEncoder:
        encoder.eval()
        return cls(label, encoder, encoder.config_hash(), encoder.weights_hash(), **fitting)


#: Datasets loaded in this process and still in use, by fingerprint: a cell resolves its
#: reference here first (the in-process runner registers what it loaded), else it rebuilds from
#: the cache. Weak values: a finished run's data is not kept alive by the memo.
_LOADED: weakref.WeakValueDictionary[str, BenchmarkData] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class DatasetRef:
    """Where a cell's data comes from: the registered dataset, its config, the cache folder its
    build reads and writes, and the fingerprint that identifies the content."""

    #: The registered dataset (adapter) name the data is rebuilt with.
    name: str
    config: dict[str, Any]
    fingerprint: str
    cache_root: str
    #: The loaded data's own name (a composite names its sources), as result rows record it.
    data_name: str

    @classmethod
    def of(
        cls, data: BenchmarkData, name: str, config: dict[str, Any], cache: ArtifactCache
    ) -> DatasetRef:
        _LOADED[data.fingerprint] = data
        return cls(name, dict(config), data.fingerprint, str(cache.root), data.name)

    def load(self) -> BenchmarkData:
        data = _LOADED.get(self.fingerprint)
        if data is None:
            data = load_dataset(
                self.name, self.config, ArtifactCache(self.cache_root).root / "datasets"
            )
            if data.fingerprint != self.fingerprint:
                raise ConfigError(
                    f"Dataset {self.name!r} rebuilt with fingerprint {data.fingerprint}, but the "
                    f"cell was planned on {self.fingerprint}: the "
                    "data changed between planning and running."
                )
            _LOADED[data.fingerprint] = data
        return data


def dataset_view(data: BenchmarkData, source: str | None) -> BenchmarkData:
    """What an evaluation or designer reads: the dataset, or one source of a
    composite (``data:``)."""
    if source is None:
        return data
    return data.source(source)


@dataclass
class Cell:
    """One stored result row's worth of work (see module docstring)."""

    benchmark: str
    benchmark_version: str
    preset: str | None
    encoder_entry: ComponentSpec
    fitted: FittedEncoder
    evaluation_entry: ComponentSpec
    evaluation: Evaluation
    seed: int
    data: DatasetRef
    device: str = "cpu"
    cache_root: str | None = None
    study: str | None = None
    trial: int | None = None
    key: str = field(init=False)

    def __post_init__(self) -> None:
        payload = {
            "benchmark": self.benchmark,
            "benchmark_version": self.benchmark_version,
            "dataset": self.data.fingerprint,
            "encoder": self.fitted.config_hash,
            "weights": self.fitted.weights_hash,
            "evaluation": self.evaluation.config_hash(),
            "seed": self.seed,
            "study": self.study,
            "trial": self.trial,
        }
        if self.evaluation_entry.data is not None:  # the same evaluation on another source
            payload["data_source"] = self.evaluation_entry.data
        self.key = stable_hash(payload, length=32)

    @property
    def name(self) -> str:
        return (
            f"{self.encoder_entry.display_name} × {self.evaluation_entry.display_name} "
            f"(seed {self.seed})"
        )

    @property
    def cache(self) -> ArtifactCache:
        return ArtifactCache(self.cache_root)


def _encoded_or_cached(
    cache: ArtifactCache, key: str, fitted: FittedEncoder, images: torch.Tensor, device: str
) -> torch.Tensor:
    """The encoder's measurements of an evaluation's own (small) ``images``: a noisy encoder's
    drawn from the cell's random stream, a noise-free one's built once per key (the cache's
    lock) on a fork of the cell's random state
    (:meth:`~privbench.api.cache.ArtifactCache.get_or_build`)."""
    if fitted.encoder.has_sensor_noise():
        return encode_batches(fitted.encoder, images, device=device)
    return cache.get_or_build(
        "encoded", key, lambda: encode_batches(fitted.encoder, images, device=device)
    )


def cached_measurements(
    cache: ArtifactCache, key: str, encoder: Encoder, split: ImageSplit, name: str, device: str
) -> ArrayMeasurements:
    """The measurements of a fixed, noise-free ``encoder`` of ``split``, encoded once per key
    (under the cache's lock, batch by batch straight into an on-disk array: never one tensor in
    memory) and memory-mapped from ``<cache>/encoded/<key>.npy`` afterwards. The batches are
    those of :func:`~privbench.api.encoder.encode_batches`, so the values are the ones an
    in-memory encoding gives, bit for bit."""
    path = cache.path("encoded", key, ".npy")
    array = open_array(path, verify=True)
    if array is None:
        with cache.lock("encoded", key):
            array = open_array(path, verify=True)
            if array is None:
                _encode_to_array(encoder, split, path, device)
                array = ArrayFile(path)
    return ArrayMeasurements(array, name, identity=["encoded", key])


@torch.no_grad()
def _encode_to_array(
    encoder: Encoder, split: ImageSplit, path, device: str, batch_size: int = 256
) -> None:
    count = len(split)
    clean = EncodedImages(split, None, "images", None)
    order = list(torch.arange(count).split(batch_size))
    encoder = encoder.to(device).eval()
    writer: ArrayWriter | None = None
    with ExitStack() as stack:
        start = 0
        for batch in clean.batches(order, device):
            measured = encoder(batch).float().cpu()
            if writer is None:  # the shape the encoder really produces
                shape = (count, *measured.shape[1:])
                writer = stack.enter_context(ArrayWriter(path, shape, torch.float32))
            writer.write(start, measured)
            start += measured.shape[0]
        if writer is None:  # an empty split
            shape = (0, *encoder.output_shape(tuple(split.images.shape[1:])))
            stack.enter_context(ArrayWriter(path, shape, torch.float32))


#: What the cached measurements' keys hold besides the encoder's own config, version (or source,
#: unregistered) and weights: the privbench release, so that no release reads measurements an
#: earlier one computed (an encoder fixed between releases bumps its own version too).
MEASUREMENT_CODE = privbench_version


def encode_split_function(cell: Cell, view: BenchmarkData) -> Callable[[str, str], Measurements]:
    """``(part, split) -> measurements`` of the cell's encoder: read from the cache when the
    encoder allows it (:meth:`~privbench.api.encoder.Encoder.caches_measurements`: no sensor
    noise, and caching pays for the split's size), else encoded batch by batch as the
    evaluation reads them; keyed by encoder and data content."""
    cache, fitted = cell.cache, cell.fitted

    def encode(part: str, split: str) -> Measurements:
        key = stable_hash(
            {
                "code": MEASUREMENT_CODE,
                "encoder": fitted.config_hash,
                "weights": fitted.weights_hash,
                "dataset": view.fingerprint,
                "part": part,
                "split": split,
            }
        )
        images = view.part(part)[split]
        name = f"{fitted.label} measurements of {part}/{split}"
        streamed = EncodedImages(images, fitted.encoder, name, key)
        if fitted.encoder.caches_measurements(streamed.nbytes, images.image_bytes):
            return cached_measurements(cache, key, fitted.encoder, images, name, cell.device)
        return streamed

    return encode


def encode_images_function(cell: Cell) -> Callable[[torch.Tensor], torch.Tensor]:
    """``uint8 images -> measurements`` for evaluations that bring their own images,
    cached by content."""
    cache, fitted = cell.cache, cell.fitted

    def encode_images(images: torch.Tensor) -> torch.Tensor:
        digest = hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        key = stable_hash(
            {
                "code": MEASUREMENT_CODE,
                "encoder": fitted.config_hash,
                "weights": fitted.weights_hash,
                "images": [list(images.shape), digest],
            }
        )
        return _encoded_or_cached(cache, key, fitted, images, cell.device)

    return encode_images


def cell_inputs(
    cell: Cell,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    data: BenchmarkData | None = None,
) -> tuple[EvalInputs, RunContext]:
    """What the cell's evaluation reads (measurements, cached) and its context (workdir
    keyed by the cell). ``data``: the cell's dataset where the caller has it (a worker got it
    from the object store); else the cell's reference resolves it."""
    cache = cell.cache
    ctx = RunContext(
        device=torch.device(cell.device),
        seed=cell.seed,
        workdir=cache.root / "checkpoints" / cell.key,
        progress=progress or Progress(),
        log=log or (lambda message: None),
        cache=cache,
    )
    if data is None:
        data = cell.data.load()
    elif data.fingerprint != cell.data.fingerprint:
        raise ConfigError(
            f"Cell {cell.name} was planned on dataset {cell.data.fingerprint} but was given "
            f"{data.fingerprint}."
        )
    view = dataset_view(data, cell.evaluation_entry.data)
    inputs = EvalInputs(
        view,
        encode_split_function(cell, view),
        encoder_name=cell.fitted.encoder.name,
        encode_images=encode_images_function(cell),
        measurement_range=cell.fitted.encoder.measurement_range(),
    )
    return inputs, ctx


@dataclass
class CellOutcome:
    """What :func:`evaluate_cell` measured, before it becomes a result row."""

    result: EvalResult
    wall_time_s: float
    data_source_fingerprint: str | None
    #: The training curves of the cell's models (:func:`privbench.nn.epochs.training_curve`).
    curves: list[dict[str, Any]] = field(default_factory=list)


def evaluate_cell(
    cell: Cell,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    data: BenchmarkData | None = None,
) -> ResultRow:
    """Run one cell: its evaluation on its encoder's measurements; returns its result row.

    ``progress`` and ``log`` only report; the row depends on the cell alone (and the torch
    threads it ran with: :func:`privbench.runs.tasks.run_cell` fixes them and forks the random
    state around this call).
    """
    inputs, ctx = cell_inputs(cell, progress, log, data)
    torch.manual_seed(cell.seed)
    started = time.perf_counter()
    result = cell.evaluation.evaluate(inputs, ctx)
    elapsed = time.perf_counter() - started
    if cell.evaluation.role == "utility" and result.chance is None:
        raise ConfigError(
            f"The task {cell.evaluation.name!r} returned no chance level: a utility task must "
            "report what its headline scores without learning anything (EvalResult(chance=...): "
            "e.g. the majority class's accuracy, a trivial output's score), because utility is "
            "(metric − chance) ÷ (clean metric − chance)."
        )
    source = inputs.data.fingerprint if cell.evaluation_entry.data is not None else None
    return ResultRow.from_cell(cell, CellOutcome(result, elapsed, source, ctx.curves))
