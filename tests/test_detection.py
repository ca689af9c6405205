"""Face detection backend, task and attack: box mapping, AP/ROC on hand-made cases, protocols,
errors."""

from __future__ import annotations

import pytest
import torch
from support.detections import random_detections

import privbench
from privbench.api.cache import ArtifactCache
from privbench.api.encoder import encode_batches
from privbench.api.errors import ConfigError, DataError, InputError
from privbench.api.evaluation import EvalInputs, RunContext
from privbench.data.containers import BenchmarkData, Scenes, SceneSplits
from privbench.data.synthfaces import build_synthfaces
from privbench.detection import (
    MMDET_EXTRA_HINT,
    DetectionSet,
    DetectorConfig,
    boxes_to_clean,
    boxes_to_measurement,
    build_detector,
    coco_ap,
    detect,
    discrete_roc,
    face_boxes,
    interpolated_ap,
    measurement_scale,
    mmdet_available,
    plot_protocol_curves,
    precision_recall,
    tpr_at_false_positives,
    train_detector,
)

MMDET_MISSING = (
    "mmdet is not importable: install the extra privbench[mmdet] after building mmcv 2.1.0 with "
    "scripts/build_mmcv.sh"
)

#: A detector small enough for a couple of training steps in well under a second.
TINY_DETECTOR = {
    "widths": [8, 8, 16, 16],
    "fpn_channels": 32,
    "head_convs": 1,
    "input_size": 64,
    "training": {"epochs": 1, "batch_size": 4, "max_steps": 2, "eval_batch_size": 8},
}


@pytest.fixture(autouse=True)
def _one_thread():
    """These detectors are tiny: intra-op parallelism only adds synchronization (and stalls
    badly on a machine whose cores are shared), so the tests run them on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def scenes_data(tmp_path_factory) -> BenchmarkData:
    return build_synthfaces("tiny", seed=0, cache_dir=tmp_path_factory.mktemp("synthfaces"))


def _inputs(data, encoder_name, **config):
    encoder = privbench.get_encoder(encoder_name, **config)
    return EvalInputs(
        data,
        lambda part, split: encode_batches(encoder, data.part(part)[split].images),
        encoder_name,
    )


# -- the box-mapping rule --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "encoder, config",
    [
        ("pixelate", {"block_px": 8, "keep_size": False}),
        ("low-res", {"size_px": 16}),
        ("canopic-mp", {}),
    ],
)
@pytest.mark.parametrize("clean_hw", [(128, 128), (128, 96)])
def test_box_mapping_follows_the_measurement_and_round_trips(encoder, config, clean_hw):
    camera = privbench.get_encoder(encoder, **config)
    height, width = clean_hw
    measured_hw = camera.output_shape((3, height, width))[1:]
    if encoder == "low-res":
        assert measured_hw == (16, 16)  # low-res squeezes any scene to 16×16: anisotropic scale
    # a bright rectangle on 8-pixel block boundaries: its image in the measurement is exactly the
    # mapped box
    box = torch.tensor([[16.0, 32.0, 48.0, 64.0]])
    scene = torch.zeros(1, 3, height, width)
    scene[..., 32:64, 16:48] = 1.0
    measurement = camera(scene)[0, 0]
    assert tuple(measurement.shape) == tuple(measured_hw)
    mapped = boxes_to_measurement(box, clean_hw, measured_hw)[0]
    rows, cols = (measurement > 0.5).nonzero(as_tuple=True)
    if encoder != "low-res" or clean_hw == (128, 128):  # block-aligned cases
        assert mapped.tolist() == [
            float(cols.min()),
            float(rows.min()),
            float(cols.max()) + 1,
            float(rows.max()) + 1,
        ]
    sx, sy = measurement_scale(clean_hw, measured_hw)
    assert (sx, sy) == (measured_hw[1] / width, measured_hw[0] / height)
    boxes = torch.tensor([[3.5, 7.25, 40.0, 90.0], [0.0, 0.0, float(width), float(height)]])
    assert torch.allclose(
        boxes_to_clean(boxes_to_measurement(boxes, clean_hw, measured_hw), clean_hw, measured_hw),
        boxes,
    )


def test_detection_set_drops_boxes_below_a_sensor_pixel_and_clips():
    images = torch.zeros(1, 3, 16, 16)
    clean = [
        torch.tensor(
            [[0.0, 0.0, 8.0, 8.0], [100.0, 100.0, 100.004, 100.004], [120.0, 120.0, 140.0, 140.0]]
        )
    ]
    data = DetectionSet.from_clean_boxes(images, clean, (128, 128))
    assert data.boxes[0].tolist() == [[0.0, 0.0, 1.0, 1.0], [15.0, 15.0, 16.0, 16.0]]


# -- scores ----------------------------------------------------------------------------------------
GT = [torch.tensor([[10.0, 10.0, 50.0, 50.0]])]


def test_ap_of_perfect_predictions_is_one():
    targets = [
        torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 20.0, 90.0, 55.0]]),
        torch.tensor([[5.0, 5.0, 45.0, 40.0]]),
    ]
    predictions = [
        {"boxes": t.clone(), "scores": torch.linspace(0.9, 0.5, t.shape[0])} for t in targets
    ]
    assert coco_ap(predictions, targets) == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0}
    roc = discrete_roc(predictions, targets)
    assert roc["false_positives"][-1] == 0 and roc["true_positive_rate"][-1] == 1.0


def test_ap_of_a_shifted_box_matches_the_hand_computation():
    # shifted by 4 px in x: IoU = (36·40) / (2·1600 − 1440) = 1440/1760 = 0.818, a true positive
    # at the 7 IoU thresholds 0.50 … 0.80 and a miss at 0.85 … 0.95: AP@[.5:.95] = 7/10.
    predictions = [
        {"boxes": torch.tensor([[14.0, 10.0, 54.0, 50.0]]), "scores": torch.tensor([0.9])}
    ]
    scores = coco_ap(predictions, GT)
    assert scores["ap50"] == pytest.approx(1.0) and scores["ap75"] == pytest.approx(1.0)
    assert scores["ap"] == pytest.approx(0.7, abs=1e-6)
    # shifted by 14 px: IoU = 26·40 / (3200 − 1040) = 0.48 < 0.5: no true positive at all
    assert (
        coco_ap(
            [{"boxes": torch.tensor([[24.0, 10.0, 64.0, 50.0]]), "scores": torch.tensor([0.9])}], GT
        )["ap50"]
        == 0.0
    )


HAND_TARGETS = [torch.tensor([[10.0, 10.0, 50.0, 50.0]]), torch.tensor([[20.0, 20.0, 60.0, 60.0]])]
HAND_PREDICTIONS = [
    {"boxes": torch.tensor([[11.0, 10.0, 51.0, 50.0]]), "scores": torch.tensor([0.9])},  # TP
    {
        "boxes": torch.tensor([[80.0, 80.0, 100.0, 100.0], [20.0, 21.0, 60.0, 61.0]]),
        "scores": torch.tensor([0.8, 0.7]),
    },  # FP, TP
]


def test_precision_recall_and_ap50_on_a_hand_made_case():
    # in score order: TP (P 1, R 0.5), FP (P 0.5, R 0.5), TP (P 2/3, R 1). Interpolated precision
    # is 1 at the 51 recall levels 0 … 0.50 and 2/3 at the 50 levels 0.51 … 1.
    expected = (51 * 1.0 + 50 * 2.0 / 3.0) / 101
    curve = precision_recall(HAND_PREDICTIONS, HAND_TARGETS)
    assert curve["recall"] == pytest.approx([0.5, 0.5, 1.0])
    assert curve["precision"] == pytest.approx([1.0, 0.5, 2.0 / 3.0])
    assert interpolated_ap(curve) == pytest.approx(expected)
    assert coco_ap(HAND_PREDICTIONS, HAND_TARGETS)["ap50"] == pytest.approx(expected, abs=1e-6)


def test_discrete_roc_on_a_hand_made_case():
    roc = discrete_roc(HAND_PREDICTIONS, HAND_TARGETS)
    assert roc["false_positives"] == [0, 0, 1, 1]
    assert roc["true_positives"] == [0, 1, 1, 2]
    assert roc["true_positive_rate"] == [0.0, 0.5, 0.5, 1.0]
    assert roc["faces"] == 2
    assert tpr_at_false_positives(roc, 0) == 0.5 and tpr_at_false_positives(roc, 1) == 1.0
    # detections of equal score enter the curve together (one point per threshold)
    tied = [
        {"boxes": HAND_PREDICTIONS[1]["boxes"], "scores": torch.tensor([0.7, 0.7])},
        HAND_PREDICTIONS[0],
    ]
    roc = discrete_roc(tied, HAND_TARGETS[::-1])
    assert roc["false_positives"] == [0, 0, 1] and roc["true_positives"] == [0, 1, 2]


def test_interpolated_ap50_equals_torchmetrics_on_random_detections():
    predictions, targets = random_detections(12, seed=3)
    assert interpolated_ap(precision_recall(predictions, targets)) == pytest.approx(
        coco_ap(predictions, targets)["ap50"], abs=1e-6
    )


def _cocoeval_stats(predictions, targets) -> list[float]:
    """AP@[.5:.95], AP50, AP75 from pycocotools.COCOeval called directly (the reference)."""
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval_module = pytest.importorskip("pycocotools.cocoeval")
    images, annotations, detections = [], [], []
    for image_id, (prediction, truth) in enumerate(zip(predictions, targets), start=1):
        images.append({"id": image_id, "width": 200, "height": 200})
        for x0, y0, x1, y1 in truth.tolist():
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
        for (x0, y0, x1, y1), score in zip(prediction["boxes"].tolist(), prediction["scores"]):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    ground_truth = coco_module.COCO()
    ground_truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face"}],
    }
    ground_truth.createIndex()
    evaluation = cocoeval_module.COCOeval(ground_truth, ground_truth.loadRes(detections), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return [float(v) for v in evaluation.stats[:3]]


def test_ap_equals_cocoeval_when_recall_hits_the_levels_exactly():
    # 25 faces: recall k/25 lands exactly on COCO's levels; the seven best-scored detections
    # find seven faces (recall 0.28 at precision 1), then come 25 false positives, then the other
    # faces. With float32 thresholds the level 0.28 becomes 0.28000000119, is not reached until
    # the eighth face and gets that point's lower precision: AP lower than pycocotools'.
    generator = torch.Generator().manual_seed(5)
    targets, predictions = [], []
    for index in range(25):
        corner = torch.rand(2, generator=generator) * 100
        truth = torch.cat([corner, corner + 30]).reshape(1, 4)
        jitter = torch.randn(1, 4, generator=generator) * 2
        clutter = torch.cat([corner + 60, corner + 80]).reshape(1, 4)
        face_score = 0.99 - index * 0.01 if index < 7 else 0.5 - index * 0.01
        targets.append(truth)
        predictions.append(
            {
                "boxes": torch.cat([truth + jitter, clutter]),
                "scores": torch.tensor([face_score, 0.8 - index * 0.001]),
            }
        )
    ours = coco_ap(predictions, targets)
    reference = _cocoeval_stats(predictions, targets)
    assert [ours["ap"], ours["ap50"], ours["ap75"]] == pytest.approx(reference, abs=1e-6)


def test_discrete_roc_matches_one_to_one_optimally_with_iou_above_a_half():
    # Two faces; detection A (score 0.9) overlaps both (IoU 0.72 with face 1, 0.53 with face 2),
    # detection B (0.8) only face 1 (IoU 0.59). Greedy (COCO) gives A → face 1 and leaves B
    # unmatched; FDDB's optimal assignment gives A → face 2, B → face 1: two true positives.
    faces = torch.tensor([[0.0, 0.0, 40.0, 40.0], [12.0, 0.0, 52.0, 40.0]])
    boxes = torch.tensor([[6.0, 0.0, 46.0, 40.0], [-10.0, 0.0, 30.0, 40.0]])
    iou = [[float(v) for v in row] for row in __import__("torchvision").ops.box_iou(boxes, faces)]
    assert iou[0][0] > 0.5 and iou[0][1] > 0.5 and iou[1][0] > 0.5 and iou[1][1] <= 0.5
    prediction = [{"boxes": boxes, "scores": torch.tensor([0.9, 0.8])}]
    roc = discrete_roc(prediction, [faces])
    assert roc["true_positives"] == [0, 1, 2] and roc["false_positives"] == [0, 0, 0]
    greedy = precision_recall(prediction, [faces])
    assert greedy["recall"] == [0.5, 0.5]  # COCO's rule, kept for AP
    # FDDB's IoU rule is strict: a box at IoU exactly 0.5 is a false positive.
    half = torch.tensor([[0.0, 0.0, 40.0, 20.0]])  # 800 / 1600 of the face, inside it
    roc = discrete_roc([{"boxes": half, "scores": torch.tensor([0.5])}], [faces[:1]])
    assert roc["true_positives"] == [0, 0] and roc["false_positives"] == [0, 1]


def test_plot_protocol_curves_writes_a_figure(tmp_path):
    curve = {
        "precision_recall": precision_recall(HAND_PREDICTIONS, HAND_TARGETS),
        "discrete_roc": discrete_roc(HAND_PREDICTIONS, HAND_TARGETS),
    }
    path = plot_protocol_curves(
        {"clean-reference": curve, "retrained": curve}, tmp_path / "fig.png", title="t"
    )
    assert path.stat().st_size > 1000
    with pytest.raises(privbench.api.errors.InputError, match="precision_recall"):
        plot_protocol_curves({"x": {}}, tmp_path / "bad.png")


def test_identical_protocol_curves_say_so_instead_of_hiding(tmp_path, monkeypatch):
    import matplotlib.axes

    labels = []
    original = matplotlib.axes.Axes.plot

    def record(self, *args, **kwargs):
        labels.append(kwargs.get("label"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    curve = {
        "precision_recall": precision_recall(HAND_PREDICTIONS, HAND_TARGETS),
        "discrete_roc": discrete_roc(HAND_PREDICTIONS, HAND_TARGETS),
    }
    plot_protocol_curves({"pretrained": curve, "retrained": curve}, tmp_path / "fig.png")
    assert any(label and "identical to pretrained" in label for label in labels)
    assert "retrained (= pretrained)" in labels


# -- detectors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["fcos", "retinanet", "faster-rcnn"])
def test_torchvision_detectors_train_and_detect_on_any_channel_count(architecture):
    config = DetectorConfig(architecture=architecture, **TINY_DETECTOR)
    torch.manual_seed(0)
    model = build_detector(config, in_channels=12)
    images = [torch.rand(12, 16, 16), torch.rand(12, 16, 16)]
    losses = model.losses(images, [torch.tensor([[2.0, 2.0, 8.0, 9.0]]), torch.zeros(0, 4)])
    loss = sum(losses.values())
    assert torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    detections = detect(model, torch.stack(images))
    assert len(detections) == 2
    for d in detections:
        assert d["boxes"].shape[1:] == (4,) and d["boxes"].shape[0] == d["scores"].shape[0]
        if d[
            "boxes"
        ].numel():  # boxes come back in measurement coordinates (16×16), not the detector's 64×64
            assert float(d["boxes"].max()) <= 16.0 + 1e-4


def test_detector_weights_from_a_local_file(tmp_path):
    config = DetectorConfig(**TINY_DETECTOR)
    torch.manual_seed(1)
    source = build_detector(config, 3)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pt")
    torch.manual_seed(2)
    loaded = build_detector(DetectorConfig(**TINY_DETECTOR, weights=str(tmp_path / "w.pt")), 3)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="shares no tensor"):
        build_detector(DetectorConfig(**TINY_DETECTOR, weights=str(tmp_path / "other.pt")), 3)
    with pytest.raises(ConfigError, match="does not exist"):
        build_detector(DetectorConfig(**TINY_DETECTOR, weights=str(tmp_path / "missing.pt")), 3)


def test_training_is_seeded_checkpointed_and_resumes(scenes_data, tmp_path):
    scenes = scenes_data.scenes
    sets = {
        split: DetectionSet.from_clean_boxes(
            scenes[split].images[:4].float() / 255, face_boxes(scenes[split])[:4], (128, 128)
        )
        for split in ("train", "val")
    }
    config = DetectorConfig(
        **{**TINY_DETECTOR, "training": {"epochs": 2, "batch_size": 2, "eval_batch_size": 8}}
    )

    def run(workdir):
        torch.manual_seed(0)
        model = build_detector(config, 3)
        return train_detector(
            model,
            sets["train"],
            sets["val"],
            config.training,
            RunContext(seed=0, workdir=workdir),
            "det",
        )

    first, history = run(tmp_path / "a")
    assert history.steps == 4 and len(history.epochs) == 2 and 0.0 <= history.best_val_ap50 <= 1.0
    again, resumed = run(tmp_path / "a")  # the finished checkpoint: nothing is retrained
    assert resumed.resumed_from_epoch == 2 and resumed.steps == 4
    fresh, _ = run(tmp_path / "b")  # same seed, new folder: the same weights
    for key, value in first.state_dict().items():
        assert torch.equal(again.state_dict()[key], value) and torch.equal(
            fresh.state_dict()[key], value
        ), key


def test_a_step_budget_ends_training_within_an_epoch(scenes_data):
    """max_steps 3 with two batches of two scenes per epoch: epoch 2 stops after its first
    batch, the one-cycle schedule has reached its end, and the history counts 3 steps."""
    scenes = scenes_data.scenes
    sets = {
        split: DetectionSet.from_clean_boxes(
            scenes[split].images[:4].float() / 255, face_boxes(scenes[split])[:4], (128, 128)
        )
        for split in ("train", "val")
    }
    training = {"epochs": 3, "batch_size": 2, "max_steps": 3, "lr": 1e-3, "eval_batch_size": 8}
    config = DetectorConfig(**{**TINY_DETECTOR, "training": training})
    torch.manual_seed(0)
    model = build_detector(config, 3)
    _, history = train_detector(
        model, sets["train"], sets["val"], config.training, RunContext(seed=0), "det"
    )
    assert history.steps == 3 and [record["epoch"] for record in history.epochs] == [1, 2]
    # the one-cycle schedule spans the 3 steps: after 2 it is at its end, lr / (25 · 1e3)
    assert history.epochs[0]["lr"] == pytest.approx(1e-3 / 25 / 1e3)


def test_light_detector_keeps_its_checkpoint_keys_and_checks_channels():
    model = build_detector(DetectorConfig(**TINY_DETECTOR), 3)
    keys = set(model.state_dict())
    # weights files and cached detectors of the light backbone are stored under these names
    assert {
        "input_mean",
        "input_std",
        "model.backbone.stem.0.weight",
        "model.backbone.stages.0.body.3.weight",
        "model.backbone.stages.2.shortcut.1.running_mean",
    } <= keys
    with pytest.raises(InputError, match="built for 3-channel measurements"):
        model.losses([torch.rand(12, 16, 16)], [torch.zeros(0, 4)])


# -- the task and the attack -----------------------------------------------------------------------
def test_face_detection_task_on_a_low_resolution_camera(scenes_data):
    task = privbench.get_task("face-detection", detector=TINY_DETECTOR)
    result = task.evaluate(_inputs(scenes_data, "low-res", size_px=16), RunContext(seed=0))
    assert set(result.metrics) == set(task.metrics) == {"ap", "ap50", "ap75", "roc_tpr"}
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    assert result.chance == 0.0
    assert result.details["measurement_scale_xy"] == [0.125, 0.125]
    assert len(result.details["precision_recall"]["interpolated_precision"]) == 101
    assert result.details["discrete_roc"]["faces"] == sum(
        int(b.shape[0]) for b in face_boxes(scenes_data.scenes.test)
    )


def test_attack_protocols_share_the_clean_detector(scenes_data, tmp_path, monkeypatch):
    import privbench.attacks.face_detection_attack as attack_module

    import privbench.detection.training as detection_training

    trainings = []
    original = detection_training.train_detector
    monkeypatch.setattr(
        detection_training,
        "train_detector",
        lambda *a, **k: trainings.append(a[5]) or original(*a, **k),
    )
    cache = ArtifactCache(tmp_path / "cache")
    results = {}
    for protocol in attack_module.PROTOCOLS:
        attack = privbench.get_attack(
            "face-detection-attack", protocol=protocol, detector=TINY_DETECTOR
        )
        assert attack.protocol_name == protocol
        ctx = RunContext(seed=0, cache=cache, workdir=tmp_path / protocol)
        results[protocol] = attack.evaluate(_inputs(scenes_data, "low-res", size_px=16), ctx)
    # the clean detector was trained once (clean-reference), then reused by pretrained and finetuned
    assert trainings == [
        "face-detection-clean",
        "face-detection-retrained",
        "face-detection-finetuned",
    ]
    for protocol, result in results.items():
        assert set(result.metrics) == {"ap", "ap50", "ap75", "roc_tpr"}
        assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
        assert result.details["protocol"] == protocol
        assert "precision_recall" in result.details and "discrete_roc" in result.details
    assert results["clean-reference"].chance is None  # a reference, never part of the privacy score
    assert all(results[p].chance == 0.0 for p in ("pretrained", "retrained", "finetuned"))
    assert results["finetuned"].details["training"]["from_cache"] is False
    assert results["pretrained"].details["clean_training"]["from_cache"] is True


def test_pretrained_protocol_rejects_another_channel_count(scenes_data):
    attack = privbench.get_attack(
        "face-detection-attack", protocol="pretrained", detector=TINY_DETECTOR
    )
    with pytest.raises(ConfigError, match="channels.*retrained"):
        attack.evaluate(_inputs(scenes_data, "canopic-conv4-mp-q"), RunContext(seed=0))


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, message",
    [
        ({"protocol": "offtheshelf"}, "protocol"),
        ({"detector": {"backend": "mmdet"}}, "needs `config`"),
        ({"detector": {"config": "faster-rcnn_r50_fpn_1x_coco"}}, "for the mmdet backend"),
        ({"detector": {"architecture": "yolo"}}, "architecture"),
        ({"detector": {"fpn_channels": 48}}, "multiple of 32"),
        ({"detector": {"anchors": [8]}}, "unknown field 'detector.anchors'"),
        ({"finetune_epochs": 0}, "finetune_epochs"),
    ],
)
def test_bad_attack_config_is_a_clear_error(config, message):
    with pytest.raises(ConfigError, match=message):
        privbench.get_attack("face-detection-attack", **config)


def test_scenes_without_faces_or_without_scenes_are_data_errors(scenes_data):
    task = privbench.get_task("face-detection", detector=TINY_DETECTOR, category="person")
    with pytest.raises(DataError, match="no box category 'person'"):
        task.evaluate(_inputs(scenes_data, "identity"), RunContext(seed=0))
    crops_only = BenchmarkData(name="crops", fingerprint="x", identities=scenes_data.identities)
    with pytest.raises(DataError, match="no part 'scenes'"):
        privbench.get_task("face-detection").evaluate(
            _inputs(crops_only, "identity"), RunContext(seed=0)
        )
    empty = Scenes(
        torch.zeros(2, 3, 64, 64, dtype=torch.uint8),
        [torch.zeros(0, 4)] * 2,
        [torch.zeros(0, dtype=torch.long)] * 2,
        [[], []],
        ["face"],
    )
    no_faces = BenchmarkData(name="empty", fingerprint="y", scenes=SceneSplits(empty, empty, empty))
    with pytest.raises(DataError, match="no 'face' box"):
        privbench.get_task("face-detection", detector=TINY_DETECTOR).evaluate(
            _inputs(no_faces, "identity"), RunContext(seed=0)
        )


# -- the mmdet backend -----------------------------------------------------------------------------
@pytest.mark.skipif(
    mmdet_available(), reason="mmdet is installed: the backend is tested for real below"
)
def test_mmdet_backend_without_the_extra_names_it():
    with pytest.raises(ConfigError, match=r"privbench\[mmdet\]"):
        build_detector(DetectorConfig(backend="mmdet", config="faster-rcnn_r50_fpn_1x_coco"), 3)
    assert "build_mmcv.sh" in MMDET_EXTRA_HINT


@pytest.mark.skipif(
    not mmdet_available(),
    reason=MMDET_MISSING,
)
def test_mmdet_faster_rcnn_trains_and_detects_on_measurements():
    config = DetectorConfig(
        backend="mmdet",
        config="faster-rcnn_r50_fpn_1x_coco",
        input_size=64,
        training={"max_steps": 1},
    )
    torch.manual_seed(0)
    model = build_detector(config, in_channels=3)
    images = [torch.rand(3, 32, 32), torch.rand(3, 32, 32)]
    model.set_standardization(torch.full((3,), 0.5), torch.full((3,), 0.25))
    model.train()
    losses = model.losses(
        images, [torch.tensor([[4.0, 4.0, 16.0, 18.0]]), torch.tensor([[10.0, 8.0, 30.0, 30.0]])]
    )
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    detections = detect(model, torch.stack(images), device="cpu")
    assert len(detections) == 2
    for d in detections:
        assert d["boxes"].shape[0] == d["scores"].shape[0]
        if d["boxes"].numel():
            assert float(d["boxes"].max()) <= 32.0 + 1e-3  # back in measurement coordinates


@pytest.mark.skipif(
    not mmdet_available(),
    reason=MMDET_MISSING,
)
def test_mmdet_detector_in_the_face_detection_task_on_a_low_resolution_camera(scenes_data):
    """The whole task with an mmdet config as the detector: training loop, box mapping, scoring."""
    detector = {
        "backend": "mmdet",
        "config": "retinanet_r18_fpn_1x_coco",
        "input_size": 64,
        "training": {"epochs": 1, "batch_size": 2, "max_steps": 2, "eval_batch_size": 8},
    }
    task = privbench.get_task("face-detection", detector=detector)
    result = task.evaluate(_inputs(scenes_data, "low-res", size_px=16), RunContext(seed=0))
    assert all(0.0 <= result.metrics[k] <= 1.0 for k in ("ap", "ap50", "ap75", "roc_tpr"))
    assert result.details["measurement_scale_xy"] == [0.125, 0.125]
    assert result.details["training"]["steps"] == 2


def test_leaderboard_page_draws_each_encoders_detection_protocols_together(tmp_path):
    import pandas as pd

    from privbench.report.leaderboard import render_outputs

    curve = {
        "precision_recall": precision_recall(HAND_PREDICTIONS, HAND_TARGETS),
        "discrete_roc": discrete_roc(HAND_PREDICTIONS, HAND_TARGETS),
    }

    def row(label, evaluation, role, protocol, value, chance, details):
        return {
            "benchmark": "b",
            "benchmark_version": "1",
            "dataset_fingerprint": "f",
            "dataset": "d",
            "encoder": label,
            "encoder_label": label,
            "encoder_config_hash": label,
            "encoder_weights_hash": "w",
            "alpha": None,
            "evaluation": evaluation,
            "evaluation_version": "1",
            "evaluation_config": {},
            "role": role,
            "protocol": protocol,
            "seed": 0,
            "metrics": {"ap50": value},
            "headline_metric": "ap50",
            "headline_value": value,
            "higher_is_better": True,
            "chance": chance,
            "preset": "quick",
            "study": None,
            "trial": None,
            "details": details,
        }

    rows = []
    for label, ap50 in (("identity", 0.9), ("gaussian-blur", 0.5)):
        rows.append(row(label, "face-detection", "utility", None, ap50, 0.0, {}))
        for protocol in ("clean-reference", "pretrained", "retrained", "finetuned"):
            rows.append(
                row(
                    label,
                    "face-detection-attack",
                    "privacy",
                    protocol,
                    ap50,
                    None if protocol == "clean-reference" else 0.0,
                    curve,
                )
            )
    render_outputs(pd.DataFrame(rows), tmp_path)
    page = (tmp_path / "index.html").read_text()
    for label in ("identity", "gaussian-blur"):
        assert (tmp_path / "detection" / f"{label}.png").stat().st_size > 1000
        assert f"detection/{label}.png" in page
