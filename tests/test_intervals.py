"""Confidence intervals of the leaderboard against independent references: the binomial
normal approximation, scipy's Student t, pycocotools' AP on duplicated images."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from support.detections import random_detections
from support.result_rows import result_row

from privbench.api.items import ItemScores
from privbench.runs.intervals import BOOTSTRAP, t_interval
from privbench.runs.scores import leaderboard_table


def _row(encoder, evaluation, role, items, chance, seed=0):
    return result_row(encoder, evaluation, role, None, chance, seed, items=items)


def test_one_seed_bootstrap_matches_the_binomial_interval():
    # 400 probes; the clean attack identifies every one (chance 0), the encoded camera half of
    # them, so privacy = 1 − accuracy: its 95 % interval is 0.5 ± 1.96·√(0.25/400) = ± 0.049.
    n = 400
    encoded = [1.0, 0.0] * (n // 2)
    rows = pd.DataFrame(
        [
            _row("identity", "task", "utility", [1.0] * 300 + [0.0] * 100, 0.5),
            _row("identity", "attack", "privacy", [1.0] * n, 0.0),
            _row("blur", "task", "utility", [1.0] * 300 + [0.0] * 100, 0.5),
            _row("blur", "attack", "privacy", encoded, 0.0),
        ]
    )
    table = leaderboard_table(rows).set_index("encoder")
    half = 1.96 * math.sqrt(0.25 / n)
    assert table.loc["blur", "privacy"] == pytest.approx(0.5)
    assert table.loc["blur", "privacy_lo"] == pytest.approx(0.5 - half, abs=0.01)
    assert table.loc["blur", "privacy_hi"] == pytest.approx(0.5 + half, abs=0.01)
    assert table.loc["blur", "interval"] == BOOTSTRAP
    # paired draws: the same items for the encoder and the clean camera, so a camera scored
    # exactly like the clean one has a zero-width interval
    assert table.loc["blur", "utility_lo"] == table.loc["blur", "utility_hi"] == 1.0
    assert table.loc["identity", "privacy_lo"] == table.loc["identity", "privacy_hi"] == 0.0
    # blur's privacy interval lies above identity's: the ranks are separated
    assert bool(table.loc["blur", "privacy_separated"])


def test_ranks_whose_intervals_overlap_are_not_separated():
    n = 100
    rows = pd.DataFrame(
        [
            _row("identity", "attack", "privacy", [1.0] * n, 0.0),
            _row("a", "attack", "privacy", [1.0] * 48 + [0.0] * 52, 0.0),
            _row("b", "attack", "privacy", [1.0] * 50 + [0.0] * 50, 0.0),
        ]
    )
    table = leaderboard_table(rows)
    assert list(table["encoder"]) == ["a", "b", "identity"]
    assert not bool(table.loc[0, "privacy_separated"])  # 0.52 vs 0.50 at n = 100
    assert bool(table.loc[1, "privacy_separated"])  # 0.50 vs identity's 0


def test_several_seeds_give_a_student_t_interval():
    stats = pytest.importorskip("scipy.stats")
    rows, privacies = [], []
    for seed, hits in enumerate((50, 60, 70)):
        rows.append(_row("identity", "attack", "privacy", [1.0] * 100, 0.0, seed=seed))
        rows.append(
            _row("blur", "attack", "privacy", [1.0] * hits + [0.0] * (100 - hits), 0.0, seed)
        )
        privacies.append(1 - hits / 100)
    table = leaderboard_table(pd.DataFrame(rows)).set_index("encoder")
    low, high = stats.t.interval(0.95, 2, loc=np.mean(privacies), scale=stats.sem(privacies))
    assert table.loc["blur", "privacy_lo"] == pytest.approx(low)
    assert table.loc["blur", "privacy_hi"] == pytest.approx(high)
    assert table.loc["blur", "interval"] == "Student t over 3 seeds"
    assert all(math.isnan(v) for v in t_interval([0.3, float("nan")]))  # one value: none


def test_weighted_ap_equals_pycocotools_on_the_duplicated_images():
    from privbench.detection import coco_ap

    predictions, targets = random_detections(10, seed=4, clutter=3, min_faces=1)
    items = ItemScores.detections(predictions, targets)
    counts = np.array([[1] * 10, [2, 0, 1, 3, 0, 1, 1, 0, 2, 0]])
    resampled = items.resampled(counts)
    assert resampled[0] == pytest.approx(coco_ap(predictions, targets)["ap50"], abs=1e-6)
    drawn = [i for i, c in enumerate(counts[1]) for _ in range(c)]
    duplicated = coco_ap([predictions[i] for i in drawn], [targets[i] for i in drawn])
    assert resampled[1] == pytest.approx(duplicated["ap50"], abs=1e-6)
    assert ItemScores.from_dict(items.to_dict()) == items


def test_ap_parts_without_any_detection_resample_to_zero():
    # a camera through which the detector finds nothing (the paper presets' fixture data)
    targets = [torch.tensor([[10.0, 10.0, 40.0, 40.0]]), torch.zeros(0, 4)]
    predictions = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0)}] * 2
    items = ItemScores.detections(predictions, targets)
    assert items.resampled(np.ones((3, 2))).tolist() == [0.0, 0.0, 0.0]


def test_false_positives_after_the_last_true_positive_change_no_resampled_ap():
    from privbench.api.items import ItemScores

    base = ItemScores("ap", scores=[[0.9, 0.4], [0.8]], hits=[[1, 0], [1]], faces=[2, 1])
    padded = ItemScores(
        "ap",
        scores=[[0.9, 0.4, 0.05, 0.01], [0.8, 0.02]],
        hits=[[1, 0, 0, 0], [1, 0]],
        faces=[2, 1],
    )
    counts = np.random.default_rng(0).integers(0, 3, size=(50, 2)).astype(float)
    assert np.allclose(base.resampled(counts), padded.resampled(counts))
