"""The face-vs-noface task and the face-id attack on small separable synthetic data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import privbench
from privbench.api.errors import ConfigError, DataError
from privbench.api.evaluation import EvalInputs, RunContext
from privbench.data import BenchmarkData, LabeledImages, LabeledSplits

SIZE = 16
FAST = {"training": {"epochs": 8, "batch_size": 16, "patience": None}}
#: One attacker (the zoo's residual net): the protocol tests check protocols, not the zoo.
ONE = {"zoo": ["small-cnn"], **FAST}


def _images(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Class = position of a bright square on a noisy background (random ±1 px jitter per image)."""
    cells = int(num_classes**0.5 + 0.999)
    side = SIZE // cells
    images = torch.rand(labels.numel(), 3, SIZE, SIZE, generator=generator) * 0.45
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, cells)
        dy, dx = torch.randint(-1, 2, (2,), generator=generator).tolist()
        top, left = max(row * side + dy, 0), max(col * side + dx, 0)
        images[index, :, top : top + side, left : left + side] += 0.5
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def _split(num_classes: int, per_class: int, seed: int, names: list[str]) -> LabeledImages:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return LabeledImages(_images(labels, num_classes, generator), labels, names)


def _faces(per_class: int, seed: int) -> LabeledImages:
    """Face (1) = a bright blob in the centre; no face (0) = uniform noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1]).repeat(per_class)
    images = torch.rand(labels.numel(), 3, SIZE, SIZE, generator=generator) * 0.6
    images[labels == 1, :, 5:11, 5:11] += 0.4
    return LabeledImages(
        (images.clamp(0, 1) * 255).round().to(torch.uint8), labels, ["no face", "face"]
    )


def squares_data() -> BenchmarkData:
    """6 identities × 24 training crops: with 12, the clean-trained small-cnn scored 0.44-0.86 on
    the clean test crops depending on the seed; with 24, 0.94-1.0 (seeds 0-3)."""
    identities = [f"id{i}" for i in range(6)]
    return BenchmarkData(
        name="squares",
        fingerprint="test-squares",
        identities=LabeledSplits(
            *(_split(6, n, seed, identities) for n, seed in ((24, 0), (4, 1), (6, 2)))
        ),
        face_vs_noface=LabeledSplits(_faces(24, 3), _faces(8, 4), _faces(12, 5)),
    )


@pytest.fixture(scope="module")
def data() -> BenchmarkData:
    return squares_data()


def inputs_through(data: BenchmarkData, transform) -> EvalInputs:
    """EvalInputs whose encoder is ``transform`` applied to the clean float images."""
    return EvalInputs(
        data,
        lambda part, split: transform(data.part(part)[split].images.float() / 255.0),
        "test-encoder",
    )


def identity(x):
    return x


def blur(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def pooled(x):
    return F.avg_pool2d(x, 2)


def test_face_vs_noface_beats_chance(data, tmp_path):
    task = privbench.get_task("face-vs-noface", **FAST)
    assert (
        task.role == "utility"
        and task.headline == "accuracy"
        and task.requires == ("face_vs_noface",)
    )
    result = task.evaluate(inputs_through(data, identity), RunContext(workdir=tmp_path))
    assert set(result.metrics) == {"accuracy", "auroc"}
    assert 0.0 <= result.metrics["accuracy"] <= 1.0 and 0.0 <= result.metrics["auroc"] <= 1.0
    assert result.chance == pytest.approx(0.5)  # balanced test split: majority class = half
    assert result.metrics["accuracy"] >= 0.9 and result.metrics["auroc"] >= 0.95
    assert result.details["training"]["epochs_run"] == 8


def test_face_vs_noface_chance_is_majority_of_test_split():
    from privbench.tasks.face_vs_noface import binary_scores, majority_chance

    labels = torch.tensor([1, 1, 1, 0])
    assert majority_chance(labels) == pytest.approx(0.75)
    logits = torch.tensor(
        [[0.0, 2.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]]
    )  # face scores 2, 1, -1, -1
    scores = binary_scores(logits, labels)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["auroc"] == pytest.approx((2 + 0.5) / 3)  # one face ties the non-face


def test_face_id_retrained_beats_chance(data, tmp_path):
    attack = privbench.get_attack("face-id", **ONE)
    assert (
        attack.role == "privacy"
        and attack.headline == "top1"
        and attack.protocol_name == "retrained"
    )
    result = attack.evaluate(inputs_through(data, blur), RunContext(workdir=tmp_path))
    assert set(result.metrics) == {"top1", "top5", "top1_small-cnn", "top5_small-cnn"}
    assert result.metrics["top1"] == result.metrics["top1_small-cnn"]
    assert result.chance == pytest.approx(1 / 6)
    assert 0.0 <= result.metrics["top1"] <= result.metrics["top5"] <= 1.0
    assert result.metrics["top1"] >= 0.8


def test_face_id_scores_are_top_k_fractions():
    from privbench.attacks.face_id import identification_scores

    labels = torch.tensor([0, 1, 2])
    logits = torch.tensor(
        [[9.0, 1, 2, 3, 4, 5, 6], [0.0, 1, 2, 3, 4, 5, 6], [0.0, 1, 5, 3, 4, 6, 2]]
    )
    scores = identification_scores(logits, labels, 7)
    assert scores["top1"] == pytest.approx(1 / 3)  # only sample 0 is right at rank 1
    assert scores["top5"] == pytest.approx(
        2 / 3
    )  # sample 2's label ranks 2nd; sample 1's ranks 6th of 7


@pytest.mark.parametrize("protocol", ["pretrained", "finetuned"])
def test_face_id_clean_protocols(data, tmp_path, protocol):
    attack = privbench.get_attack("face-id", protocol=protocol, **ONE)
    assert attack.protocol_name == protocol
    result = attack.evaluate(inputs_through(data, blur), RunContext(workdir=tmp_path))
    member = result.details["zoo"]["small-cnn"]
    assert result.details["protocol"] == protocol
    assert member["clean_test_top1"] >= 0.8
    assert 0.0 <= result.metrics["top1"] <= result.metrics["top5"] <= 1.0
    assert result.metrics["top1"] > result.chance
    if protocol == "finetuned":
        assert member["training"]["epochs_run"] == 8
    assert (tmp_path / "face-id-clean-small-cnn.pt").is_file()


@pytest.mark.parametrize("protocol", ["pretrained", "finetuned"])
def test_face_id_clean_protocols_reject_shape_changing_encoders(data, tmp_path, protocol):
    attack = privbench.get_attack("face-id", protocol=protocol, **ONE)
    with pytest.raises(ConfigError) as error:
        attack.evaluate(inputs_through(data, pooled), RunContext(workdir=tmp_path))
    message = str(error.value)
    assert "(3, 16, 16)" in message and "(3, 8, 8)" in message and "retrained" in message
    assert not any(tmp_path.glob("face-id-*.pt"))  # rejected before any training


def test_configs_are_validated():
    with pytest.raises(ConfigError, match="protocol"):
        privbench.get_attack("face-id", protocol="offtheshelf")
    with pytest.raises(ConfigError, match="small-cnn"):
        privbench.get_task("face-vs-noface", model="alexnet")
    with pytest.raises(ConfigError, match="training.batch_size"):
        privbench.get_task("face-vs-noface", training={"batch_size": 1})
    zoo = privbench.get_attack("face-id").config.zoo
    assert (
        len({member.model for member in zoo}) >= 3
    )  # the default zoo: three architecture families
    assert [m.model for m in privbench.get_attack("face-id", model="resnet18").config.zoo] == [
        "resnet18"
    ]
    assert (
        privbench.get_attack(
            "face-id", zoo=["googlenet", {"model": "mobilenet", "width_multiplier": 0.5}]
        )
        .config.zoo[1]
        .width_multiplier
        == 0.5
    )
    with pytest.raises(ConfigError, match="once"):
        privbench.get_attack("face-id", zoo=["resnet18", "resnet18"])
    with pytest.raises(ConfigError, match="zoo.0.model"):
        privbench.get_attack("face-id", zoo=["alexnet"])
    with pytest.raises(ConfigError, match="not both"):
        privbench.get_attack("face-id", model="resnet18", zoo=["googlenet"])


def test_face_vs_noface_rejects_a_multiclass_part(data):
    broken = BenchmarkData(name="b", fingerprint="b", face_vs_noface=data.identities)
    with pytest.raises(DataError, match="0 = no face, 1 = face"):
        privbench.get_task("face-vs-noface", **FAST).evaluate(
            inputs_through(broken, identity), RunContext()
        )


def test_runner_rows_carry_the_metrics(toy, tmp_path):
    spec = toy.toy_spec(
        encoders=["identity"],
        tasks=[{"name": "face-vs-noface", "config": {"training": {"epochs": 2}}}],
        attacks=[
            {
                "name": "face-id",
                "config": {
                    "zoo": ["small-cnn", {"model": "mobilenet", "width_multiplier": 0.125}],
                    "training": {"epochs": 2},
                },
            }
        ],
    )
    report = privbench.run(
        spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", report=True, render=False
    )
    assert not report.failures
    rows = report.results.set_index("evaluation")
    assert set(rows.loc["face-id", "metrics"]) == {
        "top1",
        "top5",
        "top1_small-cnn",
        "top5_small-cnn",
        "top1_mobilenet",
        "top5_mobilenet",
    }
    assert rows.loc["face-id", "metrics"]["top1"] == max(
        rows.loc["face-id", "metrics"][f"top1_{m}"] for m in ("small-cnn", "mobilenet")
    )
    assert set(rows.loc["face-vs-noface", "metrics"]) == {"accuracy", "auroc"}
    assert rows.loc["face-id", "protocol"] == "retrained"
    assert rows.loc["face-id", "chance"] == pytest.approx(1 / 4)
