"""Image stores on disk and streamed measurements (privbench.api.arrays, .measurements)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import privbench
from privbench.api import measurements as measurements_module
from privbench.api.arrays import ArrayFile, ArrayWriter, open_array, write_array
from privbench.api.cache import ArtifactCache
from privbench.api.encoder import encode_batches
from privbench.api.errors import DataError
from privbench.api.measurements import ArrayMeasurements, EncodedImages, channel_statistics
from privbench.data.containers import LabeledImages
from privbench.data.formats import tensor_digest
from privbench.data.formats.images import ImageRequest, load_images
from privbench.runs.cells import cached_measurements


def _images(count: int = 12, size: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)


def _stored_split(tmp_path, images: torch.Tensor) -> LabeledImages:
    store = write_array(tmp_path / "split.npy", images)
    return LabeledImages(store.tensor(), torch.arange(len(images)) % 2, ["a", "b"], store=store)


def test_an_array_file_is_opened_not_read_and_reads_exactly_what_was_written(tmp_path):
    images = _images()
    store = write_array(tmp_path / "images.npy", images)
    assert store.shape == tuple(images.shape) and store.dtype == torch.uint8
    assert store.digest == tensor_digest(images)  # fingerprints keep their meaning
    order = torch.tensor([5, 6, 7, 0, 11, 3])
    assert torch.equal(store.read(order), images[order])
    assert torch.equal(store.tensor(), images)
    assert np.array_equal(np.load(tmp_path / "images.npy", mmap_mode="r"), images.numpy())
    # a Ray task or DataLoader worker receives the path, not the pixels
    assert len(pickle.dumps(store)) < 500
    assert torch.equal(pickle.loads(pickle.dumps(store)).read(order), images[order])


def test_a_split_backed_by_a_store_pickles_as_its_path(tmp_path):
    images = _images(40, 96)
    split = _stored_split(tmp_path, images)
    payload = pickle.dumps(split)
    assert len(payload) < images.numel() // 50
    again = pickle.loads(payload)
    assert torch.equal(again.images, images) and torch.equal(
        again.store.read([3, 1]), images[[3, 1]]
    )


def test_an_interrupted_write_leaves_nothing_and_a_truncated_file_is_not_trusted(tmp_path):
    path = tmp_path / "partial.npy"
    with pytest.raises(RuntimeError):
        with ArrayWriter(path, (4, 3, 8, 8), torch.uint8) as writer:
            writer.write(0, _images(2, 8))
            raise RuntimeError("killed")
    assert not path.exists() and list(tmp_path.iterdir()) == []
    write_array(path, _images(4, 8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert open_array(path) is None
    with pytest.raises(DataError, match="partial.npy"):
        ArrayFile(path)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_streamed_measurements_equal_the_in_memory_encoding_bit_for_bit(
    tmp_path, monkeypatch, workers
):
    monkeypatch.setenv("PRIVBENCH_LOADER_WORKERS", workers)  # in process, and worker processes
    images = _images(20)
    split = _stored_split(tmp_path, images)
    encoder = privbench.get_encoder("gaussian-blur", sigma_px=2)
    expected = encode_batches(encoder, images)
    streamed = EncodedImages(split, encoder, "blur", ["test"])
    order = [torch.tensor([3, 1, 4]), torch.tensor([15, 9, 2, 6]), torch.tensor([19])]
    state = torch.get_rng_state()
    batches = list(streamed.batches(order))  # DataLoader workers read the store
    assert torch.equal(torch.get_rng_state(), state)  # the loader drew nothing from the cell
    for index, batch in zip(order, batches):
        assert torch.equal(batch, expected[index])
    assert torch.equal(streamed.materialize(), expected)
    assert torch.equal(streamed[torch.tensor([7, 8])], expected[7:9])


def test_a_noisy_camera_draws_fresh_noise_per_batch_from_the_cells_stream(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVBENCH_LOADER_WORKERS", "1")
    split = _stored_split(tmp_path, _images(8))
    lens = privbench.get_encoder("zernike-lens", noise_std=0.05)
    assert not lens.caches_measurements(1, 10**9)
    streamed = EncodedImages(split, lens, "lens", ["test"])
    order = [torch.arange(8)]
    torch.manual_seed(3)
    first, second = next(streamed.batches(order)), next(streamed.batches(order))
    torch.manual_seed(3)
    replay = next(streamed.batches(order))
    assert not torch.equal(first, second)  # another epoch, another draw
    assert torch.equal(first, replay)  # the same seed, the same draws


def test_streamed_statistics_match_the_exact_ones(tmp_path, monkeypatch):
    split = _stored_split(tmp_path, _images(30))
    clean = EncodedImages(split, None, "clean", ["test"])
    exact = channel_statistics(clean)
    monkeypatch.setattr(measurements_module, "SMALL_SPLIT_BYTES", 0)
    streamed = channel_statistics(clean)
    reference = split.images.double().div(255).transpose(0, 1).reshape(3, -1)
    for mine, theirs in zip(streamed, (reference.mean(1), reference.std(1, unbiased=False))):
        assert torch.allclose(mine.double(), theirs, atol=1e-6)
    for a, b in zip(exact, streamed):
        assert torch.allclose(a, b, atol=1e-6)


def test_non_finite_measurements_are_an_error_naming_the_split():
    values = torch.zeros(4, 1, 8, 8)
    values[2, 0, 3, 3] = float("nan")
    with pytest.raises(DataError, match="blur of identities/train"):
        ArrayMeasurements(values, "blur of identities/train").materialize()


def test_a_noise_free_encoders_measurements_are_cached_on_disk_bit_for_bit(tmp_path):
    images = _images(10)
    split = _stored_split(tmp_path, images)
    encoder = privbench.get_encoder("low-res", size_px=16)
    cache = ArtifactCache(tmp_path / "cache")
    measured = cached_measurements(cache, "key", encoder, split, "low-res", "cpu")
    assert isinstance(measured.values, ArrayFile)
    assert measured.values.path == cache.path("encoded", "key", ".npy")
    assert measured.values.nbytes <= split.store.nbytes
    assert torch.equal(measured.materialize(), encode_batches(encoder, images))
    again = cached_measurements(cache, "key", encoder, split, "low-res", "cpu")
    assert torch.equal(again.materialize(), measured.materialize())


def test_images_over_the_size_limit_are_downscaled_on_read_or_refused(tmp_path):
    png, jpeg = tmp_path / "large.png", tmp_path / "large.jpg"
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(png)
    Image.fromarray(np.full((400, 400, 3), 90, np.uint8)).save(jpeg, quality=90)
    with pytest.raises(DataError, match=r"large\.png.*120x120.*max_image_pixels"):
        load_images([ImageRequest(png)], size=32, max_pixels=10_000)
    loaded = load_images([ImageRequest(jpeg)], size=32, max_pixels=20_000)  # decoded at 1/4
    assert loaded.images.shape == (1, 3, 32, 32)
    with pytest.raises(DataError, match=r"large\.jpg"):
        load_images([ImageRequest(jpeg)], size=None, max_pixels=20_000)


def test_a_truncated_picture_in_a_folder_fails_the_load_naming_it(tmp_path):
    paths = []
    for index in range(6):
        path = tmp_path / f"picture-{index}.jpg"
        Image.fromarray(np.full((64, 64, 3), index * 30, np.uint8)).save(path, quality=90)
        paths.append(path)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="picture-4.jpg"):
        load_images([ImageRequest(p) for p in paths], size=32, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing half-written is kept


def test_a_cached_folder_load_is_an_image_store(tmp_path):
    paths = []
    for index in range(5):
        path = tmp_path / f"p{index}.png"
        Image.fromarray(np.full((50, 70, 3), index * 40, np.uint8)).save(path)
        paths.append(path)
    first = load_images([ImageRequest(p) for p in paths], size=32, cache_dir=tmp_path / "c")
    second = load_images([ImageRequest(p) for p in paths], size=32, cache_dir=tmp_path / "c")
    memory = load_images([ImageRequest(p) for p in paths], size=32)
    assert first.store is not None and second.from_cache and second.store is not None
    assert torch.equal(second.images, memory.images) and second.digest == memory.digest


def test_show_refuses_an_image_over_the_limit_instead_of_taking_the_memory(tmp_path, monkeypatch):
    from privbench.report import show

    path = tmp_path / "huge.png"
    Image.fromarray(np.full((200, 300, 3), 40, np.uint8)).save(path)
    monkeypatch.setattr(show, "DEFAULT_MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(DataError, match=r"huge\.png.*300x200 = 60,000 pixels"):
        show.load_image(path)
    monkeypatch.setattr(show, "DEFAULT_MAX_IMAGE_PIXELS", 100_000)
    assert show.load_image(path, size=64).shape == (1, 3, 64, 64)


def test_a_noisy_cameras_measurements_are_keyed_by_identity_not_by_one_draw(tmp_path):
    from privbench.detection.boxes import DetectionSet
    from privbench.detection.training import split_key

    split = _stored_split(tmp_path, _images(6))
    boxes = [torch.tensor([[4.0, 4.0, 30.0, 30.0]])] * 6
    lens = privbench.get_encoder("zernike-lens", noise_std=0.05)
    noisy = DetectionSet(EncodedImages(split, lens, "lens", ["lens-key"]), boxes)
    clean = DetectionSet(EncodedImages(split, None, "clean", ["clean-key"]), boxes)
    state = torch.get_rng_state()
    assert split_key(noisy) == split_key(noisy)  # no draw stands for the split ...
    assert torch.equal(torch.get_rng_state(), state)  # ... and none was taken from the cell
    as_tensor = DetectionSet(split.images.float().div(255), boxes)
    assert split_key(clean) == split_key(as_tensor)  # equal content, equal key
