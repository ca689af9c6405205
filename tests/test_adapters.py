"""Real-data adapters on tiny fixtures written in each dataset's published format.

Covers the shared readers (geometry of crops and letterboxes, the thread pool, the
content-addressed cache, error messages), each adapter's protocol (VGGFace2/CAnOPIC identity
selection and crops, face vs no-face with ImageNet, WIDER's flags and tiny-face filter, FDDB's
ellipse → box rule and ≤ 40 px rescale, COCO's Karpathy and official splits, LFW identities and
pairs), malformed lines and missing files, and the ``privbench data`` commands.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import Field
from support import dataset_fixtures as fx

import privbench
from privbench.api.adapter import AdapterConfig, FolderAdapter, dataset_adapter, load_dataset
from privbench.api.errors import ConfigError, DataError
from privbench.api.registry import DATASETS, register_dataset
from privbench.cli import main
from privbench.data import formats
from privbench.data.adapters import fddb, imagenet, lfw, vggface2, widerface
from privbench.data.containers import SPLITS, LabeledSplits

FACE = torch.tensor(fx.FACE_RGB, dtype=torch.float32)


def _colour_at(images: torch.Tensor, row: int, x: float, y: float) -> torch.Tensor:
    return images[row, :, int(y), int(x)].float()


def _is_face_colour(pixel: torch.Tensor, tolerance: float = 40.0) -> bool:
    return bool((pixel - FACE).abs().max() < tolerance)


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out + captured.err


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("datasets")
    written = {
        "vggface2": fx.write_vggface2(
            base / "vggface2",
            {"n000001": 7, "n000002": 9, "n000003": 6, "n000004": 8, "n000005": 4},
            {"n000010": 4, "n000011": 3, "n000012": 5},
        ),
        "imagenet": fx.write_imagenet(
            base / "imagenet", ["n01440764", "n01443537", "n01484850"], 4, 10
        ),
        "widerface": fx.write_widerface(base / "widerface", train_images=6, val_images=4),
        "fddb": fx.write_fddb(base / "fddb", {1: 4, 2: 3, 3: 2}),
        "coco": fx.write_coco(
            base / "coco",
            [9, 25, 30, 34, 36],
            [42, 73, 74, 133, 136, 139],
            {
                9: "train",
                25: "restval",
                30: "train",
                34: "val",
                36: "restval",
                42: "test",
                73: "val",
                74: "test",
                133: "train",
                136: "val",
                139: "test",
            },
        ),
        "lfw": fx.write_lfw(
            base / "lfw",
            {"Aaron_Peirsol": 6, "Abel_Pacheco": 5, "Colin_Powell": 9, "Dean_Barker": 2},
        ),
    }
    return base, written


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


VGG_OPTIONS = {"n_identities": 3, "test_per_identity": 2, "val_per_identity": 2}


# -- shared readers ------------------------------------------------------------------------
def _picture(path: Path, width: int, height: int, box: tuple[int, int, int, int]) -> None:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:] = fx.BACKGROUND_RGB
    x0, y0, x1, y1 = box
    array[y0:y1, x0:x1] = fx.FACE_RGB
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_letterbox_and_stretch_map_boxes_onto_the_drawn_content(tmp_path):
    path = tmp_path / "wide.png"
    _picture(path, 200, 100, (120, 30, 160, 70))
    box = torch.tensor([[120.0, 30.0, 160.0, 70.0]])
    for mode in ("letterbox", "stretch"):
        loaded = formats.load_images([formats.ImageRequest(path)], size=64, mode=mode, workers=1)
        assert loaded.images.shape == (1, 3, 64, 64) and loaded.images.dtype == torch.uint8
        mapped = loaded.map_boxes(0, box)[0]
        cx, cy = float(mapped[0] + mapped[2]) / 2, float(mapped[1] + mapped[3]) / 2
        assert _is_face_colour(_colour_at(loaded.images, 0, cx, cy))
        assert not _is_face_colour(_colour_at(loaded.images, 0, float(mapped[0]) - 3, cy))
    letterbox = formats.load_images(
        [formats.ImageRequest(path)], size=64, mode="letterbox", workers=1
    )
    sx, sy, ox, oy = letterbox.transforms[0].tolist()
    assert (
        sx == pytest.approx(0.32) and sy == pytest.approx(0.32) and ox == 0 and oy == 16
    )  # 200x100 → 64x32, centred
    assert (
        letterbox.images[0, :, :16].sum() == 0 and letterbox.images[0, :, 48:].sum() == 0
    )  # black bars
    assert letterbox.source_sizes[0].tolist() == [200, 100]


def test_crops_outside_the_picture_are_zero_and_max_scale_caps_the_letterbox(tmp_path):
    path = tmp_path / "p.png"
    _picture(path, 40, 40, (0, 0, 40, 40))
    loaded = formats.load_images(
        [formats.ImageRequest(path, crop=(-40.0, 0.0, 40.0, 80.0))], size=16, workers=1
    )
    # only the top-right quarter is inside the picture (bicubic resampling blurs one
    # pixel across the edge)
    assert loaded.images[0, :, :, :7].sum() == 0 and loaded.images[0, :, 9:, :].sum() == 0
    assert _is_face_colour(_colour_at(loaded.images, 0, 12, 4))
    capped = formats.load_images(
        [formats.ImageRequest(path, max_scale=0.5)], size=64, mode="letterbox", workers=1
    )
    assert capped.transforms[0, 0] == pytest.approx(0.5)
    assert int((capped.images[0].sum(0) > 0).sum()) == 20 * 20


def test_jpeg_reduced_decoding_stays_close_to_a_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 255, (12, 12, 3)), np.ones((40, 40, 1))).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    loaded = formats.load_images([formats.ImageRequest(path)], size=48, workers=1)
    with Image.open(path) as picture:
        reference = np.asarray(
            picture.convert("RGB").resize((48, 48), Image.Resampling.BICUBIC), dtype=np.float32
        )
    difference = np.abs(loaded.images[0].permute(1, 2, 0).numpy().astype(np.float32) - reference)
    assert difference.mean() < 3.0


def test_thread_pool_gives_the_serial_result_and_cache_is_content_addressed(roots, cache):
    base, _ = roots
    paths = sorted((base / "imagenet" / "val").glob("*.JPEG"))
    requests = [formats.ImageRequest(p, center_square=True) for p in paths]
    serial = formats.load_images(requests, size=32, workers=1)
    pooled = formats.load_images(requests, size=32, workers=4, cache_dir=cache)
    assert (
        torch.equal(serial.images, pooled.images)
        and serial.digest == pooled.digest
        and not pooled.from_cache
    )
    again = formats.load_images(requests, size=32, workers=4, cache_dir=cache)
    assert again.from_cache and torch.equal(again.images, serial.images)
    # another option or another file version misses the cache; the old entry stays valid for its key
    assert not formats.load_images(requests, size=24, workers=2, cache_dir=cache).from_cache
    copy = base.parent / "imagenet-copy.JPEG"
    copy.write_bytes(paths[0].read_bytes())
    moved = [formats.ImageRequest(copy, center_square=True)] + requests[1:]
    first = formats.load_images(moved, size=32, workers=2, cache_dir=cache)
    assert not first.from_cache and torch.equal(first.images, serial.images)
    os.utime(copy, ns=(1_000_000_000, 1_000_000_000))
    assert not formats.load_images(moved, size=32, workers=2, cache_dir=cache).from_cache
    assert len(list((cache / "images").glob("*.pt"))) == 4


def test_missing_and_corrupt_images_are_named(tmp_path):
    good = tmp_path / "ok.png"
    _picture(good, 10, 10, (0, 0, 5, 5))
    with pytest.raises(DataError, match=r"1 of the 2 requested images are missing: .*nothere\.jpg"):
        formats.load_images(
            [formats.ImageRequest(good), formats.ImageRequest(tmp_path / "nothere.jpg")], size=8
        )
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg.*cannot be decoded"):
        formats.load_images([formats.ImageRequest(broken)], size=8, workers=1)
    other = tmp_path / "other.png"
    _picture(other, 12, 10, (0, 0, 5, 5))
    with pytest.raises(DataError, match="must all have one size"):
        formats.load_images(
            [formats.ImageRequest(good), formats.ImageRequest(other)], size=None, workers=1
        )


def test_hash_order_is_seeded_and_stable_when_items_are_added():
    names = [f"img_{i}" for i in range(50)]
    order = [names[i] for i in formats.hash_order(names, 0, "x")]
    assert sorted(order) == sorted(names) and order != names
    assert [names[i] for i in formats.hash_order(names, 1, "x")] != order
    more = names + [f"extra_{i}" for i in range(20)]
    merged = [more[i] for i in formats.hash_order(more, 0, "x")]
    assert [n for n in merged if n in set(names)] == order


def test_image_folder_and_coco_json_readers(tmp_path):
    for label, name in enumerate(["cat", "ant"]):
        for k in range(2 + label):
            _picture(tmp_path / "folder" / name / f"{k}.png", 12, 12, (0, 0, 4 + k, 4))
    (tmp_path / "folder" / "ant" / "notes.txt").write_text("not an image")
    read = formats.read_image_folder(tmp_path / "folder")
    assert read.class_names == ["ant", "cat"] and read.labels.tolist() == [0, 0, 0, 1, 1]
    assert read.images.shape == (5, 3, 12, 12)
    with pytest.raises(DataError, match="does not exist"):
        formats.scan_image_folder(tmp_path / "nope")
    bad = tmp_path / "captions_train2014.json"
    bad.write_text('{"images": [],\n "annotations": [\n {"image_id": 1,, "id": 2}]}')
    with pytest.raises(
        formats.AnnotationError, match=r"captions_train2014\.json:3: invalid JSON"
    ) as info:
        formats.read_coco_captions(bad)
    assert info.value.line == 3
    bad.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg"}],
                "annotations": [{"image_id": 7, "id": 1, "caption": "x"}],
            }
        )
    )
    with pytest.raises(
        formats.AnnotationError, match=r"annotations\[0\] \(id 1\) refers to image_id 7"
    ):
        formats.read_coco_captions(bad)


# -- registry and CLI ----------------------------------------------------------------------
def test_every_adapter_is_registered_and_listed(capsys):
    names = privbench.list_datasets()
    for name in ("coco", "vggface2", "widerface", "fddb", "imagenet", "lfw"):
        assert name in names and issubclass(DATASETS.get(name), FolderAdapter)
    code, output = _cli(capsys, "list", "datasets")
    assert code in (0, None) and all(
        n in output for n in ("widerface", "fddb", "vggface2", "lfw", "imagenet", "coco")
    )


class PatchesConfig(AdapterConfig):
    image_size: int = Field(16, ge=8, le=64, description="side of the crops")


@register_dataset("test-patches", override=True)
class PatchesAdapter(FolderAdapter):
    """Coloured patches in an ImageFolder (a dataset adapter written as one class).

    Every split reads the whole folder, resized to ``image_size``.
    """

    Config = PatchesConfig
    layout = "ROOT/<class>/<picture>.png"

    def load(self, cache_dir=None):
        folder = formats.read_image_folder(self.config.root, size=self.config.image_size)
        digest = formats.tensor_digest(folder.images)
        splits = LabeledSplits(folder, folder, folder)
        digests = dict.fromkeys(SPLITS, digest)
        return formats.fingerprinted("test-patches", "patches", identities=(splits, digests))

    def check(self):
        report = self.report()
        index = formats.scan_image_folder(self.config.root)
        report.counts["all"] = {"images": len(index), "classes": len(index.classes)}
        report.check_files(index.paths)
        return report


def test_a_dataset_adapter_is_one_registered_class(tmp_path, capsys):
    for label, name in enumerate(["ant", "cat"]):
        for k in range(3):
            _picture(tmp_path / "patches" / name / f"{k}.png", 20, 20, (0, 0, 6 + 4 * label, 6))
    root = str(tmp_path / "patches")
    data = load_dataset("test-patches", {"path": root, "image_size": 8})
    assert data.identities.test.images.shape == (
        6,
        3,
        8,
        8,
    ) and data.identities.train.class_names == ["ant", "cat"]
    assert data.fingerprint != load_dataset("test-patches", {"path": root}).fingerprint
    code, output = _cli(capsys, "data", "layout", "test-patches")
    assert (
        code in (0, None)
        and "ROOT/<class>/<picture>.png" in output
        and "image_size = 16: side of the crops" in output
    )
    code, output = _cli(capsys, "data", "check", "test-patches", root)
    assert code == 0 and "all 6 files the adapter would read are present" in output
    with pytest.raises(DataError, match="needs its folder"):
        dataset_adapter("test-patches", {"image_size": 8})
    with pytest.raises(ConfigError, match="unknown field 'size'"):
        dataset_adapter("test-patches", {"path": root, "size": 8})
    # the registry accepts dataset adapters only
    with pytest.raises(
        ConfigError, match="must be a subclass of privbench.api.adapter.DatasetAdapter"
    ):
        register_dataset("test-function")(lambda cache_dir=None: None)


def test_generated_and_composite_datasets_are_not_checked_and_declare_sources():
    assert DATASETS.get("synthfaces").layout is None and DATASETS.get("composite").layout is None
    with pytest.raises(DataError, match="not read from a folder"):
        dataset_adapter("synthfaces", {"preset": "tiny"}).check()
    sources = {"sources": {"faces": {"name": "vggface2"}, "wider": {}}}
    assert DATASETS.get("composite").source_labels(sources) == ["faces", "wider"]
    assert DATASETS.get("fddb").source_labels({"path": "x"}) is None


def test_adapters_need_a_path_and_validate_options(roots):
    base, _ = roots
    with pytest.raises(DataError, match="needs its folder"):
        load_dataset("fddb", {})
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("fddb", {"path": base / "missing"})
    with pytest.raises(ConfigError, match="n_identity"):
        load_dataset("vggface2", {"path": base / "vggface2", "n_identity": 3})
    with pytest.raises(ConfigError, match="a fold may belong to one split only"):
        load_dataset("fddb", {"path": base / "fddb", "test_folds": [1], "val_folds": [1]})


def test_data_check_command(roots, capsys):
    base, _ = roots
    code, output = _cli(
        capsys, "data", "check", "widerface", str(base / "widerface"), "--set", "val_fraction=0.34"
    )
    assert code == 0, output
    assert "WIDER train" in output and "all 10 files the adapter would read are present" in output
    assert re.search(r"test\s+4\s+5", output)  # 4 WIDER val pictures, 5 faces left after the filter

    code, output = _cli(capsys, "data", "check", "synthfaces", str(base))
    assert code == 2 and "not read from a folder" in output
    code, output = _cli(capsys, "data", "layout", "vggface2")
    assert code in (0, None) and "loose_bb_train.csv" in output and "n_identities = 100" in output
    code, output = _cli(
        capsys,
        "data",
        "load",
        "fddb",
        str(base / "fddb"),
        "--set",
        "image_size=96",
        "--set",
        "test_folds=[1, 2, 3]",
        "--cache-dir",
        str(base / "cli-cache"),
    )
    assert (
        code in (0, None)
        and "scenes/test: images (9, 3, 96, 96)" in output
        and "fingerprint" in output
    )


def test_data_check_reports_missing_files_and_malformed_lines(tmp_path, capsys):
    root = tmp_path / "fddb"
    fx.write_fddb(root, {1: 3})
    victim = next((root / "originalPics").rglob("*.jpg"))
    victim.unlink()
    code, output = _cli(capsys, "data", "check", "fddb", str(root), "--set", "test_folds=[1]")
    assert code == 1 and "MISSING: 1 of 3" in " ".join(output.split()) and victim.name in output
    listing = root / "FDDB-folds" / "FDDB-fold-01-ellipseList.txt"
    lines = listing.read_text().splitlines()
    lines[2] = "41.5 30.0 1.4 100.0"
    listing.write_text("\n".join(lines) + "\n")
    code, output = _cli(capsys, "data", "check", "fddb", str(root), "--set", "test_folds=[1]")
    assert code == 2 and "FDDB-fold-01-ellipseList.txt:3: has 4 fields instead of 6" in " ".join(
        output.split()
    )


# -- VGGFace2 ------------------------------------------------------------------------------
def test_vggface2_canopic_protocol(roots, cache):
    base, _ = roots
    data = load_dataset("vggface2", dict(path=base / "vggface2", **VGG_OPTIONS), cache)
    ids = data.identities
    # the 3 identities with most images (9, 8, 7), labels in name order
    assert ids.train.class_names == ["n000001", "n000002", "n000004"]
    for split, per_identity in (("test", 2), ("val", 2)):
        assert torch.equal(
            torch.bincount(ids[split].labels, minlength=3), torch.full((3,), per_identity)
        )
    assert torch.bincount(ids.train.labels, minlength=3).tolist() == [7 - 4, 9 - 4, 8 - 4]
    for split in SPLITS:
        assert ids[split].images.shape[1:] == (3, 64, 64) and ids[split].images.dtype == torch.uint8
    # each crop is the identity's loose box: its centre has the identity's colour
    for split in SPLITS:
        for row, label in enumerate(ids[split].labels.tolist()):
            colour = torch.tensor(
                fx.identity_colour(int(ids[split].class_names[label][1:])), dtype=torch.float32
            )
            assert (
                ids[split].images[row, :, 28:36, 28:36].float().mean((1, 2)) - colour
            ).abs().max() < 25
    selection = vggface2.select_vggface2(
        vggface2.VGGFace2Config(path=str(base / "vggface2"), **VGG_OPTIONS)
    )
    names = {split: {f.name for f in selection.splits[split]} for split in SPLITS}
    assert (
        not (names["train"] & names["val"])
        and not (names["train"] & names["test"])
        and not (names["val"] & names["test"])
    )
    assert data.face_vs_noface is None and re.fullmatch(r"[0-9a-f]{16}", data.fingerprint)
    # deterministic, cached, and seed-dependent
    again = load_dataset("vggface2", dict(path=base / "vggface2", **VGG_OPTIONS), cache)
    assert again.fingerprint == data.fingerprint and torch.equal(
        again.identities.test.images, ids.test.images
    )
    reseeded = load_dataset("vggface2", dict(path=base / "vggface2", seed=1, **VGG_OPTIONS), cache)
    assert reseeded.fingerprint != data.fingerprint


def test_vggface2_crop_modes(roots):
    base, _ = roots
    stretched = load_dataset(
        "vggface2", dict(path=base / "vggface2", crop="loose", cache=False, **VGG_OPTIONS)
    ).identities
    colour = torch.tensor(fx.identity_colour(1), dtype=torch.float32)
    first = stretched.test.images[stretched.test.labels == 0][0].float()
    assert (first.mean((1, 2)) - colour).abs().max() < 25  # the loose box fills the crop
    full = load_dataset(
        "vggface2", dict(path=base / "vggface2", crop="full", cache=False, **VGG_OPTIONS)
    ).identities
    assert full.test.class_names == stretched.test.class_names
    grey = torch.tensor([128.0, 128.0, 128.0])
    assert (
        full.test.images[0, :, :3, :3].float().mean((1, 2)) - grey
    ).abs().max() < 25  # whole picture: grey border


def test_vggface2_with_imagenet_nonfaces(roots, cache):
    base, _ = roots
    nonfaces = {
        "path": str(base / "imagenet"),
        "train_images": 5,
        "val_images": 3,
        "test_images": 4,
    }
    data = load_dataset(
        "vggface2", dict(path=base / "vggface2", nonfaces=nonfaces, **VGG_OPTIONS), cache
    )
    binary = data.face_vs_noface
    for split in SPLITS:
        assert binary[split].class_names == ["no-face", "face"]
        assert torch.equal(
            binary[split].images[binary[split].labels == 1], data.identities[split].images
        )
    assert [int((binary[s].labels == 0).sum()) for s in SPLITS] == [5, 3, 4]
    extra = load_dataset(
        "vggface2",
        dict(
            path=base / "vggface2", nonfaces=nonfaces, face_vs_noface_train_faces=6, **VGG_OPTIONS
        ),
        cache,
    )
    assert (
        int(extra.face_vs_noface.train.labels.sum()) == 6 and extra.fingerprint != data.fingerprint
    )
    with pytest.raises(DataError, match="only 12 are available"):
        load_dataset(
            "vggface2",
            dict(
                path=base / "vggface2",
                nonfaces=nonfaces,
                face_vs_noface_train_faces=13,
                **VGG_OPTIONS,
            ),
            cache,
        )
    with pytest.raises(ConfigError, match="needs nonfaces"):
        load_dataset("vggface2", {"path": base / "vggface2", "face_vs_noface_train_faces": 6})


def test_vggface2_errors(roots, tmp_path):
    base, _ = roots
    with pytest.raises(DataError, match="only 4 identities have at least 5 images"):
        load_dataset(
            "vggface2",
            {
                "path": base / "vggface2",
                "n_identities": 5,
                "test_per_identity": 2,
                "val_per_identity": 2,
                "cache": False,
            },
        )
    root = tmp_path / "vgg"
    fx.write_vggface2(root, {"n000001": 6, "n000002": 6})
    csv_path = root / "bb_landmark" / "loose_bb_test.csv"
    lines = csv_path.read_text().splitlines()
    lines[4] = "n000001/0004_01,12,7,40"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        formats.AnnotationError, match=r"loose_bb_test\.csv:5: has 4 fields instead of 5"
    ) as info:
        load_dataset(
            "vggface2",
            {"path": root, "n_identities": 2, "test_per_identity": 2, "val_per_identity": 2},
        )
    assert info.value.line == 5
    lines[4] = "n000001/0004_01,12,seven,40,50"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(formats.AnnotationError, match=r":5: X, Y, W or H is not a number"):
        load_dataset(
            "vggface2",
            {"path": root, "n_identities": 2, "test_per_identity": 2, "val_per_identity": 2},
        )
    csv_path.write_text("name,x,y,w,h\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(formats.AnnotationError, match=r"loose_bb_test\.csv:1: has the header"):
        load_dataset(
            "vggface2",
            {"path": root, "n_identities": 2, "test_per_identity": 2, "val_per_identity": 2},
        )
    csv_path.write_text("\n".join(lines[:4] + lines[5:]) + "\n")
    (root / "test" / "n000002" / "0003_01.jpg").unlink()
    with pytest.raises(DataError, match=r"missing .*n000002/0003_01\.jpg"):
        load_dataset(
            "vggface2",
            {
                "path": root,
                "n_identities": 2,
                "test_per_identity": 1,
                "val_per_identity": 1,
                "cache": False,
            },
        )
    report = dataset_adapter(
        "vggface2", {"path": root, "n_identities": 2, "test_per_identity": 1, "val_per_identity": 1}
    ).check()
    assert not report.ok and report.missing == ["test/n000002/0003_01.jpg"]


# -- ImageNet ------------------------------------------------------------------------------
def test_imagenet_nonfaces_and_face_free_list(roots, cache, tmp_path):
    base, written = roots
    data = load_dataset(
        "imagenet",
        {"path": base / "imagenet", "train_images": 7, "val_images": 4, "test_images": 5},
        cache,
    )
    part = data.face_vs_noface
    assert [len(part[s]) for s in SPLITS] == [7, 4, 5] and all(
        int(part[s].labels.sum()) == 0 for s in SPLITS
    )
    assert part.train.images.shape[1:] == (3, 64, 64)
    config = imagenet.ImageNetConfig(
        path=str(base / "imagenet"), train_images=7, val_images=4, test_images=5
    )
    selected = imagenet.select_imagenet(config, imagenet.index_imagenet(config))
    assert not set(selected["val"]) & set(selected["test"]) and all(
        n.startswith("val/") for n in selected["test"]
    )
    allowed = written["imagenet"]["train"][:5] + written["imagenet"]["val"][:3]
    listing = base / "imagenet" / "face_free.txt"
    listing.write_text("# face-free images\n" + "\n".join(allowed) + "\n\n")
    listed = imagenet.select_imagenet(
        imagenet.ImageNetConfig(
            path=str(base / "imagenet"),
            face_free_list="face_free.txt",
            train_images=5,
            val_images=1,
            test_images=2,
        ),
        imagenet.index_imagenet(
            imagenet.ImageNetConfig(path=str(base / "imagenet"), face_free_list="face_free.txt")
        ),
    )
    assert set(listed["train"]) == set(allowed[:5]) and set(listed["val"] + listed["test"]) == set(
        allowed[5:]
    )
    with pytest.raises(DataError, match="6 train images .* only 5 candidate"):
        load_dataset(
            "imagenet",
            {
                "path": base / "imagenet",
                "face_free_list": "face_free.txt",
                "train_images": 6,
                "val_images": 1,
                "test_images": 1,
            },
        )
    listing.write_text("train/n01440764/n01440764_1000.JPEG\nimages/ILSVRC2012_val_00000001.JPEG\n")
    with pytest.raises(
        formats.AnnotationError, match=r"face_free\.txt:2: is not a path under train/ or val/"
    ):
        load_dataset("imagenet", {"path": base / "imagenet", "face_free_list": "face_free.txt"})
    listing.unlink()


# -- WIDER FACE ----------------------------------------------------------------------------
def test_widerface_parsing_flags_and_filter(roots):
    base, written = roots
    records = widerface.parse_wider_annotations(
        widerface.annotation_path(base / "widerface", "train")
    )
    assert [r.file for r in records] == [file for file, _ in written["widerface"]["train"]]
    assert [len(r.faces) for r in records] == [
        len(faces) for _, faces in written["widerface"]["train"]
    ]
    assert records[2].faces == []  # count 0 + the all-zero placeholder line
    second = records[1].faces
    assert second[1].invalid == 1 and second[2].blur == 2 and second[2].occlusion == 1
    config = widerface.WiderFaceConfig(path=str(base / "widerface"))
    kept = [widerface.keep_face(f, config) for f in records[0].faces + records[1].faces]
    assert kept == [
        False,
        True,
        True,
        False,
        True,
    ]  # tiny (6 px), ok, ok, invalid, blurred (kept: max_blur 2)
    strict = widerface.WiderFaceConfig(
        path=str(base / "widerface"), max_blur=1, keep_invalid=True, min_face_px=0
    )
    assert [widerface.keep_face(f, strict) for f in records[1].faces] == [True, True, False]


def test_widerface_splits_and_boxes_land_on_faces(roots, cache):
    base, _ = roots
    data = load_dataset(
        "widerface", {"path": base / "widerface", "image_size": 96, "val_fraction": 0.34}, cache
    )
    scenes = data.scenes
    assert [len(scenes[s]) for s in SPLITS] == [
        4,
        2,
        4,
    ]  # train/val from WIDER train (6), test = WIDER val (4)
    assert scenes.test.categories == ["face"] and scenes.test.images.shape == (4, 3, 96, 96)
    boxes = 0
    for split in SPLITS:
        for row, xyxy in enumerate(scenes[split].boxes):
            for x0, y0, x1, y1 in xyxy.tolist():
                boxes += 1
                assert _is_face_colour(
                    _colour_at(scenes[split].images, row, (x0 + x1) / 2, (y0 + y1) / 2)
                )
    assert (
        boxes == 9 + 5
    )  # WIDER train 11 faces and val 7, minus per set one tiny and one invalid face
    capped = load_dataset(
        "widerface",
        {
            "path": base / "widerface",
            "image_size": 96,
            "max_test_images": 2,
            "keep_images_without_faces": False,
        },
        cache,
    )
    assert len(capped.scenes.test) == 2 and all(len(b) for b in capped.scenes.train.boxes)
    resized_filter = load_dataset(
        "widerface",
        {"path": base / "widerface", "image_size": 32, "min_face_px_resized": 5.0},
        cache,
    )
    assert all(
        ((b[:, 2:] - b[:, :2]) >= 5.0).all() for s in SPLITS for b in resized_filter.scenes[s].boxes
    )


def test_widerface_malformed_lines(tmp_path):
    root = tmp_path / "wider"
    fx.write_widerface(root, train_images=3, val_images=1)
    path = widerface.annotation_path(root, "train")
    original = path.read_text().splitlines()

    def expect(lines, pattern):
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(formats.AnnotationError, match=pattern):
            widerface.parse_wider_annotations(path)

    expect(
        original[:2] + ["449 330 122 149 0 0 0 0 0"] + original[3:],
        r"wider_face_train_bbx_gt\.txt:3: has 9 fields instead of 10",
    )
    expect(original[:1] + ["two"] + original[2:], r":2: should be the number of faces")
    expect(
        original[:2] + ["449 330 122 149 3 0 0 0 0 0"] + original[3:],
        r":3: has a flag out of range",
    )
    expect(original[:-1], r"the file ends before the 1 box line")
    expect(["0--Parade/0_Parade_marchingband_1_849"] + original[1:], r":1: should name an image")
    (root / "WIDER_val" / "images").rename(root / "WIDER_val" / "moved")
    path.write_text("\n".join(original) + "\n")
    with pytest.raises(
        DataError, match=r"1 of the 1 WIDER FACE images of the test split are missing"
    ):
        load_dataset("widerface", {"path": root, "cache": False})


# -- FDDB ----------------------------------------------------------------------------------
def test_fddb_ellipse_box_rule_matches_the_drawn_ellipse():
    for a, b, theta in (
        (50.0, 30.0, 0.0),
        (50.0, 30.0, math.pi / 2),
        (44.0, 31.0, 1.265839),
        (40.0, 40.0, 0.7),
        (60.0, 20.0, -0.4),
    ):
        ellipse = fddb.Ellipse(a, b, theta, 100.0, 120.0)
        points = np.array(fx.ellipse_polygon(a, b, theta, 100.0, 120.0, points=20000))
        expected = (points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max())
        assert ellipse.bounding_box() == pytest.approx(expected, abs=1e-3)
    assert fddb.Ellipse(50.0, 30.0, 0.0, 0, 0).major_diameter == 100.0


def test_fddb_rescale_and_boxes(roots, cache):
    base, written = roots
    data = load_dataset(
        "fddb",
        {"path": base / "fddb", "test_folds": [1, 2], "val_folds": [3], "image_size": 160},
        cache,
    )
    test = data.scenes.test
    assert [len(data.scenes[s]) for s in SPLITS] == [
        0,
        2,
        7,
    ] and data.scenes.train.images.shape == (0, 3, 160, 160)
    records = written["fddb"][1] + written["fddb"][2]
    assert [len(b) for b in test.boxes] == [len(e) for _, e in records]
    config = fddb.FDDBConfig(
        path=str(base / "fddb"), test_folds=[1, 2], val_folds=[3], image_size=160
    )
    requests = [
        formats.ImageRequest(
            fddb.pictures_root(base / "fddb") / f"{n}.jpg",
            max_scale=fddb.rescale_factor(
                fddb.FDDBImage(n, [fddb.Ellipse(*e) for e in el], 1, 0), 40.0
            ),
        )
        for n, el in records
    ]
    loaded = formats.load_images(requests, size=160, mode="letterbox", workers=1)
    for row, (_, ellipses) in enumerate(records):
        scale = float(loaded.transforms[row, 0])
        smallest = min(2 * max(a, b) for a, b, *_ in ellipses)
        assert (
            scale <= 1.0 + 1e-9 and smallest * scale <= 40.0 + 0.5
        )  # CAnOPIC: smallest face ≤ 40 px, never upsampled
        if smallest <= 40.0:
            assert scale == pytest.approx(1.0, abs=0.01) or smallest * scale < 40.0
        for x0, y0, x1, y1 in test.boxes[row].tolist():
            assert _is_face_colour(_colour_at(test.images, row, (x0 + x1) / 2, (y0 + y1) / 2))
            assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 160
    assert torch.equal(loaded.images, test.images)
    assert "≤ 40 px" in data.description and config.max_face_px == 40.0


# -- COCO ----------------------------------------------------------------------------------
def test_coco_karpathy_split(roots, cache):
    base, written = roots
    data = load_dataset(
        "coco", {"path": base / "coco", "image_size": 64, "with_boxes": True}, cache
    )
    scenes = data.scenes
    assert scenes.train.image_ids == [9, 25, 30, 36, 133]  # train + restval
    assert scenes.val.image_ids == [34, 73, 136] and scenes.test.image_ids == [42, 74, 139]
    assert (
        scenes.train.captions[0] == written["coco"]["captions"][9]
        and len(scenes.train.captions[0]) == 6
    )
    assert scenes.train.categories == ["person", "car", "dog"]
    for split in SPLITS:
        for row, coco_id in enumerate(scenes[split].image_ids):
            assert len(scenes[split].boxes[row]) == len(written["coco"]["boxes"][coco_id])
            for x0, y0, x1, y1 in scenes[split].boxes[row].tolist():
                assert _is_face_colour(
                    _colour_at(scenes[split].images, row, (x0 + x1) / 2, (y0 + y1) / 2),
                    tolerance=60,
                )
    dropped = load_dataset(
        "coco",
        {
            "path": base / "coco",
            "image_size": 64,
            "restval": "drop",
            "max_captions_per_image": 2,
            "max_test_images": 2,
        },
        cache,
    )
    assert dropped.scenes.train.image_ids == [9, 30, 133] and len(dropped.scenes.test) == 2
    assert (
        all(len(c) == 2 for c in dropped.scenes.val.captions)
        and dropped.scenes.val.categories == []
    )


def test_coco_official_split(roots, cache):
    base, written = roots
    data = load_dataset(
        "coco", {"path": base / "coco", "image_size": 48, "split_scheme": "official"}, cache
    )
    scenes = data.scenes
    assert scenes.train.image_ids == [9, 25, 30, 34, 36]
    assert len(scenes.val) == 3 and len(scenes.test) == 3
    assert sorted(scenes.val.image_ids + scenes.test.image_ids) == [42, 73, 74, 133, 136, 139]
    assert scenes.test.captions[0] == [
        c.strip() for c in written["coco"]["captions"][scenes.test.image_ids[0]]
    ]


def test_coco_errors(tmp_path):
    root = tmp_path / "coco"
    fx.write_coco(root, [9, 25], [42], {9: "train", 25: "val", 42: "test"})
    karpathy = json.loads((root / "dataset_coco.json").read_text())
    karpathy["images"][1]["split"] = "validation"
    (root / "dataset_coco.json").write_text(json.dumps(karpathy))
    with pytest.raises(
        formats.AnnotationError, match=r"images\[1\] \(cocoid 25\) has split 'validation'"
    ):
        load_dataset("coco", {"path": root})
    (root / "dataset_coco.json").unlink()
    with pytest.raises(DataError, match="dataset_coco.json not found"):
        load_dataset("coco", {"path": root})
    (root / "val2014" / "COCO_val2014_000000000042.jpg").unlink()
    with pytest.raises(DataError, match=r"COCO_val2014_000000000042\.jpg"):
        load_dataset("coco", {"path": root, "split_scheme": "official", "cache": False})
    report = dataset_adapter("coco", {"path": root, "split_scheme": "official"}).check()
    assert report.missing == ["val2014/COCO_val2014_000000000042.jpg"]


# -- LFW -----------------------------------------------------------------------------------
def test_lfw_identities_and_pairs(roots, cache):
    base, written = roots
    data = load_dataset(
        "lfw",
        {
            "path": base / "lfw",
            "min_images_per_identity": 5,
            "test_per_identity": 2,
            "val_per_identity": 2,
        },
        cache,
    )
    ids = data.identities
    assert ids.train.class_names == [
        "Aaron_Peirsol",
        "Abel_Pacheco",
        "Colin_Powell",
    ]  # Dean_Barker has 2 pictures
    assert torch.bincount(ids.train.labels).tolist() == [2, 1, 5]
    for split in SPLITS:
        for row, label in enumerate(ids[split].labels.tolist()):
            colour = torch.tensor(fx.identity_colour(label + 1), dtype=torch.float32)
            # the 100 px face square fills the middle two thirds of the central 150 px crop
            assert (
                ids[split].images[row, :, 16:48, 16:48].float().mean((1, 2)) - colour
            ).abs().max() < 25
    top = load_dataset(
        "lfw",
        {
            "path": base / "lfw",
            "min_images_per_identity": 5,
            "n_identities": 2,
            "test_per_identity": 2,
            "val_per_identity": 2,
        },
        cache,
    )
    assert top.identities.train.class_names == ["Aaron_Peirsol", "Colin_Powell"]

    pairs = lfw.read_lfw_pairs(base / "lfw" / "pairs.txt")
    assert [(p.first[0], p.first[1], p.second[0], p.second[1], p.same) for p in pairs] == written[
        "lfw"
    ]["pairs"]
    assert [p.fold for p in pairs] == [0] * 6 + [1] * 6
    loaded = lfw.load_lfw_pairs(
        base / "lfw" / "lfw",
        cache_dir=cache,
        min_images_per_identity=5,
        test_per_identity=2,
        val_per_identity=2,
    )
    assert (
        len(loaded) == 12
        and loaded.same.tolist() == [p.same for p in pairs]
        and loaded.first.shape == (12, 3, 64, 64)
    )
    colour_gap = (
        (loaded.first.float().mean((2, 3)) - loaded.second.float().mean((2, 3)))
        .abs()
        .max(dim=1)
        .values
    )
    assert bool((colour_gap[loaded.same] < 10).all()) and bool(
        (colour_gap[~loaded.same] > 30).all()
    )


def test_lfw_malformed_pairs(tmp_path):
    root = tmp_path / "lfw"
    fx.write_lfw(root, {"Aaron_Peirsol": 3, "Abel_Pacheco": 3}, pairs_sets=1, pairs_per_class=2)
    path = root / "pairs.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["Aaron_Peirsol\t1\tAbel_Pacheco\t2"] + lines[3:]) + "\n")
    with pytest.raises(formats.AnnotationError, match=r"pairs\.txt:3: should be a matched"):
        lfw.read_lfw_pairs(path)
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(formats.AnnotationError, match="header announces 1 x 2 x 2 = 4"):
        lfw.read_lfw_pairs(path)
    path.write_text("\n".join(lines[:3] + ["Aaron_Peirsol\t1\tAbel_Pacheco\t9"] + lines[4:]) + "\n")
    with pytest.raises(DataError, match=r"Abel_Pacheco_0009\.jpg"):
        lfw.load_lfw_pairs(
            root, min_images_per_identity=3, test_per_identity=1, val_per_identity=1, cache=False
        )


# -- end to end ----------------------------------------------------------------------------
def test_a_benchmark_runs_on_a_real_format_dataset(tmp_path):
    """The runner builds a registered adapter from the spec's dataset config (path and options)."""
    from privbench.pipeline import run

    fx.write_vggface2(tmp_path / "vggface2", {f"n{i:06d}": 8 for i in range(1, 4)})
    spec = {
        "name": "vggface2-smoke",
        "dataset": {
            "name": "vggface2",
            "config": {
                "path": str(tmp_path / "vggface2"),
                "n_identities": 3,
                "test_per_identity": 2,
                "val_per_identity": 2,
            },
        },
        "encoders": ["identity"],
        "attacks": [{"name": "face-id", "config": {"training": {"epochs": 1}}}],
        "seeds": [0],
    }
    results = run(spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", render=False)
    expected = load_dataset(
        "vggface2",
        {
            "path": tmp_path / "vggface2",
            "n_identities": 3,
            "test_per_identity": 2,
            "val_per_identity": 2,
        },
        tmp_path / "cache",
    )
    assert len(results) == 1
    row = results.iloc[0]
    assert row["dataset"] == "vggface2" and row["dataset_fingerprint"] == expected.fingerprint
    assert row["chance"] == pytest.approx(1 / 3)  # the attack sees the adapter's 3 identities
    assert 0.0 <= row["headline_value"] <= 1.0 and row["role"] == "privacy"


def test_a_16_bit_grey_png_keeps_its_values(tmp_path):
    import numpy as np
    from PIL import Image

    from privbench.data.formats.pixels import to_rgb8
    from privbench.report.show import load_image

    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # a 16-bit grey PNG (opened as mode I;16 or I)
    with Image.open(path) as opened:
        assert opened.mode in ("I;16", "I")
        rgb = np.asarray(to_rgb8(opened))
    expected = np.round(ramp / 65535 * 255).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    shown = load_image(path)[0, 0].numpy()
    assert abs(float(shown.mean()) - float(expected.mean()) / 255) < 1e-3
    assert (shown >= 0.999).mean() < 0.01  # was 99.5 % white
