"""The artifact cache shared by concurrent processes: a per-key file lock so a shared artifact
is built once, atomic writes so no reader sees half a file, corrupt files rebuilt. The
concurrency tests run real spawned processes on one cache folder."""

from __future__ import annotations

import multiprocessing

import pytest
import torch
from support import cache_workers

from privbench.api.cache import ArtifactCache

SPAWN = multiprocessing.get_context("spawn")


def _join(processes) -> None:
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0, f"{process.name} exited with {process.exitcode}"


def test_two_processes_build_a_shared_artifact_once(tmp_path):
    counter = tmp_path / "builds.txt"
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=cache_workers.build_shared,
            args=(str(tmp_path / "cache"), str(counter), barrier, results),
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    got = [results.get(timeout=300) for _ in processes]
    _join(processes)
    assert len(counter.read_text().splitlines()) == 1  # one build in all
    assert sorted(from_cache for from_cache, *_ in got) == [False, True]
    assert got[0][1:] == got[1][1:]  # the builder's pid, nonce and weights, in both processes
    stored = ArtifactCache(tmp_path / "cache").load("models", "shared")
    assert (stored["builder"], stored["nonce"]) == got[0][1:3]


def test_a_reader_never_sees_a_half_written_artifact(tmp_path):
    root, size = tmp_path / "cache", 2_000_000
    cache = ArtifactCache(root)
    cache.save("blobs", "big", torch.full((size,), 0.0))
    done = SPAWN.Event()
    writer = SPAWN.Process(target=cache_workers.keep_saving, args=(str(root), 20, size, done))
    writer.start()
    seen, reads = set(), 0
    while not done.is_set():
        value = cache.load("blobs", "big")  # a file it cannot read would be a miss (None)
        assert value is not None and value.shape == (size,)
        assert bool((value == value[0]).all())  # one save's value throughout, never a mix
        seen.add(float(value[0]))
        reads += 1
    _join([writer])
    assert cache.misses == 0 and cache.hits == reads > 0
    assert seen <= {float(index) for index in range(21)}
    assert float(cache.load("blobs", "big")[0]) == 20.0


def test_a_corrupt_artifact_is_rebuilt(tmp_path):
    cache = ArtifactCache(tmp_path)
    path = cache.path("models", "broken")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage, not a torch file\xff" * 100)
    obtained = cache.obtain("models", "broken", lambda: {"weights": torch.arange(5)})
    assert obtained.from_cache is False and torch.equal(obtained.value["weights"], torch.arange(5))
    assert torch.equal(ArtifactCache(tmp_path).load("models", "broken")["weights"], torch.arange(5))


def test_locks_are_per_key_so_different_artifacts_build_concurrently(tmp_path):
    root = str(tmp_path / "cache")
    started = {"a": SPAWN.Event(), "b": SPAWN.Event()}
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=cache_workers.build_waiting_for_other,
            args=(root, key, started[key], started[other], results),
        )
        for key, other in (("a", "b"), ("b", "a"))
    ]
    for process in processes:
        process.start()
    got = dict(results.get(timeout=300) for _ in processes)
    _join(processes)
    assert got == {"a": True, "b": True}  # each build ran while the other's was running


def test_the_lock_excludes_other_processes_on_its_key_only(tmp_path):
    cache = ArtifactCache(tmp_path)
    with SPAWN.Pool(1) as pool:
        with cache.lock("models", "a"):
            held = str(cache.path("models", "a", ".lock"))
            free = str(cache.path("models", "b", ".lock"))
            assert pool.apply(cache_workers.can_lock, (held,)) is False
            assert pool.apply(cache_workers.can_lock, (free,)) is True
        assert pool.apply(cache_workers.can_lock, (held,)) is True  # released on leaving


def test_get_or_build_counts_and_builds_once_in_one_process(tmp_path):
    cache, builds = ArtifactCache(tmp_path), []

    def build():
        builds.append(1)
        return torch.tensor([1.0, 2.0])

    first = cache.get_or_build("encoded", "k", build)
    second = cache.get_or_build("encoded", "k", build)
    assert len(builds) == 1 and torch.equal(first, second)
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_failed_build_saves_nothing_and_releases_the_lock(tmp_path):
    cache = ArtifactCache(tmp_path)

    def fail():
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        cache.get_or_build("models", "k", fail)
    assert not cache.path("models", "k").exists()
    assert cache.get_or_build("models", "k", lambda: torch.ones(2)).sum() == 2
    with pytest.raises(TypeError, match="models/none returned None"):
        cache.get_or_build("models", "none", lambda: None)


def test_damage_inside_an_artifact_is_recomputed_not_loaded(tmp_path):
    import torch

    from privbench.api.cache import ArtifactCache

    cache = ArtifactCache(tmp_path)
    weights = {"w": torch.arange(10000, dtype=torch.float32)}
    path = cache.save("models", "k", weights)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensor: torch.load would accept it
    path.write_bytes(bytes(data))
    assert cache.load("models", "k") is None and not path.exists()
    cache.save("models", "k", weights)
    assert torch.equal(cache.load("models", "k")["w"], weights["w"])


def test_zeros_written_into_a_cached_measurement_file_are_noticed(toy, tmp_path):
    from privbench.pipeline import run

    spec = toy.toy_spec(encoders=["identity", "pixelate"])
    first = run(spec, out_dir=tmp_path / "a", cache_dir=tmp_path / "cache")
    encoded = sorted((tmp_path / "cache" / "encoded").glob("*.npy"))
    assert encoded
    for path in encoded:  # the fault-injection probe's damage: zeros over the middle
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.seek(size // 2)
            handle.write(b"\0" * (size // 4))
    again = run(spec, out_dir=tmp_path / "b", cache_dir=tmp_path / "cache")
    key = ["encoder_label", "evaluation"]
    expected = first.set_index(key)["metrics"].to_dict()
    assert again.set_index(key)["metrics"].to_dict() == expected
