"""The paper presets (``canopic-paper``, ``2psc-paper``): data paths, composite data, reported rows.

The presets read several real datasets at once through the composite dataset; here they run end
to end on tiny copies written in the published formats (tests/support/dataset_fixtures.py), with
the presets' own ``smoke`` budgets shrunk further to the fixtures' size. The papers' reported
numbers must appear beside the measured rows and never in the ranking.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
import yaml
from support import dataset_fixtures as fx

from privbench.api.adapter import load_dataset
from privbench.api.cache import ArtifactCache
from privbench.api.config import stable_hash
from privbench.api.errors import ConfigError, DataError
from privbench.api.registry import DESIGNERS, ENCODERS
from privbench.cli import main
from privbench.data.adapters.composite import CompositeData
from privbench.data.paths import MissingDataError, expected_layout, parse_data_option
from privbench.pipeline import run
from privbench.report.reported import comparison_table, reported_rows, reported_tables
from privbench.runs.runner import Runner
from privbench.runs.scores import leaderboard_table
from privbench.runs.spec import BUILTIN_DIR, deep_merge, load_spec, require_data_paths
from privbench.runs.store import ResultStore

CANOPIC_ALL_PATHS = {"vggface2", "imagenet", "widerface", "fddb"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The fixture-sized models are far too small to gain from threads; on a loaded 2-core machine
    two threads per process made one detector cell ~25× slower (spin-waiting), so run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out + captured.err


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("paper-data")
    fx.write_vggface2(
        base / "vggface2",
        {f"n00000{i}": 6 for i in range(1, 4)},  # the evaluation identities (VGGFace2 test set)
        {f"n00001{i}": 6 for i in range(1, 4)},  # the design identities (VGGFace2 train set)
    )
    fx.write_imagenet(base / "imagenet", ["n01440764", "n01443537", "n01484850"], 4, 12)
    fx.write_widerface(base / "widerface", train_images=10, val_images=4)
    fx.write_fddb(base / "fddb", {1: 3, 2: 2})
    fx.write_coco(
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
    )
    return {
        name: str(base / name) for name in ("vggface2", "imagenet", "widerface", "fddb", "coco")
    }


def _builtin(name: str) -> dict:
    return yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text())


def _with_fixture_preset(raw: dict, sizes: dict) -> dict:
    """The spec with a ``fixture`` preset: its ``smoke`` preset shrunk to the fixtures' size."""
    raw = copy.deepcopy(raw)
    raw["presets"]["fixture"] = deep_merge(raw["presets"]["smoke"], sizes)
    return raw


CANOPIC_FIXTURE = {
    "dataset": {
        "sources": {
            "faces": {
                "config": {
                    "n_identities": 3,
                    "test_per_identity": 2,
                    "val_per_identity": 2,
                    "max_train_per_identity": 2,
                    "face_vs_noface_train_faces": 6,
                    "nonfaces": {"train_images": 6, "val_images": 2, "test_images": 3},
                }
            },
            "design": {
                "config": {
                    "n_identities": 3,
                    "test_per_identity": 2,
                    "val_per_identity": 2,
                    "max_train_per_identity": 2,
                    "nonfaces": {"train_images": 6, "val_images": 2, "test_images": 3},
                }
            },
            "wider": {"config": {"image_size": 96, "val_fraction": 0.3}},
            "fddb": {"config": {"image_size": 96, "test_folds": [1, 2]}},
        }
    },
    "designers": {"adversarial": {"max_train_images": 16, "batch_size": 8}},
    "evaluations": {
        "face-vs-noface": {"training": {"batch_size": 8}},
        "face-id": {"training": {"batch_size": 8}},
        "face-detection": {
            "detector": {
                "input_size": 64,
                "widths": [8, 8, 16, 16],
                "fpn_channels": 32,
                "training": {"batch_size": 4, "max_steps": 2},
            }
        },
    },
}

TWOPSC_FIXTURE = {
    "dataset": {
        "sources": {
            "coco": {"config": {"image_size": 64}},
            "wider": {"config": {"image_size": 64, "val_fraction": 0.3, "max_test_images": 4}},
        }
    },
    "designers": {
        "end-to-end": {
            "batch_size": 4,
            "min_word_count": 1,
            "caption_model": {
                "base_width": 8,
                "embed_dim": 16,
                "attention_dim": 16,
                "hidden_dim": 16,
            },
        }
    },
    "evaluations": {
        "captioning": {
            "min_word_count": 1,
            "beam_size": 2,
            "meteor": False,
            "spice": False,
            "model": {"base_width": 8, "embed_dim": 16, "attention_dim": 16, "hidden_dim": 16},
            "training": {"batch_size": 4},
        },
        "face-detection-attack": {
            "detector": {
                "input_size": 64,
                "widths": [8, 8, 16, 16],
                "fpn_channels": 32,
                "training": {"batch_size": 4, "max_steps": 2},
            }
        },
    },
}


# -- data paths ----------------------------------------------------------------------------
def test_run_without_data_lists_every_needed_path_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    code, text = _cli(
        [
            "run",
            "--benchmark",
            "canopic-paper",
            "--data",
            f"vggface2={tmp_path / 'nowhere'}",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2
    assert "still needs 4 path(s)" in text
    assert "vggface2 — VGGFace2 root folder" in text and "does not exist" in text
    for name in ("imagenet", "widerface", "fddb"):
        assert f"pass --data {name}=PATH" in text
        assert f"privbench data layout {name}" in text
    # the adapters' own layouts, and where the spec uses each path
    assert (
        "wider_face_split/wider_face_train_bbx_gt.txt" in text
        and "FDDB-folds/FDDB-fold-01-ellipseList.txt" in text
    )
    assert "dataset.config.sources.faces.config.nonfaces.path" in text
    assert "encoders[canopic-conv1-mp-q α=1].designer" not in text  # designers read no path here
    assert (
        "--data vggface2=/path/to/vggface2,imagenet=/path/to/imagenet,"
        "widerface=/path/to/widerface,fddb=/path/to/fddb" in text
    )
    assert not out.exists()  # nothing was written: the check comes first


def test_tune_takes_the_data_paths_of_a_paper_benchmark(roots, tmp_path, capsys):
    """``privbench tune --data NAME=PATH`` fills the benchmark's paths as ``run --data`` does:
    without them it lists what is missing before any work; with them the study's data are the
    real folders (here: the fixtures) and the clean reference cells run on them."""
    argv = ["tune", "--encoder", "canopic-conv1-mp-q", "--benchmark", "canopic-paper"]
    code, text = _cli(
        [*argv, "--data", f"vggface2={tmp_path / 'nowhere'}", "--out", str(tmp_path / "x")],
        capsys,
    )
    assert code == 2 and "still needs 4 path(s)" in text and "pass --data fddb=PATH" in text
    from privbench.runs.tuning import TuneSettings, tune

    settings = TuneSettings(
        encoder="canopic-conv1-mp-q",
        task="face-vs-noface",
        attack="face-id",
        trials=1,
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        benchmark=_with_fixture_preset(_builtin("canopic-paper"), CANOPIC_FIXTURE),
        preset="fixture",
        data_paths={name: roots[name] for name in CANOPIC_ALL_PATHS},
        designer_config={"cycles": 1, "step1_epochs": 1, "step2_epochs": 1},
        prune_below=None,
    )
    tune(settings, out_dir=tmp_path / "tuned", cache_dir=tmp_path / "cache")
    rows = ResultStore(f"sqlite:///{tmp_path / 'tuned' / 'results.db'}").dataframe()
    assert set(rows["dataset"]) == {"vggface2+imagenet+widerface+fddb"}
    assert {"identity", "canopic-conv1-mp-q"} <= set(rows["encoder"])


def test_partial_data_names_only_what_is_missing(roots, tmp_path):
    paths = {name: roots[name] for name in ("vggface2", "imagenet", "fddb")}
    with pytest.raises(MissingDataError) as info:
        run("canopic-paper", data_paths=paths, out_dir=tmp_path / "out")
    message = str(info.value)
    assert "still needs 1 path(s)" in message and "widerface — " in message
    assert "vggface2 — " not in message and "fddb — " not in message
    # a file where a dataset folder is expected
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    with pytest.raises(MissingDataError, match="is not a folder"):
        run(
            "canopic-paper",
            data_paths={**paths, "widerface": str(not_a_folder)},
            out_dir=tmp_path / "out",
        )


def test_2psc_needs_the_resnet_weights_file_unless_the_preset_does_not_use_them(
    roots, tmp_path, capsys
):
    with pytest.raises(MissingDataError) as info:
        run(
            "2psc-paper",
            data_paths={"coco": roots["coco"], "widerface": roots["widerface"]},
            out_dir=tmp_path / "out",
        )
    message = str(info.value)
    assert "resnet101-imagenet — a torchvision ResNet-101 ImageNet state_dict file" in message
    assert "tasks[captioning].config.model.imagenet_weights" in message
    assert "encoders[zernike-lens α=1].designer.config.caption_model.imagenet_weights" in message
    assert expected_layout("resnet101-imagenet") is None and "expected layout" not in message
    code, text = _cli(
        ["run", "--benchmark", "2psc-paper", "--preset", "smoke", "--out", str(tmp_path / "out")],
        capsys,
    )
    assert (
        code == 2 and "still needs 2 path(s)" in text and "resnet101-imagenet" not in text
    )  # smoke uses no weights
    assert (
        "privbench run --benchmark 2psc-paper --preset smoke --data "
        "coco=/path/to/coco,widerface=/path/to/widerface" in text
    )
    code, text = _cli(["run", "--benchmark", "2psc-paper", "--out", str(tmp_path / "out")], capsys)
    assert (
        "tasks[captioning].config.model.imagenet_weights" in text
    )  # the CLI prints the brackets verbatim


def test_data_option_parsing():
    assert parse_data_option(["vggface2=/a,imagenet=/b", "fddb=/c"]) == {
        "vggface2": "/a",
        "imagenet": "/b",
        "fddb": "/c",
    }
    for bad in (["vggface2"], ["=/a"], ["a b=/x"]):
        with pytest.raises(DataError, match="NAME=PATH"):
            parse_data_option(bad)
    with pytest.raises(DataError, match="two paths"):
        parse_data_option(["fddb=/a", "fddb=/b"])


def test_spec_data_routing_is_validated():
    spec = _builtin("2psc-paper")
    spec["attacks"][0]["data"] = "widr"
    with pytest.raises(ConfigError, match="no source 'widr'; its sources are: coco, wider"):
        load_spec(spec)
    plain = {
        "name": "x",
        "encoders": ["identity"],
        "attacks": [{"name": "face-id", "data": "faces"}],
    }
    with pytest.raises(ConfigError, match="composite"):
        load_spec(plain)


# -- composite data ------------------------------------------------------------------------
def test_composite_assembles_wider_train_and_fddb_test(roots, tmp_path):
    sources = {
        "wider": {"name": "widerface", "config": {"path": roots["widerface"], "image_size": 96}},
        "fddb": {"config": {"path": roots["fddb"], "image_size": 96, "test_folds": [1, 2]}},
    }
    data = load_dataset(
        "composite",
        dict(sources=sources, parts={"scenes": {"train": "wider", "val": "wider", "test": "fddb"}}),
        tmp_path,
    )
    wider = load_dataset("widerface", dict(path=roots["widerface"], image_size=96), tmp_path)
    fddb = load_dataset(
        "fddb", dict(path=roots["fddb"], image_size=96, test_folds=[1, 2]), tmp_path
    )
    assert isinstance(data, CompositeData) and data.name == "widerface+fddb"
    assert data.scenes.train.image_ids == wider.scenes.train.image_ids
    assert data.scenes.test.image_ids == fddb.scenes.test.image_ids
    assert data.source("fddb").fingerprint == fddb.fingerprint
    other = load_dataset("composite", dict(sources=sources, parts={"scenes": "wider"}), tmp_path)
    assert other.fingerprint != data.fingerprint  # the assembly is part of the identity
    with pytest.raises(DataError, match="same image_size"):
        load_dataset(
            "composite",
            dict(
                sources={
                    **sources,
                    "fddb": {"config": {**sources["fddb"]["config"], "image_size": 128}},
                },
                parts={"scenes": {"train": "wider", "val": "wider", "test": "fddb"}},
            ),
            tmp_path,
        )
    with pytest.raises(ConfigError, match="names source 'coco'"):
        load_dataset("composite", dict(sources=sources, parts={"scenes": "coco"}), tmp_path)


# -- reported rows -------------------------------------------------------------------------
def test_reported_rows_are_the_papers_numbers_and_match_the_presets_encoders():
    canopic = reported_rows("canopic-paper").set_index("encoder")
    # CAnOPIC Table 1, as printed (percent → fraction)
    assert canopic.loc[
        "Clean (no encoding) (unlearned)", "face-id[retrained].top1"
    ] == pytest.approx(0.9760)
    assert canopic.loc[
        "Conv(1) + MP + Quantize (α = 300) (learned)", "face-id[retrained].top1"
    ] == pytest.approx(0.052)
    assert canopic.loc[
        "Conv(4) + MP + Quantize (α = 1) (learned)", "face-vs-noface.accuracy"
    ] == pytest.approx(0.9844)
    assert len(canopic) == 21 and set(canopic["source"]) == {"reported"}
    assert (
        "Table 1" in canopic.loc["MP (unlearned)", "reference"]
        and "CAnOPIC" in canopic.loc["MP (unlearned)", "reference"]
    )
    twopsc = reported_rows("2psc-paper").set_index("encoder")
    assert twopsc.loc["2PSC (ours) (privacy)", "captioning.bleu_4"] == 28.9
    assert twopsc.loc["Low-Resolution (privacy)", "captioning.meteor"] == 20.9
    assert math.isnan(twopsc.loc["CutMix [17] (non-privacy)", "captioning.bleu_2"])  # printed "-"
    for benchmark in ("canopic-paper", "2psc-paper"):
        labels = {entry.display_name for entry in load_spec(benchmark).encoders}
        matched = {
            row.encoder for table in reported_tables(benchmark) for row in table.rows if row.encoder
        }
        assert matched <= labels, matched - labels
    assert reported_rows("synthfaces").empty


def _measured(benchmark):
    def row(encoder, evaluation, role, value, chance, metric, protocol=None):
        return {
            "benchmark": benchmark,
            "benchmark_version": "1",
            "dataset_fingerprint": "f",
            "dataset": "d",
            "encoder": encoder.split(" ")[0],
            "encoder_label": encoder,
            "encoder_config_hash": encoder,
            "encoder_weights_hash": "w",
            "alpha": None,
            "evaluation": evaluation,
            "evaluation_version": "1",
            "evaluation_config": {},
            "role": role,
            "protocol": protocol,
            "seed": 0,
            "metrics": {metric: value},
            "headline_metric": metric,
            "headline_value": value,
            "higher_is_better": True,
            "chance": chance,
            "preset": "paper",
            "study": None,
            "trial": None,
        }

    rows = []
    for encoder, top1, accuracy in (
        ("identity", 0.95, 0.99),
        ("gaussian-blur", 0.6, 0.95),
        ("canopic-conv1-mp-q α=1", 0.3, 0.93),
    ):
        rows.append(row(encoder, "face-id", "privacy", top1, 0.01, "top1", "retrained"))
        rows.append(row(encoder, "face-vs-noface", "utility", accuracy, 0.5, "accuracy"))
    return pd.DataFrame(rows)


def test_reported_rows_never_enter_the_ranking_scores_or_front():
    measured = _measured("canopic-paper")
    table = leaderboard_table(measured)
    reported = reported_rows("canopic-paper").assign(
        benchmark="canopic-paper", benchmark_version="1", dataset_fingerprint="f"
    )
    mixed = leaderboard_table(
        pd.concat([measured.assign(source="measured"), reported], ignore_index=True)
    )
    pd.testing.assert_frame_equal(mixed, table)
    assert len(table) == 3 and table["pareto"].sum() >= 1
    comparison = comparison_table(reported_rows("canopic-paper"), table).set_index("encoder")
    row = comparison.loc["Conv(1) + MP + Quantize (α = 1) (learned)"]
    assert row["paper: face-id[retrained].top1"] == pytest.approx(0.3373)
    assert row["measured: face-id[retrained].top1"] == pytest.approx(0.3)
    assert math.isnan(
        comparison.loc["MP (unlearned)", "measured: face-id[retrained].top1"]
    )  # not run here


def test_rendered_outputs_show_reported_rows_beside_measured_ones(tmp_path):
    from privbench.report.leaderboard import render_outputs

    outputs = render_outputs(_measured("canopic-paper"), tmp_path)
    markdown = outputs["markdown"].read_text()
    assert (
        "Reported by the paper" in markdown
        and "| Conv(1) + MP + Quantize (α = 1) (learned) | canopic-conv1-mp-q α=1 | 0.3373 | 0.3 |"
        in markdown
    )
    ranked = markdown.split("Reported by the paper")[0]
    assert (
        "(learned)" not in ranked and ranked.count("| 3 |") == 1
    )  # three ranked rows, no reported one
    board = pd.read_csv(outputs["csv"])
    assert list(board.columns[:3]) == ["encoder", "utility", "privacy"]
    assert (board["source"] == "measured").sum() == 3 and (
        board["source"] == "reported"
    ).sum() == 21
    reported = board[board["source"] == "reported"]
    assert reported[["utility", "privacy", "pareto"]].isna().all().all()
    assert reported["reference"].str.contains("Table 1").all()
    html = outputs["html"].read_text()
    assert (
        "class='sortable reported'" in html and "Conv(4) + MP + Quantize (α = 50) (learned)" in html
    )
    other = render_outputs(_measured("synthfaces"), tmp_path / "other")
    assert "Reported by the paper" not in other["markdown"].read_text()


# -- end to end on fixtures ----------------------------------------------------------------
def test_canopic_paper_runs_end_to_end_on_fixture_data(roots, tmp_path):
    spec = _with_fixture_preset(_builtin("canopic-paper"), CANOPIC_FIXTURE)
    paths = {name: roots[name] for name in CANOPIC_ALL_PATHS}
    report = run(
        spec,
        preset="fixture",
        encoders=["identity", "gaussian-blur", "canopic-conv1-mp-q α=1"],
        data_paths=paths,
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        report=True,
    )
    assert not report.failures, report.failures
    rows = report.results
    assert len(rows) == 9 and set(rows["evaluation"]) == {
        "face-vs-noface",
        "face-detection",
        "face-id",
    }
    assert set(rows["dataset"]) == {"vggface2+imagenet+widerface+fddb"}
    learned = rows[rows["encoder_label"] == "canopic-conv1-mp-q α=1"].iloc[0]
    assert learned["alpha"] == 1.0 and learned["details"]["designer"] == "adversarial"
    face_id = rows[rows["evaluation"] == "face-id"].iloc[0]
    assert face_id["chance"] == pytest.approx(1 / 3)  # the 3 evaluation identities
    # The designer fitted the encoder on the disjoint design identities (`data: design`): its
    # cached weights are keyed by that source's fingerprint.
    resolved = load_spec(spec).resolve("fixture")
    data = Runner(
        require_data_paths(resolved, paths),
        store=None,
        device=torch.device("cpu"),
        cache=ArtifactCache(tmp_path / "cache"),
    ).load_data()
    entry = next(e for e in resolved.encoders if e.display_name == "canopic-conv1-mp-q α=1")
    fresh = ENCODERS.get(entry.name)(**entry.config)
    designer = DESIGNERS.get(entry.designer.name)(**entry.designer.config)
    key = {
        "encoder": fresh.config_hash(),
        "initial_weights": fresh.weights_hash(),
        "designer": designer.config_hash(),
    }
    cache = ArtifactCache(tmp_path / "cache")
    assert (
        cache.load("fitted", stable_hash({**key, "dataset": data.source("design").fingerprint}))
        is not None
    )
    assert cache.load("fitted", stable_hash({**key, "dataset": data.fingerprint})) is None
    assert learned["encoder_weights_hash"] != fresh.weights_hash()
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert (
        "Reported by the paper" in markdown
        and "| Conv(1) + MP + Quantize (α = 1) (learned) | canopic-conv1-mp-q α=1 | 0.3373 |"
        in markdown
    )
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert (board["source"] == "measured").sum() == 3 and (
        board["source"] == "reported"
    ).sum() == 21


def test_2psc_paper_runs_end_to_end_on_fixture_data(roots, tmp_path):
    spec = _with_fixture_preset(_builtin("2psc-paper"), TWOPSC_FIXTURE)
    report = run(
        spec,
        preset="fixture",
        encoders=["identity", "zernike-lens α=1", "low-res"],
        data_paths={"coco": roots["coco"], "widerface": roots["widerface"]},
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        report=True,
    )
    assert not report.failures, report.failures
    rows = report.results
    assert len(rows) == 15
    captioning = rows[rows["evaluation"] == "captioning"]
    assert (
        len(captioning) == 3 and captioning["details"].map(lambda d: "data_source" not in d).all()
    )
    detection = rows[rows["evaluation"] == "face-detection-attack"]
    assert set(detection["protocol"]) == {"clean-reference", "pretrained", "retrained", "finetuned"}
    wider = load_dataset(
        "widerface",
        dict(
            path=roots["widerface"],
            image_size=64,
            resize="stretch",
            val_fraction=0.3,
            max_test_images=4,
        ),
        tmp_path / "cache",
    )
    assert (
        detection["details"]
        .map(
            lambda d: (
                d["data_source"] == "wider" and d["data_source_fingerprint"] == wider.fingerprint
            )
        )
        .all()
    )
    lens = rows[rows["encoder_label"] == "zernike-lens α=1"].iloc[0]
    assert lens["details"]["designer"] == "end-to-end"
    assert (
        lens["encoder_weights_hash"] != ENCODERS.get("zernike-lens")().weights_hash()
    )  # the lens was designed with the captioner
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert (board["source"] == "measured").sum() == 3 and (board["source"] == "reported").sum() == 9
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| 2PSC (ours) (privacy) | zernike-lens α=1 | 70.7 |" in markdown
