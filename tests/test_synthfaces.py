"""The embedded synthfaces dataset: determinism, real on-disk formats, splits, cache, captions."""

from __future__ import annotations

import json
import re

import pytest
import torch

import privbench
from privbench.api.errors import ConfigError
from privbench.api.registry import DATASETS
from privbench.data import synthfaces as sf
from privbench.data.containers import SPLITS, BenchmarkData

TINY = sf.SYNTHFACES_PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthfaces")


@pytest.fixture(scope="module")
def tiny(tiny_cache) -> BenchmarkData:
    return sf.build_synthfaces("tiny", seed=0, cache_dir=tiny_cache)


@pytest.fixture(scope="module")
def tiny_folder(tiny, tiny_cache):
    return sf.dataset_folder(sf.synthfaces_config("tiny", 0), tiny_cache)


def test_registered_under_its_name():
    assert "synthfaces" in privbench.list_datasets()
    assert DATASETS.get("synthfaces") is sf.SynthFacesAdapter


def test_shapes_dtypes_and_labels(tiny):
    config = sf.synthfaces_config("tiny")
    assert tiny.name == "synthfaces-tiny"
    assert re.fullmatch(r"[0-9a-f]{16}", tiny.fingerprint)
    assert "6 synthetic identities" in tiny.description
    for split in SPLITS:
        faces = tiny.identities[split]
        per_identity = config.faces_per_identity(split)
        assert faces.images.dtype == torch.uint8 and faces.images.shape == (
            6 * per_identity,
            3,
            64,
            64,
        )
        assert faces.labels.dtype == torch.int64
        assert torch.equal(
            torch.bincount(faces.labels, minlength=6), torch.full((6,), per_identity)
        )
        assert faces.class_names == [sf.identity_name(i) for i in range(6)]

        binary = tiny.face_vs_noface[split]
        assert binary.class_names == ["no-face", "face"]
        assert int((binary.labels == 1).sum()) == len(faces) and int(
            (binary.labels == 0).sum()
        ) == config.nonfaces(split)
        # the faces of face-vs-noface are exactly the identity crops of that split
        assert torch.equal(binary.images[binary.labels == 1], faces.images)

        scenes = tiny.scenes[split]
        assert scenes.images.dtype == torch.uint8 and scenes.images.shape == (
            config.scenes(split),
            3,
            128,
            128,
        )
        assert scenes.categories == ["face", "ball", "box", "cup", "tree", "car"]
        assert (
            len(scenes.boxes)
            == len(scenes.box_labels)
            == len(scenes.captions)
            == len(scenes.image_ids)
            == len(scenes)
        )
        for boxes, labels in zip(scenes.boxes, scenes.box_labels):
            assert boxes.dtype == torch.float32 and boxes.shape == (labels.numel(), 4)
            assert labels.dtype == torch.int64 and bool(((labels >= 0) & (labels < 6)).all())
            # boxes are non-empty and inside the image
            assert bool((boxes[:, 2:] > boxes[:, :2]).all())
            assert bool((boxes >= 0).all()) and bool((boxes <= 128).all())


def test_faces_look_different_from_nonfaces_and_are_not_blank(tiny):
    images = tiny.identities["train"].images.float()
    assert images.std() > 20  # real content, not a constant
    per_image_std = images.flatten(1).std(1)
    assert bool((per_image_std > 5).all())


def test_same_seed_same_data_different_seed_different(tiny, tmp_path):
    again = sf.build_synthfaces("tiny", seed=0, cache_dir=tmp_path / "a")
    assert again.fingerprint == tiny.fingerprint
    for split in SPLITS:
        assert torch.equal(again.identities[split].images, tiny.identities[split].images)
        assert torch.equal(again.face_vs_noface[split].images, tiny.face_vs_noface[split].images)
        assert torch.equal(again.scenes[split].images, tiny.scenes[split].images)
        assert again.scenes[split].captions == tiny.scenes[split].captions
    other = sf.build_synthfaces("tiny", seed=1, cache_dir=tmp_path / "b")
    assert other.fingerprint != tiny.fingerprint
    assert not torch.equal(other.identities["train"].images, tiny.identities["train"].images)


def test_imagefolder_layout_on_disk(tiny_folder):
    config = sf.synthfaces_config("tiny")
    for split in SPLITS:
        identity_folders = sorted(p.name for p in (tiny_folder / "faces" / split).iterdir())
        assert identity_folders == [f"n{i:06d}" for i in range(1, 7)]
        files = sorted(p.name for p in (tiny_folder / "faces" / split / "n000001").iterdir())
        assert files == [f"{k:04d}_01.png" for k in range(1, config.faces_per_identity(split) + 1)]
        categories = {p.name for p in (tiny_folder / "nonfaces" / split).iterdir()}
        assert categories <= set(sf.NONFACE_CATEGORIES) and "round-blob" in categories
        count = sum(1 for _ in (tiny_folder / "nonfaces" / split).glob("*/*.png"))
        assert count == config.nonfaces(split)
    with open(tiny_folder / "faces" / "train" / "n000001" / "0001_01.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_coco_json_on_disk(tiny_folder):
    image_ids: set[int] = set()
    for split in SPLITS:
        instances = json.loads(
            (tiny_folder / "scenes" / "annotations" / f"instances_{split}.json").read_text()
        )
        captions = json.loads(
            (tiny_folder / "scenes" / "annotations" / f"captions_{split}.json").read_text()
        )
        assert {"info", "licenses", "images", "annotations", "categories"} <= set(instances)
        assert {"info", "licenses", "images", "annotations"} <= set(captions)
        assert instances["categories"][0]["name"] == "face"
        category_ids = {c["id"] for c in instances["categories"]}
        sizes = {}
        for image in instances["images"]:
            assert {"id", "file_name", "width", "height"} <= set(image)
            assert (tiny_folder / "scenes" / split / image["file_name"]).is_file()
            sizes[image["id"]] = (image["width"], image["height"])
        assert not image_ids & set(sizes)  # image ids are unique across splits, as in COCO
        image_ids |= set(sizes)
        for annotation in instances["annotations"]:
            assert {"id", "image_id", "category_id", "bbox", "area", "iscrowd"} <= set(annotation)
            x, y, w, h = annotation["bbox"]
            width, height = sizes[annotation["image_id"]]
            assert (
                w > 0
                and h > 0
                and x >= 0
                and y >= 0
                and x + w <= width + 1e-6
                and y + h <= height + 1e-6
            )
            assert annotation["area"] == pytest.approx(w * h, abs=0.05)
            assert annotation["category_id"] in category_ids and annotation["iscrowd"] == 0
        per_image = {image_id: 0 for image_id in sizes}
        for annotation in captions["annotations"]:
            assert isinstance(annotation["caption"], str) and annotation["caption"].endswith(".")
            per_image[annotation["image_id"]] += 1
        assert set(per_image.values()) == {5}


def test_identity_splits_are_disjoint(tiny):
    seen: dict[bytes, str] = {}
    for split in SPLITS:
        faces = tiny.identities[split]
        for image, label in zip(faces.images, faces.labels):
            key = bytes(image.numpy().tobytes())
            assert key not in seen, (
                f"a {split} crop of identity {int(label)} repeats a {seen[key]} crop"
            )
            seen[key] = split


def test_second_build_reuses_the_cache(tiny_cache, tiny, tiny_folder):
    manifest = tiny_folder / sf.MANIFEST_FILE
    tensors = tiny_folder / sf.TENSOR_FILE
    stamps = (manifest.stat().st_mtime_ns, tensors.stat().st_mtime_ns)
    before = dict(sf.STATS)
    again = sf.build_synthfaces("tiny", seed=0, cache_dir=tiny_cache)
    assert sf.STATS["generated"] == before["generated"]
    assert sf.STATS["loaded_tensors"] == before["loaded_tensors"] + 1
    assert (manifest.stat().st_mtime_ns, tensors.stat().st_mtime_ns) == stamps
    assert again.fingerprint == tiny.fingerprint


def test_lost_tensor_file_is_rebuilt_from_the_files(tmp_path, tiny):
    sf.build_synthfaces("tiny", seed=0, cache_dir=tmp_path)
    folder = sf.dataset_folder(sf.synthfaces_config("tiny", 0), tmp_path)
    (folder / sf.TENSOR_FILE).unlink()
    before = dict(sf.STATS)
    again = sf.build_synthfaces("tiny", seed=0, cache_dir=tmp_path)
    assert sf.STATS["read_from_files"] == before["read_from_files"] + 1
    assert sf.STATS["generated"] == before["generated"]
    assert again.fingerprint == tiny.fingerprint
    assert (folder / sf.TENSOR_FILE).is_file()


def test_default_cache_is_privbench_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVBENCH_CACHE", str(tmp_path))
    config = sf.synthfaces_config("tiny")
    assert (
        sf.dataset_folder(config) == tmp_path / "datasets" / f"synthfaces-{sf.dataset_key(config)}"
    )
    # the key changes with the config and with the generator version
    assert sf.dataset_key(sf.synthfaces_config("tiny", seed=1)) != sf.dataset_key(config)
    key = sf.dataset_key(config)
    monkeypatch.setattr(sf.dataset, "GENERATOR_VERSION", sf.GENERATOR_VERSION + "-next")
    assert sf.dataset_key(config) != key


def test_captions_mention_what_is_in_the_scene(tiny):
    numbers = {word: index for index, word in enumerate(sf.NUMBER_WORDS)}
    colour_words = "|".join(sorted(sf.render.COLOURS, key=len, reverse=True))
    counted = 0
    for split in SPLITS:
        scenes = tiny.scenes[split]
        face_label = scenes.categories.index("face")
        for captions, labels, image_id in zip(scenes.captions, scenes.box_labels, scenes.image_ids):
            n_faces = int((labels == face_label).sum())
            present_kinds = {
                scenes.categories[int(label)] for label in labels if int(label) != face_label
            }
            assert len(captions) == 5 and len(set(captions)) == 5
            for caption in captions:
                for word, _noun in re.findall(
                    r"\b(no|one|two|three|four)\s+(person|people|faces?)\b", caption.lower()
                ):
                    assert numbers[word] == n_faces, (
                        f"scene {image_id}: {caption!r} but {n_faces} faces"
                    )
                    counted += 1
                for _colour, kind in re.findall(
                    rf"\b({colour_words})\s+(ball|box|cup|tree|car)(?:e?s)?\b", caption.lower()
                ):
                    assert kind in present_kinds, f"scene {image_id}: {caption!r} mentions a {kind}"
    assert counted >= 3 * sum(len(tiny.scenes[s]) for s in SPLITS)


def test_caption_grammar_on_a_known_scene():
    import random

    annotations = [
        {
            "category": "face",
            "box": [10, 10, 30, 30],
            "glasses": True,
            "beard": False,
            "moustache": False,
            "hair": "red hair",
            "smiling": True,
            "eyes_closed": False,
        },
        {
            "category": "face",
            "box": [80, 12, 100, 34],
            "glasses": False,
            "beard": True,
            "moustache": False,
            "hair": "bald",
            "smiling": False,
            "eyes_closed": False,
        },
        {"category": "ball", "box": [40, 90, 60, 110], "colour": "red"},
        {"category": "ball", "box": [70, 90, 90, 110], "colour": "red"},
    ]
    captions = sf.scene_captions(annotations, outdoor=False, rng=random.Random(0), size=128)
    text = " ".join(captions).lower()
    assert "two people" in text and "two faces" in text and "two red balls" in text
    assert "glasses" in text and "bald" in text
    assert any(
        relation in text for relation in ("to the left of", "to the right of", "above", "below")
    )


def test_look_alike_groups_share_coarse_traits_and_differ_in_fine_ones():
    traits = sf.sample_identities(12, 4, seed=3)
    fine = list(sf.FINE_TRAIT_LEVELS) + list(sf.FINE_TRAIT_CHOICES)
    for group in range(3):
        members = (traits["group"] == group).nonzero().flatten().tolist()
        assert len(members) == 4
        for coarse in ("skin_index", "hair_colour_index", "hair_style", "beard", "head_width"):
            assert len({float(traits[coarse][m]) for m in members}) == 1
        for i in members:
            for j in members:
                if i < j:
                    differing = sum(
                        float(traits[name][i]) != float(traits[name][j]) for name in fine
                    )
                    assert differing >= sf.MIN_FINE_DIFFERENCES
    # different groups look different coarsely
    combos = {
        (
            int(traits["skin_index"][i]),
            int(traits["hair_colour_index"][i]),
            int(traits["hair_style"][i]),
        )
        for i in range(12)
    }
    assert len(combos) == 3


def test_blur_removes_fine_detail_but_keeps_a_face():
    """The property the calibration rests on: within a look-alike group, sharp crops differ far
    more than blurred ones (σ = 8 px), while a blurred face still differs from a blurred blob."""
    config = sf.synthfaces_config("tiny")
    traits = sf.sample_identities(4, 4, seed=0)
    pose = sf.sample_poses(4, sf.stage_generator(0, "t"), cx=32.0, cy=30.0, radius=19.0)
    same_pose = {key: value[:1].expand(4, *value.shape[1:]).clone() for key, value in pose.items()}
    people = sf.render.render_people(traits, same_pose, 64, 64).over(
        torch.full((4, 3, 64, 64), 0.5)
    )
    blur = privbench.get_encoder("gaussian-blur", sigma_px=8)
    sharp_spread = (people[1:] - people[:1]).abs().mean()
    blurred = blur(people.clamp(0, 1))
    blurred_spread = (blurred[1:] - blurred[:1]).abs().mean()
    assert blurred_spread < 0.5 * sharp_spread
    assert config.crop_size_px == 64


def test_sample_face_and_sheet():
    face = sf.render_sample_face(identity=2, size=64)
    assert face.shape == (1, 3, 64, 64) and face.dtype == torch.float32
    assert 0.0 <= float(face.min()) and float(face.max()) <= 1.0 and float(face.std()) > 0.05
    sheet = sf.render_identity_sheet([0, 1], per_identity=3)
    assert sheet.shape == (3, 128, 192) and sheet.dtype == torch.uint8
    with pytest.raises(ConfigError, match="identity"):
        sf.render_sample_face(identity=999)


def test_bad_input_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"preset 'huge'.*quick, standard, tiny"):
        sf.build_synthfaces("huge", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="n_identities"):
        sf.build_synthfaces("tiny", cache_dir=tmp_path, n_identities=1)
    with pytest.raises(ConfigError, match=r"unknown field 'identities'.*n_identities"):
        sf.build_synthfaces("tiny", cache_dir=tmp_path, identities=5)
    with pytest.raises(ConfigError, match="identities_per_group"):
        sf.build_synthfaces("tiny", cache_dir=tmp_path, identities_per_group=7)
    with pytest.raises(ConfigError, match="crop_size_px"):
        sf.build_synthfaces("tiny", cache_dir=tmp_path, crop_size_px=32)
