"""Training curves: kept per cell, flagged when still improving, on the page and in TensorBoard
event files read back with TensorBoard's own reader (issue 17)."""

import math

import pandas as pd
import pytest

from privbench.nn.epochs import training_curve
from privbench.nn.fit import FitHistory
from privbench.pipeline import run


def test_a_curve_is_still_improving_only_when_its_last_full_epoch_was_its_best():
    records = [{"epoch": e, "loss": 1.0 / e, "val_accuracy": 0.1 * e} for e in (1, 2, 3)]
    improving = training_curve("m", FitHistory(epochs=records, best_epoch=3))
    assert improving["still_improving"] and improving["epochs"] == records
    assert not training_curve("m", FitHistory(epochs=records, best_epoch=2))["still_improving"]
    stopped = FitHistory(epochs=records, best_epoch=3, stopped_early=True)
    assert not training_curve("m", stopped)["still_improving"]
    assert not training_curve("m", FitHistory(epochs=records[:1], best_epoch=1))["still_improving"]
    nan = training_curve("m", FitHistory(epochs=[{"epoch": 1, "loss": math.nan}], best_epoch=0))
    assert nan["epochs"] == [{"epoch": 1, "loss": None}]  # JSON and PostgreSQL have no NaN


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from support import toy_components as toy

    root = tmp_path_factory.mktemp("curves")
    face_id = {"name": "face-id", "config": {"zoo": ["small-cnn"], "training": {"epochs": 3}}}
    spec = toy.toy_spec(encoders=["identity", "pixelate"], attacks=["toy-attack", face_id])
    report = run(spec, out_dir=root / "out", cache_dir=root / "cache", report=True)
    return root / "out", report.results


def test_every_trained_model_of_a_cell_keeps_its_curve(trained_run):
    _, rows = trained_run
    face_id = rows[rows["evaluation"] == "face-id"]
    assert len(face_id) == 2
    for details in face_id["details"]:
        curves = details["curves"]
        assert curves and all(len(curve["epochs"]) == 3 for curve in curves)
        assert all(1 <= curve["best_epoch"] <= 3 for curve in curves)
        assert all("val_accuracy" in record for record in curves[0]["epochs"])
    toy_rows = rows[rows["evaluation"] == "toy-attack"]
    assert all("curves" not in details for details in toy_rows["details"])  # nothing trained


def test_the_page_and_the_table_show_the_curves_and_flag_unconverged_attackers(trained_run):
    out, rows = trained_run
    html = (out / "index.html").read_text()
    assert "Training curves" in html and html.count("<polyline") >= 2
    board = pd.read_csv(out / "leaderboard.csv")
    assert "still_improving" in board.columns
    flagged = {
        label
        for label, details, evaluation in zip(
            rows["encoder_label"], rows["details"], rows["evaluation"]
        )
        if evaluation == "face-id" and any(c["still_improving"] for c in details["curves"])
    }
    for _, row in board.iterrows():
        expected = "face-id" if row["encoder"] in flagged else None
        assert (None if pd.isna(row["still_improving"]) else row["still_improving"]) == expected
    improving = sum(
        curve["still_improving"]
        for details in rows["details"]
        for curve in details.get("curves", [])
    )
    assert html.count("⚠ still improving</span></td>") == improving


def test_tensorboard_reads_the_event_files(trained_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, rows = trained_run
    runs = sorted(p for p in (out / "curves").glob("*/face-id*/*") if p.is_dir())
    assert len(runs) >= 2
    accumulator = EventAccumulator(str(runs[0]))
    accumulator.Reload()
    assert "val_accuracy" in accumulator.Tags()["scalars"]
    events = accumulator.Scalars("val_accuracy")
    assert [event.step for event in events] == [1, 2, 3]
    label = runs[0].parts[-3]
    details = rows[(rows["encoder_label"] == label) & (rows["evaluation"] == "face-id")].iloc[0]
    curve = details["details"]["curves"][int(runs[0].name.split("-")[0])]
    expected = [record["val_accuracy"] for record in curve["epochs"]]
    assert [event.value for event in events] == pytest.approx(expected)
