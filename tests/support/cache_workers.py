"""Process targets of tests/test_cache.py: module-level (a spawned process imports them by
name), each building or reading through a real ArtifactCache on a shared folder."""

from __future__ import annotations

import fcntl
import os
import time

import torch

from privbench.api.cache import ArtifactCache


def build_shared(root: str, counter: str, barrier, results) -> None:
    """Meet the other process at ``barrier``, then get_or_build one key whose build takes a
    second and leaves a line in ``counter``: only one of the two may ever build."""

    def build() -> dict:
        time.sleep(1.0)  # long enough for the other process to arrive while this one builds
        with open(counter, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return {"builder": os.getpid(), "nonce": os.urandom(16).hex(), "weights": torch.rand(64)}

    cache = ArtifactCache(root)
    barrier.wait()
    obtained = cache.obtain("models", "shared", build)
    value = obtained.value
    results.put((obtained.from_cache, value["builder"], value["nonce"], value["weights"].tolist()))


def keep_saving(root: str, saves: int, size: int, done) -> None:
    """Replace one key's large tensor ``saves`` times (values 1, 2, ...), then set ``done``."""
    cache = ArtifactCache(root)
    for index in range(1, saves + 1):
        cache.save("blobs", "big", torch.full((size,), float(index)))
    done.set()


def build_waiting_for_other(root: str, key: str, mine, other, results) -> None:
    """Build ``key`` by announcing itself on ``mine`` and waiting for the other process's
    build to announce itself on ``other``: both see each other only if the two keys' locks
    do not exclude each other (the wait's limit only ends a failing test)."""

    def build() -> dict:
        mine.set()
        return {"saw_other": torch.tensor(other.wait(timeout=120))}

    value = ArtifactCache(root).get_or_build("models", key, build)
    results.put((key, bool(value["saw_other"])))


def can_lock(lock_path: str) -> bool:
    """Whether this process can take an exclusive flock on ``lock_path`` without waiting."""
    handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(handle)
    return True
