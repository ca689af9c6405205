"""Off-the-shelf real face models as never-fit attackers, and the face-ID attacker zoo's maximum.

The ``offtheshelf-face`` tests run the real packaged models (OpenCV Haar cascade, dlib HOG and
CNN detectors, dlib's recognition ResNet) on the real faces shipped with scikit-image; they are
skipped, with the reason, when the ``privbench[faces]`` extra is not installed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import privbench
from privbench.api.errors import ConfigError, InputError
from privbench.api.evaluation import EvalInputs, RunContext
from privbench.nn import face_models

EXTRA_PROBLEM = face_models.faces_extra_problem()
needs_faces = pytest.mark.skipif(
    EXTRA_PROBLEM is not None, reason=f"privbench[faces] not installed: {EXTRA_PROBLEM}"
)
#: Small real-image budget: 6 LFW faces (and 6 non-faces); the astronaut at its default size.
SMALL = {"lfw_faces": 6}


def through(transform, name: str = "test-encoder") -> EvalInputs:
    """Inputs whose encoder is ``transform`` on [0, 1] floats and whose dataset parts
    must never be read."""

    def no_dataset_part(part: str, split: str):
        raise AssertionError(f"the off-the-shelf attack read dataset part {part}/{split}")

    return EvalInputs(
        None, no_dataset_part, name, encode_images=lambda images: transform(images.float() / 255.0)
    )


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def blur8(x: torch.Tensor) -> torch.Tensor:
    return privbench.get_encoder("gaussian-blur", sigma_px=8)(x)


def pool4(x: torch.Tensor) -> torch.Tensor:
    """A shape-changing camera (4× smaller measurement)."""
    return F.avg_pool2d(x, 4)


# -- the real models on real faces ---------------------------------------------------------
@needs_faces
def test_real_detectors_find_the_astronaut_at_full_resolution():
    models = face_models.load_face_models()
    picture, box = face_models.astronaut(face_models.ASTRONAUT_SIDE)
    image = picture[0].permute(1, 2, 0).numpy()
    for detector in face_models.DETECTORS:
        boxes = models.detect(detector, image)
        assert len(boxes) >= 1, detector
        assert face_models.box_iou(box, boxes).max() >= 0.5, (detector, boxes)


@pytest.fixture(scope="module")
def clean_camera():
    """The attack (6 LFW faces, astronaut) through the clean camera, shared by the tests below."""
    if EXTRA_PROBLEM is not None:
        pytest.skip(f"privbench[faces] not installed: {EXTRA_PROBLEM}")
    return privbench.get_attack("offtheshelf-face", **SMALL).evaluate(
        through(identity, "identity"), RunContext()
    )


@needs_faces
def test_real_detectors_find_the_astronaut_face_on_the_clean_camera(clean_camera):
    attack = privbench.get_attack("offtheshelf-face", **SMALL)
    assert (
        attack.protocol_name == "offtheshelf"
        and attack.role == "privacy"
        and attack.headline == "id_top1"
    )
    clean = clean_camera
    for detector in face_models.DETECTORS:
        assert clean.metrics[f"astronaut_{detector}"] == 1.0, detector
        # real LFW faces are found, real non-faces are not
        assert clean.metrics[f"detect_{detector}"] >= 0.5, detector
        assert clean.metrics[f"false_alarm_{detector}"] <= 0.5, detector
    # the recognition network re-identifies the mirrored faces among the gallery on the clean camera
    assert (
        clean.metrics["id_top1_clean_gallery"] == clean.metrics["id_top1_encoded_gallery"]
    )  # clean = measurement
    assert clean.metrics["id_top1"] >= 0.8
    assert clean.chance == pytest.approx(1 / 6)


@needs_faces
def test_strong_blur_defeats_the_real_models(clean_camera):
    clean = clean_camera
    blurred = privbench.get_attack("offtheshelf-face", **SMALL).evaluate(
        through(blur8), RunContext()
    )
    assert blurred.metrics["detect_best"] < clean.metrics["detect_best"]
    assert blurred.metrics["id_top1_clean_gallery"] < clean.metrics["id_top1_clean_gallery"]
    assert sum(blurred.metrics[f"astronaut_{d}"] for d in face_models.DETECTORS) < len(
        face_models.DETECTORS
    )


@needs_faces
def test_face_models_in_worker_processes_give_the_same_results_and_report_errors():
    # dlib's deep models hold the GIL, so a 2-thread cell runs them in 2 worker processes
    from privbench.nn.face_worker import FaceWorkerError

    faces, _ = face_models.lfw_subset(6, 64)
    views = [face_models.detector_view(face.float() / 255.0, 100 / 64, 25) for face in faces]
    models = face_models.load_face_models()
    for detector in face_models.DETECTORS:
        inline = [models.detect(detector, view) for view in views]
        pooled = face_models.detect_many(detector, views, workers=2)
        assert all((a == b).all() and a.shape == b.shape for a, b in zip(inline, pooled))
    box = (25.0, 25.0, 125.0, 125.0)
    inline = np.stack([models.describe(view, box) for view in views])
    assert np.array_equal(face_models.describe_many(views, box, workers=2), inline)
    with pytest.raises(FaceWorkerError, match="ConfigError: Unknown face detector"):
        face_models.detect_many("no-such-detector", views, workers=2)
    # the pool survives a failed request
    assert len(face_models.detect_many("dlib-hog", views, workers=2)) == len(views)


@needs_faces
def test_shape_changing_cameras_are_compared_on_the_scene_grid():
    attack = privbench.get_attack(
        "offtheshelf-face", lfw_faces=2, astronaut=False, detectors=["dlib-hog"]
    )
    result = attack.evaluate(through(pool4), RunContext())
    assert (
        0.0 <= result.metrics["detect_dlib-hog"] <= 1.0 and 0.0 <= result.metrics["id_top1"] <= 1.0
    )
    assert "astronaut_dlib-hog" not in result.metrics and "detect_opencv-haar" not in result.metrics


# -- never fit -----------------------------------------------------------------------------
def _model_file_digests() -> dict[str, str]:
    files = face_models.load_face_models().files
    return {key: hashlib.sha256(Path(path).read_bytes()).hexdigest() for key, path in files.items()}


@needs_faces
def test_offtheshelf_attack_never_fits_anything(monkeypatch, tmp_path):
    """No optimizer step, no backward pass, no training loop, no dataset part, model files
    untouched, and no state carried from one camera to the next (same answers in any order)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the off-the-shelf attack tried to train something")

    import privbench.nn.training

    monkeypatch.setattr(torch.optim.Optimizer, "step", forbidden)
    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    monkeypatch.setattr(privbench.nn.training, "train_classifier", forbidden)
    monkeypatch.setattr(privbench.nn.training, "fit_new_classifier", forbidden)
    before = _model_file_digests()
    attack = privbench.get_attack("offtheshelf-face", lfw_faces=2, astronaut=False)
    assert attack.protocol_name == "offtheshelf" and attack.requires == ()
    assert not any(
        "train" in field or "epoch" in field or field == "lr"
        for field in type(attack.config).model_fields
    )
    first = attack.evaluate(through(identity), RunContext(workdir=tmp_path))
    attack.evaluate(through(blur8), RunContext(workdir=tmp_path))
    again = attack.evaluate(through(identity), RunContext(workdir=tmp_path))
    assert first.metrics == again.metrics
    assert _model_file_digests() == before
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # no checkpoint of anything


# -- the folder of the user's real faces ---------------------------------------------------
@needs_faces
def test_folder_identification_agrees_with_the_packaged_protocol(tmp_path):
    """A folder with one person per LFW face (the face and its mirror image) gives the same
    identification as the packaged lfw_subset protocol (gallery = face, probe = mirror)."""
    from PIL import Image

    faces, _ = face_models.lfw_subset(4, 64)
    for index, face in enumerate(faces):
        person = tmp_path / "faces" / f"person{index}"
        person.mkdir(parents=True)
        Image.fromarray(face.permute(1, 2, 0).numpy()).save(person / "a.png")
        Image.fromarray(face.flip(-1).permute(1, 2, 0).numpy()).save(person / "b.png")
    common = {"lfw_faces": 4, "astronaut": False, "detectors": ["opencv-haar"]}
    packaged = privbench.get_attack("offtheshelf-face", **common).evaluate(
        through(blur8), RunContext()
    )
    folder = privbench.get_attack(
        "offtheshelf-face", folder=str(tmp_path / "faces"), **common
    ).evaluate(through(blur8), RunContext())
    for metric in ("id_top1_clean_gallery", "id_top1_encoded_gallery", "id_top1"):
        assert folder.metrics[metric] == pytest.approx(packaged.metrics[metric]), metric
    assert folder.chance == pytest.approx(1 / 4)
    assert 0.0 <= folder.metrics["folder_detect_opencv-haar"] <= 1.0
    assert "4 of 4 people" in folder.details["identification_set"]


@needs_faces
def test_folder_needs_two_people_with_probes(tmp_path):
    from PIL import Image

    faces, _ = face_models.lfw_subset(2, 64)
    for index, face in enumerate(faces):
        (tmp_path / f"p{index}").mkdir()
        Image.fromarray(face.permute(1, 2, 0).numpy()).save(tmp_path / f"p{index}" / "only.png")
    attack = privbench.get_attack(
        "offtheshelf-face",
        folder=str(tmp_path),
        lfw_faces=2,
        astronaut=False,
        detectors=["dlib-hog"],
    )
    with pytest.raises(privbench.api.errors.DataError, match="at least 2 people"):
        attack.evaluate(through(identity), RunContext())


# -- contracts that hold without the extra -------------------------------------------------
def test_missing_models_name_the_extra(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real_find_spec(name, *a),
    )
    face_models.load_face_models.cache_clear()
    try:
        with pytest.raises(face_models.MissingFaceModelsError, match=r"privbench\[faces\]"):
            face_models.dlib_model_path("recognition")
        with pytest.raises(privbench.api.errors.PrivbenchError, match=r"privbench\[faces\]"):
            face_models.load_face_models()
    finally:
        face_models.load_face_models.cache_clear()


def test_encode_images_contract():
    without = EvalInputs(None, lambda part, split: None, "x")
    with pytest.raises(ConfigError, match="encode_images"):
        without.encode_images(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    inputs = through(identity)
    with pytest.raises(InputError, match="uint8"):
        inputs.encode_images(torch.zeros(1, 3, 64, 64))
    out = inputs.encode_images(torch.full((2, 3, 64, 64), 255, dtype=torch.uint8))
    assert out.shape == (2, 3, 64, 64) and float(out.max()) == 1.0


def test_offtheshelf_config_is_validated():
    with pytest.raises(ConfigError, match="detectors"):
        privbench.get_attack("offtheshelf-face", detectors=["yolo"])
    with pytest.raises(ConfigError, match="lfw_faces"):
        privbench.get_attack("offtheshelf-face", lfw_faces=101)
    with pytest.raises(ConfigError, match="face_px"):
        privbench.get_attack("offtheshelf-face", face_px=32)
    with pytest.raises(ConfigError, match="epochs"):
        privbench.get_attack("offtheshelf-face", epochs=3)  # nothing to train


@needs_faces
def test_runner_encodes_the_attack_images_and_stores_the_row(toy, tmp_path):
    spec = toy.toy_spec(
        encoders=["identity"],
        tasks=[],
        attacks=[
            {
                "name": "offtheshelf-face",
                "config": {"lfw_faces": 2, "astronaut": False, "detectors": ["dlib-hog"]},
            }
        ],
    )
    report = privbench.run(
        spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", report=True, render=False
    )
    assert not report.failures
    row = report.results.set_index("evaluation").loc["offtheshelf-face"]
    assert row["protocol"] == "offtheshelf" and row["role"] == "privacy"
    assert set(row["metrics"]) >= {
        "id_top1",
        "id_top1_clean_gallery",
        "id_top1_encoded_gallery",
        "detect_dlib-hog",
    }
    assert row["chance"] == pytest.approx(1 / 2)
    assert any(
        (tmp_path / "cache" / "encoded").iterdir()
    )  # the runner encoded (and cached) the real faces


# -- the attacker zoo ----------------------------------------------------------------------
def test_face_id_headline_is_the_best_of_the_zoo(tmp_path):
    from test_face_evaluations import FAST, blur, inputs_through, squares_data

    zoo = [
        {"model": "small-cnn", "width_multiplier": 0.5},
        {"model": "googlenet", "width_multiplier": 0.125},
        {"model": "mobilenet", "width_multiplier": 0.125},
    ]
    attack = privbench.get_attack("face-id", zoo=zoo, **FAST)
    result = attack.evaluate(inputs_through(squares_data(), blur), RunContext(workdir=tmp_path))
    members = ["small-cnn", "googlenet", "mobilenet"]
    assert set(result.metrics) == {"top1", "top5"} | {
        f"top{k}_{m}" for m in members for k in (1, 5)
    }
    assert result.metrics["top1"] == max(result.metrics[f"top1_{m}"] for m in members)
    assert result.metrics["top5"] == max(result.metrics[f"top5_{m}"] for m in members)
    assert result.metrics["top1"] == result.metrics[f"top1_{result.details['best_model']}"]
    assert result.chance == pytest.approx(1 / 6)
    assert result.metrics["top1"] > result.chance
    for member in members:  # each trained on the same split, with its own checkpoint
        assert (tmp_path / f"face-id-retrained-{member}.pt").is_file()
        assert result.details["zoo"][member]["training"]["epochs_run"] == 8


# -- the Fig. 3-like figure ----------------------------------------------------------------
@needs_faces
def test_figure_boxes_land_on_the_astronaut_face_in_scene_coordinates():
    from privbench.report.figures import figure_images, find_faces

    (row,) = figure_images(None, lfw_faces=0, astronaut_px=128)
    _, box = face_models.astronaut(128)
    boxes = find_faces(
        face_models.load_face_models(), face_models.DETECTORS, row.image.float() / 255.0, row
    )
    for detector, found in boxes.items():
        assert len(found) >= 1 and face_models.box_iou(box, found).max() >= 0.5, (detector, found)


@needs_faces
def test_qualitative_figure_draws_every_column(toy, tmp_path):
    from PIL import Image

    from privbench.report.figures import figure_images, fit_reconstructors, qualitative_figure

    data = toy.build_toy()
    rows = figure_images(data, test_crops=1, lfw_faces=1, astronaut_px=None)
    assert len(rows) == 2 and rows[0].image.shape == (3, 64, 64)
    encoders = {
        "identity": privbench.get_encoder("identity"),
        "blur": privbench.get_encoder("gaussian-blur", sigma_px=8),
    }
    one = qualitative_figure(rows, encoders, tmp_path / "one.png", detectors=["dlib-hog"])
    # the reconstruction attack's own decoder, trained on the toy identity split
    reconstructors = fit_reconstructors(
        data, {"blur": encoders["blur"]}, decoder_width=4, decoder_levels=1, epochs=1
    )
    recon = reconstructors["blur"](torch.rand(2, 3, 64, 64))
    assert recon.shape == (2, 3, 64, 64) and 0 <= float(recon.min()) and float(recon.max()) <= 1
    two = qualitative_figure(
        rows, encoders, tmp_path / "two.png", reconstructors=reconstructors, detectors=None
    )
    assert Image.open(two).size[0] > Image.open(one).size[0]  # 4 panels a row instead of 3
    with pytest.raises(InputError, match="at least one"):
        qualitative_figure([], encoders, tmp_path / "none.png")


def test_figure_command_reuses_the_runs_decoders_and_joins_the_leaderboard_page(
    toy, tmp_path, capsys, monkeypatch
):
    import yaml

    from privbench.cli import main

    reconstruction = {
        "epochs": 2,
        "decoder_width": 4,
        "decoder_levels": 1,
        "batch_size": 8,
        "training": {"epochs": 2, "batch_size": 8},
    }
    spec = tmp_path / "toy.yaml"
    spec.write_text(
        yaml.safe_dump(
            toy.toy_spec(
                encoders=["identity", "pixelate"],
                attacks=[{"name": "reconstruction", "config": reconstruction}],
            )
        )
    )
    out = tmp_path / "out"
    assert privbench.run(str(spec), out_dir=out, report=True).failures == []
    assert "fig3.png" not in (out / "index.html").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("the figure trained a decoder instead of reading the run's checkpoint")

    monkeypatch.setattr(torch.optim.Adam, "step", no_training)
    args = [
        "figure",
        "--spec",
        str(spec),
        "--out",
        str(out),
        "--test-crops",
        "2",
        "--lfw-faces",
        "0",
        "--astronaut-px",
        "0",
        "--no-detectors",
    ]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0, capsys.readouterr()
    from PIL import Image

    width, height = Image.open(out / "fig3.png").size
    assert width > height  # 2 rows of clean + (measurement, reconstruction) × 2 encoders
    assert "<img src='fig3.png'" in (out / "index.html").read_text()
