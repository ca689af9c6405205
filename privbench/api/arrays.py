"""On-disk arrays: image stores and cached measurements as ``.npy`` files, opened, not read.

A split's decoded, resized images (``uint8 (N, 3, H, W)``) and the cached measurements of a fixed,
noise-free encoder (``float32 (N, C, h, w)``) are each one ``.npy`` file. Why ``.npy`` and not a
chunked format (zarr, HDF5): its layout is a short header followed by the C-ordered array, so

- opening a split reads the header only (:func:`numpy.load` with ``mmap_mode``); item ``i`` is one
  contiguous byte range at a computable offset, read with one ``pread`` (:meth:`ArrayFile.read`);
- every process on a machine (Ray workers, DataLoader workers) reads the same file through the
  operating system's page cache: nothing is copied per worker, and a Ray task receives the path,
  not the data (:meth:`ArrayFile.__reduce__`);
- it needs no library beyond numpy and any tool reads it back (``np.load(path, mmap_mode="r")``).

What a chunked format would add — compression, object-store backends — does not pay here: photos
stored as raw ``uint8`` compress poorly without a lossy codec, measurements of real optics are
noisy floats, and the cache lives on a local or shared POSIX file system.

Reads go through :meth:`ArrayFile.read` (positional reads into a fresh buffer), not through the
memory map: a batch read that way occupies the process's memory only while the batch lives, so a
training run's resident memory does not grow with the dataset (the page cache, which the kernel
reclaims at will, holds what was read). :meth:`ArrayFile.tensor` is the whole array as a
memory-mapped tensor view, for code that wants random access to a few items.

Writes are atomic: :class:`ArrayWriter` fills a temporary file next to the target and renames it
into place when complete, so a killed writer never leaves a half-written array that a reader could
open. Each file has a digest beside it (``<name>.json``): the SHA-256 of dtype, shape and bytes,
computed while writing (the same value :func:`privbench.data.formats.tensor_digest` gives for the
array as a tensor), so a dataset's fingerprint is known without reading the array again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privbench.api.errors import DataError

#: How many bytes :meth:`ArrayFile.read` reads per system call at most, and what the digest of
#: a written file hashes at a time.
CHUNK_BYTES = 64 << 20

_TORCH_DTYPES = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.int64): torch.int64,
}


def digest_header(dtype: torch.dtype, shape: tuple[int, ...]) -> bytes:
    """What a content digest hashes before the bytes (as :func:`hash_tensor` does)."""
    return f"{dtype}{tuple(shape)}".encode()


class ArrayFile:
    """One ``.npy`` array on disk: its shape, dtype and digest; items read on demand."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            mapped = np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise DataError(
                f"Array file {str(self.path)!r} cannot be opened ({error}); delete it and run "
                "again to rebuild it."
            ) from None
        if mapped.dtype not in _TORCH_DTYPES or not mapped.flags.c_contiguous:
            raise DataError(
                f"Array file {str(self.path)!r} holds a {mapped.dtype} array in a layout privbench "
                f"did not write (accepted: C-ordered {', '.join(map(str, _TORCH_DTYPES))})."
            )
        self.shape: tuple[int, ...] = tuple(int(v) for v in mapped.shape)
        self.numpy_dtype = mapped.dtype
        self.dtype: torch.dtype = _TORCH_DTYPES[mapped.dtype]
        self.offset = int(mapped.offset)
        self.item_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * mapped.dtype.itemsize
        del mapped
        self._handle: int | None = None
        self._pid: int | None = None

    # -- identity --------------------------------------------------------------------------
    @property
    def digest_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def digest(self) -> str:
        """SHA-256 of dtype, shape and bytes, as recorded when the file was written (computed
        now, once, for a file written without one)."""
        try:
            return json.loads(self.digest_path.read_text())["sha256"]
        except (OSError, ValueError, KeyError):
            value = self._compute_digest()
            _write_json(self.digest_path, {"sha256": value})
            return value

    def _compute_digest(self) -> str:
        digest = hashlib.sha256(digest_header(self.dtype, self.shape))
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest()

    @property
    def nbytes(self) -> int:
        return self.item_bytes * self.shape[0]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ArrayFile({str(self.path)!r}, {self.dtype}, {self.shape})"

    def __reduce__(self):
        # A Ray task or DataLoader worker receives the path and opens the file itself.
        return (ArrayFile, (str(self.path),))

    # -- reading ---------------------------------------------------------------------------
    def _fd(self) -> int:
        if self._handle is None or self._pid != os.getpid():  # a forked worker opens its own
            self._handle = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._handle

    def read(self, indices: torch.Tensor | list[int] | range) -> torch.Tensor:
        """Items ``indices`` (in that order) as a new CPU tensor, read with positional reads:
        runs of consecutive indices are one read each."""
        order = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        count = int(order.numel())
        out = np.empty((count, *self.shape[1:]), dtype=self.numpy_dtype)
        if count:
            if int(order.min()) < 0 or int(order.max()) >= self.shape[0]:
                raise IndexError(
                    f"{self.path}: index out of range for {self.shape[0]} items "
                    f"(got {int(order.min())}..{int(order.max())})"
                )
            flat = out.reshape(count, -1).view(np.uint8).reshape(-1)
            values = order.tolist()
            start = 0
            per_read = max(1, CHUNK_BYTES // max(self.item_bytes, 1))
            while start < count:
                stop = start + 1
                while (
                    stop < count
                    and values[stop] == values[stop - 1] + 1
                    and stop - start < per_read
                ):
                    stop += 1
                self._read_into(
                    flat[start * self.item_bytes : stop * self.item_bytes], values[start]
                )
                start = stop
        return torch.from_numpy(out)

    def _read_into(self, buffer: np.ndarray, first: int) -> None:
        position = self.offset + first * self.item_bytes
        view = memoryview(buffer)
        done = 0
        while done < len(view):
            got = os.preadv(self._fd(), [view[done:]], position + done)
            if got == 0:
                raise DataError(
                    f"Array file {str(self.path)!r} is shorter than its header says (truncated); "
                    "delete it and run again to rebuild it."
                )
            done += got

    def tensor(self) -> torch.Tensor:
        """The whole array as a tensor over a copy-on-write memory map of the file: opened, not
        read (pages are read when touched; writes to the tensor never reach the file)."""
        return torch.from_numpy(np.load(self.path, mmap_mode="c"))

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            os.close(self._handle)
        self._handle = None


class ArrayWriter:
    """Write an array of known shape row block by row block, atomically (see module docstring).

    ``with ArrayWriter(path, shape, dtype) as writer: writer.write(start, block)``; the file
    appears at ``path`` (with its digest) only when the block completes without an error, and
    every row must have been written once, in order. Writes are positional writes to the file,
    not through a memory map, so the rows written never count in the writer's resident memory.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: torch.dtype):
        self.path = Path(path)
        self.shape = tuple(int(v) for v in shape)
        self.dtype = dtype
        self.numpy_dtype = torch.empty((), dtype=dtype).numpy().dtype
        self.item_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.numpy_dtype.itemsize
        self._next = 0
        self._digest = hashlib.sha256(digest_header(dtype, self.shape))
        self._temporary: str | None = None
        self._handle: int | None = None
        self._offset = 0
        self._direct = False

    def __enter__(self) -> ArrayWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self._temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        with os.fdopen(os.dup(handle), "wb") as stream:
            header = {
                "descr": np.lib.format.dtype_to_descr(self.numpy_dtype),
                "fortran_order": False,
                "shape": self.shape,
            }
            np.lib.format.write_array_header_1_0(stream, header)
            self._offset = stream.tell()
        os.ftruncate(handle, self._offset + self.item_bytes * self.shape[0])  # zeros, sparse
        self._handle = handle
        return self

    def _pwrite(self, row: int, values: np.ndarray) -> None:
        assert self._handle is not None
        view = memoryview(np.ascontiguousarray(values)).cast("B")
        position = self._offset + row * self.item_bytes
        done = 0
        while done < len(view):
            done += os.pwrite(self._handle, view[done:], position + done)

    def rows(self) -> _Rows:
        """The array being written, as a target to fill row by row in any order (decoders place
        images as they finish: ``rows[i, :, y0:y1, x0:x1] = image``, each row once, the rest of
        the row zero); the digest is then computed from the file when the block completes."""
        self._direct = True
        return _Rows(self)

    def write(self, start: int, block: torch.Tensor) -> None:
        """Rows ``start .. start + len(block)`` (the next rows: blocks come in order)."""
        if start != self._next:
            raise ValueError(
                f"rows must be written in order: expected row {self._next}, got {start}"
            )
        values = block.detach().to("cpu", self.dtype).contiguous()
        if tuple(values.shape[1:]) != self.shape[1:] or start + values.shape[0] > self.shape[0]:
            raise ValueError(
                f"block of shape {tuple(values.shape)} at row {start} does not fit {self.shape}"
            )
        array = values.numpy()
        self._pwrite(start, array)
        self._digest.update(array.tobytes())
        self._next = start + array.shape[0]

    def __exit__(self, kind, error, traceback) -> None:
        assert self._temporary is not None and self._handle is not None
        try:
            if error is None:
                if not self._direct and self._next != self.shape[0]:
                    raise ValueError(
                        f"{self.path}: {self._next} of {self.shape[0]} rows written before close"
                    )
                os.fsync(self._handle)
                if self._direct:
                    self._digest = hashlib.sha256(digest_header(self.dtype, self.shape))
                    with open(self._temporary, "rb") as handle:
                        handle.seek(self._offset)
                        while chunk := handle.read(CHUNK_BYTES):
                            self._digest.update(chunk)
                _write_json(self.path.with_suffix(".json"), {"sha256": self._digest.hexdigest()})
                os.replace(self._temporary, self.path)
        finally:
            os.close(self._handle)
            self._handle = None
            if os.path.exists(self._temporary):
                os.unlink(self._temporary)

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()


class _Rows:
    """:meth:`ArrayWriter.rows`: ``rows[i, :, ys, xs] = values`` writes row ``i`` (zeros around
    ``values``) to the file."""

    def __init__(self, writer: ArrayWriter):
        self.writer = writer
        self.shape = torch.Size(writer.shape)

    def __setitem__(self, key: tuple, values: torch.Tensor) -> None:
        row, *rest = key
        full = torch.zeros(self.shape[1:], dtype=self.writer.dtype)
        full[tuple(rest)] = values
        self.writer._pwrite(int(row), full.numpy())


def write_array(path: str | Path, values: torch.Tensor) -> ArrayFile:
    """Write one in-memory tensor as an array file (atomic, with its digest) and open it."""
    with ArrayWriter(path, tuple(values.shape), values.dtype) as writer:
        writer.write(0, values)
    return ArrayFile(path)


#: Files whose bytes matched their recorded digest in this process: (path, size, mtime) →
#: True. A cache file is hashed once per process, not once per cell that opens it.
_VERIFIED: dict[tuple[str, int, int], bool] = {}


def open_array(path: str | Path, *, verify: bool = False) -> ArrayFile | None:
    """The array file at ``path``, or None when it is missing or cannot be opened (a damaged
    cache file is rebuilt, never trusted). ``verify``: also None (and the file deleted) when
    its bytes do not hash to the digest recorded when it was written, or it has none: the
    memory-mapped measurement cache, where a damaged file would otherwise be read as data."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        array = ArrayFile(path)
    except DataError:
        return None
    if verify and not _matches_recorded_digest(array):
        array.close()
        path.unlink(missing_ok=True)
        array.digest_path.unlink(missing_ok=True)
        return None
    return array


def _matches_recorded_digest(array: ArrayFile) -> bool:
    stat = array.path.stat()
    key = (str(array.path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        try:
            recorded = json.loads(array.digest_path.read_text())["sha256"]
        except (OSError, ValueError, KeyError):
            return False
        _VERIFIED[key] = array._compute_digest() == recorded
    return _VERIFIED[key]


def _write_json(path: Path, value: Any) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(value, stream)
    os.replace(temporary, path)
