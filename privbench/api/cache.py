"""Content-addressed artifact cache (generated datasets, encoded datasets, checkpoints).

Artifacts are stored under ``<root>/<kind>/<key>.pt`` where ``key`` hashes everything the
artifact depends on, so a rerun finds what it computed before and a changed config misses
exactly the artifacts it touches. Writes are atomic (temp file + rename): a killed process
never leaves a half-written artifact behind, and a reader that opens the file while a writer
replaces it keeps reading the complete old file. Each artifact is headed by the SHA-256 of its
bytes: a damaged file (a bad disk, a partial copy) is recomputed, not loaded (``torch.load``
reads random bytes inside a tensor without complaint).

Several processes (Ray workers of one run, or several runs) may share one cache. An artifact
that many cells need (the clean detector, the clean face-ID model, ...) is built through
:meth:`ArtifactCache.get_or_build`, which holds a per-key file lock while it builds, so it is
built once: the other processes wait for the lock, then load what the first one saved. A build
runs on a fork of the caller's random state, so a hit and a miss leave the caller's stream alike.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from privbench.api.errors import PrivbenchError
from privbench.api.profiling import section


class CacheLockError(PrivbenchError):
    """The file system of the artifact cache refuses file locks."""


def default_cache_root() -> Path:
    return Path(os.environ.get("PRIVBENCH_CACHE") or Path.home() / ".cache" / "privbench")


@dataclass(frozen=True)
class Obtained:
    """What :meth:`ArtifactCache.obtain` returns: the value, and whether it was loaded from the
    cache (``True``) or built by this call (``False``): a built value is the object ``build``
    returned, not a reload of the file, so a call site can keep using what it built."""

    value: Any
    from_cache: bool


class ArtifactCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, key: str, suffix: str = ".pt") -> Path:
        return self.root / kind / f"{key}{suffix}"

    def load(self, kind: str, key: str) -> Any | None:
        """The stored value, or ``None`` (a miss) when there is none or it is corrupt (then it
        is deleted: a corrupt artifact is recomputed, never trusted)."""
        path = self.path(kind, key)
        if not path.is_file():
            self.misses += 1
            return None
        value = load_verified(path)
        if value is None:  # damaged (its checksum does not match): recomputed, never trusted
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def save(self, kind: str, key: str, value: Any) -> Path:
        path = self.path(kind, key)
        atomic_torch_save(value, path)
        return path

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Hold an exclusive lock on ``(kind, key)`` for the ``with`` block: ``fcntl.flock`` on
        ``<root>/<kind>/<key>.lock``, blocking until every other holder (another process, or
        another thread of this one) has left its block. Only callers that take the lock are
        excluded; plain :meth:`load` and :meth:`save` never wait for it.

        Scope: across processes of one machine always. Across machines only where the file
        system implements ``flock`` cluster-wide: Linux NFS clients (2.6.12 on) map it onto NFS
        byte-range locks, so it holds across NFS clients; Lustre needs the ``flock`` mount
        option (``localflock`` locks one node only) and some FUSE or SMB mounts lock one node
        only, where two nodes may build the same artifact twice (the writes stay atomic, so
        the cache stays valid: the cost is duplicated work). Lock files are left in place
        (deleting one would let a waiting process lock a file a newcomer no longer sees).
        """
        path = self.path(kind, key, ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # RDWR: NFS write locks need it
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                raise CacheLockError(
                    f"cannot lock {path}: the file system of the artifact cache refuses file "
                    f"locks ({os.strerror(error.errno)}). Put the cache on a file system with "
                    "flock support (a local disk, NFS with lockd, Lustre mounted with -o flock) "
                    "by setting PRIVBENCH_CACHE or --cache-dir."
                ) from error
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)

    def obtain(self, kind: str, key: str, build: Callable[[], Any]) -> Obtained:
        """Load ``(kind, key)``, or build, save and return it, building at most once across
        every process that shares this cache: on a miss it takes :meth:`lock`, looks again
        (another process may have built it while this one waited), and only then calls
        ``build``. A missing or corrupt file is rebuilt (the atomic save replaces it). Counts
        one hit or one miss per call. ``build`` must not return ``None`` (``None`` reads as a
        miss) and must not take the same key's lock (it would wait for itself)."""
        path = self.path(kind, key)
        value = _read(path)  # fast path: no lock once the artifact exists
        if value is None:
            with self.lock(kind, key):
                value = _read(path)
                if value is None:
                    with _forked_random_state():
                        value = build()
                    if value is None:
                        raise TypeError(f"the build of cached artifact {kind}/{key} returned None")
                    atomic_torch_save(value, path)
                    self.misses += 1
                    return Obtained(value, from_cache=False)
        self.hits += 1
        return Obtained(value, from_cache=True)

    def get_or_build(self, kind: str, key: str, build: Callable[[], Any]) -> Any:
        """:meth:`obtain`'s value: the stored artifact, or the one ``build`` returned."""
        return self.obtain(kind, key, build).value


@contextmanager
def _forked_random_state() -> Iterator[None]:
    """A build draws from a fork of the caller's random state: whether an artifact came from
    the cache or was built by this call, the caller's random stream continues the same, so a
    cell's numbers do not depend on which cell (or worker) happened to build a shared artifact."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield


@section("io")
def _read(path: Path) -> Any | None:
    """The value stored at ``path``; ``None`` when there is no file or it cannot be read."""
    return load_verified(path)


#: The first bytes of every file :func:`atomic_torch_save` writes: then the SHA-256 (hex) of
#: the rest, a newline, and ``torch.save``'s bytes. A file that verifies itself: its checksum
#: cannot be read apart from its bytes (a sidecar file could be, while a writer replaces both).
CHECKSUMMED = b"privbench-sha256 "


@section("io")
def atomic_torch_save(value: Any, path: Path) -> None:
    """Save ``value`` at ``path`` atomically (a temporary file renamed into place), headed by
    the SHA-256 of its bytes. ``torch.load`` does not notice damage inside a file — random bytes
    in a weights tensor load fine — so the checksum is what does (:func:`load_verified`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(value, buffer)
    data = buffer.getvalue()
    header = CHECKSUMMED + hashlib.sha256(data).hexdigest().encode() + b"\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(header)
            stream.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@section("io")
def load_verified(path: Path, *, weights_only: bool = True) -> Any | None:
    """The value :func:`atomic_torch_save` stored at ``path``, or None when the file is
    missing, is not headed by a checksum (written by a privbench that kept none), or its bytes
    do not match it (damaged): the caller rebuilds it, never trusting it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    end = data.find(b"\n", 0, len(CHECKSUMMED) + 80)
    if not data.startswith(CHECKSUMMED) or end < 0:
        return None
    expected, payload = data[len(CHECKSUMMED) : end].decode("ascii", "replace"), data[end + 1 :]
    if hashlib.sha256(payload).hexdigest() != expected:
        return None
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=weights_only)
    except Exception:  # noqa: BLE001 - a checksummed file torch cannot read: rebuild it
        return None


def tensor_content_digest(*tensors: torch.Tensor | Sequence[torch.Tensor]) -> str:
    """SHA-256 (hex) of the exact contents of tensors and lists of tensors, for cache keys and
    checkpoint signatures: per tensor its dtype, shape and bytes (bfloat16 as float32), a list
    preceded by its length. For one CPU tensor it equals the image digest of
    ``privbench.data.formats.tensor_digest``."""
    digest = hashlib.sha256()

    def add(tensor: torch.Tensor) -> None:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        values = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
        digest.update(values.numpy().tobytes())

    for item in tensors:
        if isinstance(item, torch.Tensor):
            add(item)
        else:
            digest.update(f"list{len(item)}".encode())
            for tensor in item:
                add(tensor)
    return digest.hexdigest()
