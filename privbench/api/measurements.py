"""What an evaluation reads: one split's measurements (or clean images), streamed in batches.

An evaluation never holds a split's measurements as one tensor. It receives a
:class:`Measurements` per part and split (from :class:`~privbench.api.evaluation.EvalInputs`) and
reads batches of it: ``x[indices]``, ``x.split(batch_size)`` (in order) or, in a training epoch,
``x.batches(index_batches, device)``, the pipeline: a :class:`torch.utils.data.DataLoader` whose
workers read the batch's ``uint8`` images (or cached measurements) from the split's on-disk store
(:mod:`privbench.api.arrays`), pinned on CUDA, then encoded on the fly on the cell's device. So a
run's memory is a few batches whatever the dataset's size, and a noisy camera draws its sensor
noise per batch from the cell's random stream: the attacker sees fresh noise every epoch, as it
would from a real camera.

Two kinds:

- :class:`ArrayMeasurements`: measurements already computed — the cached measurements of a
  fixed, noise-free encoder (an on-disk array) or a tensor in memory (tests, small inputs);
- :class:`EncodedImages`: a split's images through an encoder, encoded batch by batch (no
  encoder: the clean images as float in [0, 1]).

Every batch is checked for NaN and infinite values (a :class:`~privbench.api.errors.DataError`
naming the split). The surface the trainers use mirrors a tensor's (``shape``, ``len``,
indexing, ``split``, ``float``), so one training loop reads either kind.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from privbench.api.arrays import ArrayFile
from privbench.api.encoder import Encoder
from privbench.api.errors import DataError
from privbench.api.profiling import section

#: Measurements of a split up to this size are materialized by the trainers' statistics (one
#: exact pass in memory); larger ones are summarized in streamed chunks.
SMALL_SPLIT_BYTES = 256 << 20


#: A source of at most this many bytes is read in the calling process (its reads are page-cache
#: copies of a few megabytes; a worker process would cost more to start than it saves).
IN_PROCESS_SOURCE_BYTES = 128 << 20


def loader_workers(device: torch.device, source_bytes: int) -> int:
    """DataLoader worker processes reading a store of ``source_bytes``:
    ``PRIVBENCH_LOADER_WORKERS`` if set; else none for a small source
    (:data:`IN_PROCESS_SOURCE_BYTES`), 4 on CUDA (the GPU must not wait for the disk) and 1 on
    the CPU (reads overlap the compute; the cores stay with the training)."""
    configured = os.environ.get("PRIVBENCH_LOADER_WORKERS")
    if configured:
        return max(0, int(configured))
    if source_bytes <= IN_PROCESS_SOURCE_BYTES:
        return 0
    return 4 if device.type == "cuda" else 1


class ImageSource(Protocol):
    """A split's images as the data layer holds them (``privbench.data.containers.ImageSplit``):
    a ``uint8 (N, 3, H, W)`` tensor, and the image store it maps when there is one."""

    images: torch.Tensor
    store: ArrayFile | None


class _Reader(Dataset):
    """The picklable first stage of the pipeline: raw batches (``uint8`` images or stored
    measurements) of one split, read on the CPU in a DataLoader worker."""

    def __init__(self, source: ArrayFile | torch.Tensor):
        self.source = source  # an on-disk array (read with positional reads) or a tensor

    def __len__(self) -> int:
        return len(self.source)

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        index = torch.as_tensor(indices, dtype=torch.long)
        if isinstance(self.source, torch.Tensor):
            return self.source[index]
        return self.source.read(index)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]


def _source_bytes(source: ArrayFile | torch.Tensor) -> int:
    return source.nbytes if isinstance(source, ArrayFile) else 0


def _whole_batch(batch: torch.Tensor) -> torch.Tensor:
    return batch


class Measurements(ABC):
    """``N`` items of one shape ``(C, H, W)`` read in batches (see the module docstring)."""

    dtype = torch.float32
    #: The profile section (:mod:`privbench.api.profiling`) :meth:`_finish` is charged to.
    finish_section = "read"

    def __init__(self, count: int, item_shape: Sequence[int], name: str):
        self._shape = torch.Size([int(count), *(int(v) for v in item_shape)])
        self.name = name

    # -- what a subclass provides ------------------------------------------------------------
    @abstractmethod
    def _source(self) -> ArrayFile | torch.Tensor:
        """What :class:`_Reader` reads raw batches from (picklable for DataLoader workers)."""

    @abstractmethod
    def _finish(self, raw: torch.Tensor, device: torch.device) -> torch.Tensor:
        """A raw batch → float32 measurements on ``device``."""

    @abstractmethod
    def signature(self) -> Any:
        """A JSON-able identity of the content (for checkpoint signatures)."""

    @property
    def deterministic(self) -> bool:
        """Whether reading an item twice gives the same values (no sensor noise): then its
        exact content may stand for it in keys."""
        return True

    @property
    def in_memory(self) -> bool:
        """Whether the source is a tensor in memory (no worker processes then)."""
        return isinstance(self._source(), torch.Tensor)

    # -- the tensor-like surface -------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self._shape

    def __len__(self) -> int:
        return self._shape[0]

    def dim(self) -> int:
        return len(self._shape)

    def size(self, dim: int | None = None):
        return self._shape if dim is None else self._shape[dim]

    def float(self) -> Measurements:
        return self

    @property
    def nbytes(self) -> int:
        return math.prod(self._shape) * 4

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, shape={tuple(self._shape)})"

    def __getitem__(self, key: int | slice | torch.Tensor | Sequence[int]) -> torch.Tensor:
        if isinstance(key, int):
            return self[torch.tensor([key])][0]
        if isinstance(key, slice):
            key = torch.arange(len(self))[key]
        return self.read(torch.as_tensor(key, dtype=torch.long))

    def read(self, indices: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Items ``indices`` (a 1-D index tensor) as float32 on ``device``, read in this process."""
        raw = _Reader(self._source()).__getitems__(indices.tolist())
        return self._checked(self._finish(raw, torch.device(device)))

    def _checked(self, batch: torch.Tensor) -> torch.Tensor:
        # The sum is NaN or ±inf whenever an element is (one reduction, no boolean mask); only
        # then is the exact elementwise test run, so a finite sum that overflowed is not an error.
        if not torch.isfinite(batch.sum()) and not torch.isfinite(batch).all():
            raise DataError(f"{self.name}: measurements contain NaN or infinite values.")
        return batch

    def batches(
        self, index_batches: Sequence[torch.Tensor], device: torch.device | str = "cpu"
    ) -> Iterator[torch.Tensor]:
        """One tensor per entry of ``index_batches``, in order, through the pipeline: raw batches
        read by DataLoader workers (none for a source in memory), then finished on ``device``."""
        device = torch.device(device)
        if not index_batches:
            return
        source = self._source()
        workers = 0 if self.in_memory else loader_workers(device, _source_bytes(source))
        loader = DataLoader(
            _Reader(source),
            batch_sampler=[batch.tolist() for batch in index_batches],
            num_workers=workers,
            collate_fn=_whole_batch,
            pin_memory=device.type == "cuda",
            # A private generator: creating the loader must not draw from torch's global one
            # (it would shift the cell's dropout and noise stream).
            generator=torch.Generator(),
            prefetch_factor=2 if workers else None,
        )
        batches = iter(loader)
        while True:
            with section("read"):
                raw = next(batches, None)
            if raw is None:
                return
            with section(self.finish_section):
                batch = self._checked(self._finish(raw, device))
            yield batch

    def split(self, batch_size: int, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
        """Consecutive batches of ``batch_size`` items, in order (scoring, statistics)."""
        order = torch.arange(len(self))
        yield from self.batches(list(order.split(batch_size)), device)

    def materialize(self) -> torch.Tensor:
        """Every item as one float32 CPU tensor (small splits only: the trainers' exact
        statistics, models that need the whole split at once)."""
        chunks = list(self.split(256))
        if not chunks:
            return torch.empty(self._shape)
        return torch.cat(chunks)


class ArrayMeasurements(Measurements):
    """Measurements already computed: an on-disk array (cached) or a tensor in memory."""

    def __init__(self, values: ArrayFile | torch.Tensor, name: str, identity: Any = None):
        if isinstance(values, torch.Tensor) and values.dim() != 4:
            raise DataError(
                f"{name}: measurements must be a (N, C, H, W) tensor; got shape "
                f"{tuple(values.shape)}."
            )
        if len(values.shape) != 4:
            raise DataError(
                f"{name}: stored measurements must be (N, C, H, W); got {values.shape}."
            )
        super().__init__(values.shape[0], values.shape[1:], name)
        self.values = values
        self._identity = identity

    def _source(self) -> ArrayFile | torch.Tensor:
        return self.values

    def _finish(self, raw: torch.Tensor, device: torch.device) -> torch.Tensor:
        return raw.to(device, non_blocking=True).float()

    def signature(self) -> Any:
        if self._identity is not None:
            return self._identity
        if isinstance(self.values, ArrayFile):
            return ["array", self.values.digest]
        return ["tensor", tensor_fingerprint(self.values)]


class EncodedImages(Measurements):
    """A split's ``uint8`` images through ``encoder`` (in evaluation mode, without gradients),
    encoded batch by batch on the device the batch is read to; ``encoder=None``: the clean
    images as float in [0, 1]. ``identity``: what the encoder and data are (checkpoint
    signatures), the caller's cache key."""

    def __init__(self, images: ImageSource, encoder: Encoder | None, name: str, identity: Any):
        count, *image_shape = images.images.shape
        shape = tuple(image_shape) if encoder is None else encoder.output_shape(tuple(image_shape))
        super().__init__(count, shape, name)
        self.images = images
        self.encoder = encoder
        self._identity = identity
        self.finish_section = "read" if encoder is None else "encode"

    @property
    def deterministic(self) -> bool:
        return self.encoder is None or not self.encoder.has_sensor_noise()

    def _source(self) -> ArrayFile | torch.Tensor:
        return self.images.store if self.images.store is not None else self.images.images

    @torch.no_grad()
    def _finish(self, raw: torch.Tensor, device: torch.device) -> torch.Tensor:
        clean = raw.to(device, non_blocking=True).float().div_(255.0)
        if self.encoder is None:
            return clean
        self.encoder.to(device).eval()
        return self.encoder(clean).float()

    def signature(self) -> Any:
        return ["encoded", self._identity]


def as_measurements(x: Measurements | torch.Tensor, name: str) -> Measurements:
    """``x`` as :class:`Measurements` (a tensor becomes an in-memory :class:`ArrayMeasurements`)."""
    if isinstance(x, Measurements):
        return x
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{name}: expected measurements or a tensor; got {type(x).__name__}.")
    return ArrayMeasurements(x, name)


def tensor_fingerprint(x: torch.Tensor) -> list[Any]:
    """Cheap content fingerprint of a tensor (shape, sum, and a strided sample) for checkpoint
    signatures."""
    flat = x.detach().reshape(-1)
    sample = flat[:: max(1, flat.numel() // 4096)].double()
    weights = torch.arange(1, sample.numel() + 1, dtype=torch.float64)
    return [
        list(x.shape),
        str(x.dtype),
        round(float(flat.sum()), 2),
        round(float((sample * weights).sum()), 6),
    ]


def content_signature(x: Measurements | torch.Tensor) -> Any:
    """What a checkpoint signature records of a split: a tensor's fingerprint, or the identity
    of streamed measurements (reading them all would cost an epoch)."""
    if isinstance(x, Measurements):
        return x.signature()
    return tensor_fingerprint(x)


def channel_statistics(x: Measurements | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of ``(N, C, H, W)``; constant channels get std 1.

    A tensor, or measurements of up to :data:`SMALL_SPLIT_BYTES`, in one exact float64 pass in
    memory; larger measurements in streamed chunks, combined with Chan et al.'s pairwise update
    of mean and squared deviations (float64), so the result does not depend on the dataset
    fitting in memory.
    """
    if not is_small(x):
        return _streamed_statistics(x)
    values = in_memory(x)
    flat = values.detach().transpose(0, 1).reshape(values.shape[1], -1).double()
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False)
    return _finish_statistics(mean, std)


def _finish_statistics(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return mean.float(), std.float()


def _streamed_statistics(x: Measurements) -> tuple[torch.Tensor, torch.Tensor]:
    mean, variance, _ = streamed_moments(x)
    return _finish_statistics(mean, variance.sqrt())


def is_small(x: Measurements | torch.Tensor) -> bool:
    """Whether ``x`` is a tensor or measurements of at most :data:`SMALL_SPLIT_BYTES` (which
    the trainers materialize for exact whole-split statistics and scores)."""
    return not isinstance(x, Measurements) or x.nbytes <= SMALL_SPLIT_BYTES


def in_memory(x: Measurements | torch.Tensor) -> torch.Tensor:
    """``x`` as one tensor (a small split: see :func:`is_small`)."""
    return x.materialize() if isinstance(x, Measurements) else x


def streamed_moments(x: Measurements) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean, biased variance (float64) and the number of values per channel, in
    one streamed pass (Chan et al.'s pairwise combination of chunk moments)."""
    channels = x.shape[1]
    count = 0
    mean = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)  # sum of squared deviations (M2)
    for chunk in x.split(64):
        flat = chunk.transpose(0, 1).reshape(channels, -1).double()
        n = flat.shape[1]
        chunk_mean = flat.mean(dim=1)
        chunk_squares = ((flat - chunk_mean[:, None]) ** 2).sum(dim=1)
        delta = chunk_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        squares = squares + chunk_squares + delta**2 * (count * n / total)
        count = total
    return mean, squares / max(count, 1), count
