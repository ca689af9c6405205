import math
import sqlite3

import numpy as np
import pandas as pd
import pytest

import privbench
from privbench.pipeline import run
from privbench.runs.spec import load_spec
from privbench.runs.store import ResultStore


def _run(toy, tmp_path, **kwargs):
    spec = kwargs.pop("spec", None) or toy.toy_spec()
    return run(spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", report=True, **kwargs)


def test_end_to_end_outputs_and_rows(toy, tmp_path):
    report = _run(toy, tmp_path)
    out = tmp_path / "out"
    for name in ("leaderboard.md", "leaderboard.csv", "index.html", "pareto.png", "results.db"):
        assert (out / name).is_file(), name
    assert report.ran == 6 and report.skipped == 0 and not report.failures
    rows = report.results
    assert len(rows) == 6
    assert set(rows["encoder"]) == {"identity", "gaussian-blur", "pixelate"}
    row = rows.iloc[0]
    # The result row contract (docs/architecture.md).
    for column in (
        "benchmark",
        "benchmark_version",
        "dataset",
        "dataset_fingerprint",
        "encoder",
        "encoder_config_hash",
        "encoder_weights_hash",
        "alpha",
        "evaluation",
        "evaluation_version",
        "protocol",
        "seed",
        "metrics",
        "wall_time_s",
        "device",
        "package_versions",
        "git_commit",
        "created_at",
    ):
        assert column in rows.columns, column
    assert row["package_versions"]["torch"]
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.columns[:3]) == ["encoder", "utility", "privacy"]
    assert len(board) == 3
    clean = board[board["encoder"] == "identity"].iloc[0]
    assert clean["utility"] == pytest.approx(1.0) and clean["privacy"] == pytest.approx(0.0)
    html = (out / "index.html").read_text()
    assert "pareto.png" in html and "samples/" in html and "sortable" in html


def test_rerun_recomputes_nothing(toy, tmp_path):
    _run(toy, tmp_path)
    before = dict(toy.CALLS)
    report = _run(toy, tmp_path)
    assert report.ran == 0 and report.skipped == 6
    assert toy.CALLS["evaluate"] == before["evaluate"]
    assert len(report.results) == 6


def test_changing_one_encoder_recomputes_only_its_cells(toy, tmp_path):
    _run(toy, tmp_path)
    spec = toy.toy_spec(
        encoders=["identity", {"name": "gaussian-blur", "config": {"sigma_px": 6}}, "pixelate"]
    )
    before = toy.CALLS["evaluate"]
    report = _run(toy, tmp_path, spec=spec)
    assert report.ran == 2 and report.skipped == 4
    assert toy.CALLS["evaluate"] == before + 2


def test_encoded_data_is_cached_on_disk(toy, tmp_path):
    from privbench.api.cache import ArtifactCache

    _run(toy, tmp_path)
    cache = ArtifactCache(tmp_path / "cache")
    files = sorted((tmp_path / "cache" / "encoded").glob("*.npy"))
    # 3 noise-free encoders × (identities, face_vs_noface) × (train, test) splits that the
    # toy evaluations read, each an on-disk array (memory-mapped by the cells that read it)
    assert len(files) == 12
    assert all(np.load(path, mmap_mode="r").dtype == np.float32 for path in files)
    assert cache.root.exists()


def test_seed_option_and_python_api(toy, tmp_path):
    frame = privbench.run(
        toy.toy_spec(seeds=[0, 1]), out_dir=tmp_path / "o", cache_dir=tmp_path / "c"
    )
    assert isinstance(frame, pd.DataFrame) and sorted(frame["seed"].unique()) == [0, 1]
    single = run(
        toy.toy_spec(seeds=[0, 1]), seed=3, out_dir=tmp_path / "o2", cache_dir=tmp_path / "c"
    )
    assert sorted(single["seed"].unique()) == [3]


def test_encoder_filter(toy, tmp_path):
    frame = run(
        toy.toy_spec(),
        encoders=["identity", "pixelate"],
        out_dir=tmp_path / "o",
        cache_dir=tmp_path / "c",
    )
    assert set(frame["encoder"]) == {"identity", "pixelate"}


def test_store_url_is_honoured(toy, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    run(toy.toy_spec(), store=url, out_dir=tmp_path / "o", cache_dir=tmp_path / "c")
    assert len(ResultStore(url)) == 6
    connection = sqlite3.connect(tmp_path / "shared.db")
    assert connection.execute("select count(distinct cell_key) from results").fetchone()[0] == 6


def test_failed_cell_does_not_lose_other_results(toy, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = toy.ToyAttack.evaluate

    def flaky(self, inputs, ctx):
        calls["n"] += 1
        if inputs.encoder_name == "pixelate":
            raise RuntimeError("boom")
        return original(self, inputs, ctx)

    monkeypatch.setattr(toy.ToyAttack, "evaluate", flaky)
    report = _run(toy, tmp_path)
    assert len(report.failures) == 1 and "boom" in report.failures[0][1]
    assert len(report.results) == 5
    monkeypatch.setattr(toy.ToyAttack, "evaluate", original)
    report = _run(toy, tmp_path)
    assert report.ran == 1 and len(report.results) == 6


def test_builtin_spec_loads_and_resolves_presets():
    spec = load_spec("synthfaces")
    quick = spec.resolve("quick")
    assert quick.dataset.config["preset"] == "quick"
    assert quick.preset == "quick"
    assert math.isfinite(len(quick.encoders))
    # The quick preset shortens the detector's training for the task and for the attack alike,
    # so the attack's `retrained` protocol reuses the task's detector instead of training another.
    task = privbench.get_task(
        "face-detection", **next(t for t in quick.tasks if t.name == "face-detection").config
    )
    for entry in (a for a in quick.attacks if a.name == "face-detection-attack"):
        assert (
            privbench.get_attack(entry.name, **entry.config).config.detector == task.config.detector
        )


def test_bad_components_and_missing_prerequisites_fail_before_any_file_or_data(
    toy, tmp_path, monkeypatch
):
    import privbench.captioning.metrics as caption_metrics
    from privbench.api.errors import ConfigError, PrerequisiteError

    bad = toy.toy_spec(encoders=["identity", {"name": "gaussian-blur", "config": {"sigma_px": -1}}])
    before = toy.CALLS["dataset"]
    with pytest.raises(ConfigError, match="gaussian-blur"):
        _run(toy, tmp_path, spec=bad)
    monkeypatch.setattr(caption_metrics.shutil, "which", lambda name: None)
    needs_java = toy.toy_spec(tasks=["toy-utility", "captioning"])
    with pytest.raises(
        PrerequisiteError, match="Java runtime.*openjdk-17-jre-headless.*captioning"
    ):
        _run(toy, tmp_path, spec=needs_java)
    assert toy.CALLS["dataset"] == before  # no data was built
    assert not (tmp_path / "out").exists()


def test_rows_record_what_changes_a_metric(toy, tmp_path):
    import importlib.metadata
    import shutil
    import subprocess

    row = _run(toy, tmp_path).results.iloc[0]
    versions = row["package_versions"]
    for name in ("torch", "scipy", "pycocotools", "pycocoevalcap", "torchmetrics"):
        assert versions[name] == importlib.metadata.version(name), name
    if shutil.which("java"):
        reported = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
        assert versions["java"].split()[-1] in reported
    assert row["execution"]["cpu"] and int(row["execution"]["cpu_count"]) >= 1


def test_sample_strips_line_up_and_the_titles_agree(toy, tmp_path):
    from PIL import Image

    spec = toy.toy_spec(encoders=["identity", {"name": "low-res", "config": {"size_px": 16}}])
    _run(toy, tmp_path, spec=spec)
    sizes = {Image.open(p).size for p in (tmp_path / "out" / "samples").glob("*.png")}
    assert len(sizes) == 1  # the clean strip and every encoder's: 4 × 64 px + 3 gaps
    html = (tmp_path / "out" / "index.html").read_text()
    # the run's page and `privbench leaderboard` on its store title the section alike
    from privbench.report.leaderboard import render_outputs

    rows = ResultStore(f"sqlite:///{tmp_path / 'out' / 'results.db'}").dataframe()
    render_outputs(rows, tmp_path / "again")
    again = (tmp_path / "again" / "index.html").read_text()
    title = html.split("<h2>", 1)[1].split("</h2>", 1)[0]
    assert title == again.split("<h2>", 1)[1].split("</h2>", 1)[0]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "got NoneType"),
        ([1, 2], "got list"),
        ({"name": "x", 1: 2, "encoders": ["identity"]}, "the key 1 at the top level is a int"),
        (
            {"name": "x", "encoders": [{"name": "identity", "config": {None: 1}}]},
            "encoders\\[0\\].config",
        ),
        (
            {"name": "x", "encoders": ["identity"], "tasks": ["toy-utility"], "seeds": [2**64]},
            "seeds must be integers from 0",
        ),
    ],
)
def test_malformed_specs_are_config_errors(toy, source, message):
    from privbench.api.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_spec(source)
