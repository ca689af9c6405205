"""Content-addressed artifact cache (generated datasets, encoded datasets, checkpoints).

Artifacts are stored under ``<root>/<kind>/<key>.pt`` where ``key`` hashes everything the
artifact depends on, so a rerun finds what it computed before and a changed config misses
exactly the artifacts it touches. Writes are atomic (temp file + rename): a killed process
never leaves a half-written artifact behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def default_cache_root() -> Path:
    return Path(os.environ.get("PRIVBENCH_CACHE") or Path.home() / ".cache" / "privbench")


class ArtifactCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, key: str, suffix: str = ".pt") -> Path:
        return self.root / kind / f"{key}{suffix}"

    def load(self, kind: str, key: str) -> Any | None:
        path = self.path(kind, key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt artifact is recomputed, never trusted
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def save(self, kind: str, key: str, value: Any) -> Path:
        path = self.path(kind, key)
        atomic_torch_save(value, path)
        return path


def atomic_torch_save(value: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        torch.save(value, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


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
