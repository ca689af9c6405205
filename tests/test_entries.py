"""Leaderboard entries as files: export, validate, rank a folder like a store (issue 17)."""

import json

import pandas as pd
import pytest

from privbench.api.errors import ConfigError
from privbench.cli import main
from privbench.pipeline import run
from privbench.runs.entries import (
    SCHEMA_PATH,
    entries_dataframe,
    entry_schema,
    export_entries,
    read_entry,
    validate_entry,
)
from privbench.runs.store import ResultStore

DESIGNED = {
    "name": "canopic-conv1-mp-q",
    "designer": {
        "name": "adversarial",
        "config": {"cycles": 1, "step1_epochs": 1, "batch_size": 8, "max_train_images": 16},
    },
    "alphas": [1.0],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from support import toy_components as toy

    root = tmp_path_factory.mktemp("entries")
    spec = toy.toy_spec(encoders=["identity", "pixelate", DESIGNED])
    run(spec, out_dir=root / "out", cache_dir=root / "cache")
    rows = ResultStore(f"sqlite:///{root / 'out' / 'results.db'}").dataframe()
    paths = export_entries(rows, root / "entries", cache_root=root / "cache")
    return root, rows, paths


def test_export_writes_one_valid_entry_per_encoder_with_its_weights(exported):
    root, rows, paths = exported
    assert len(paths) == 3
    assert all(validate_entry(path) == [] for path in paths)
    entries = {read_entry(path).encoder.label: read_entry(path) for path in paths}
    assert set(entries) == {"identity", "pixelate", "canopic-conv1-mp-q α=1"}
    learned = entries["canopic-conv1-mp-q α=1"]
    assert learned.weights is not None and learned.encoder.designer == "adversarial"
    assert (paths[0].parent / learned.weights.file).is_file()
    assert entries["identity"].weights is None
    assert len(learned.cells) == 2 and learned.scores.privacy is not None
    assert {cell.cell_key for e in entries.values() for cell in e.cells} == set(rows["cell_key"])


def test_a_folder_of_entries_ranks_exactly_like_the_store(exported, capsys):
    root, _, _ = exported
    store = f"sqlite:///{root / 'out' / 'results.db'}"
    for args in (["--store", store], ["--entries", str(root / "entries")]):
        out = root / ("from-" + args[0].strip("-"))
        with pytest.raises(SystemExit) as info:
            main(["leaderboard", *args, "--out", str(out)])
        assert info.value.code in (0, None), capsys.readouterr()
    from_store = pd.read_csv(root / "from-store" / "leaderboard.csv")
    from_entries = pd.read_csv(root / "from-entries" / "leaderboard.csv")
    pd.testing.assert_frame_equal(from_store, from_entries)
    assert len(entries_dataframe(root / "entries")) == 6


def test_validate_finds_tampering(exported, tmp_path, capsys):
    root, _, paths = exported
    learned = next(p for p in paths if "canopic" in p.name)
    copy = tmp_path / learned.name
    entry = json.loads(learned.read_text())
    weights = root / "entries" / learned.parent.name / entry["weights"]["file"]
    (tmp_path / weights.name).write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    entry["cells"][0]["benchmark_version"] = "99"
    copy.write_text(json.dumps(entry))
    problems = validate_entry(copy)
    assert any("benchmark_version '99'" in p for p in problems)
    assert any("SHA-256" in p for p in problems)
    with pytest.raises(SystemExit) as info:
        main(["validate", str(copy), str(paths[0])])
    output = capsys.readouterr()
    assert info.value.code != 0
    assert f"invalid: {copy}" in output.out and f"valid: {paths[0]}" in output.out
    entry["schema_version"] = 7
    copy.write_text(json.dumps(entry))
    with pytest.raises(ConfigError, match="schema_version 7"):
        read_entry(copy)
    del entry["schema_version"], entry["benchmark"]
    copy.write_text(json.dumps(entry))
    with pytest.raises(ConfigError, match="benchmark"):
        read_entry(copy)


def test_the_published_schema_is_the_models():
    assert json.loads(SCHEMA_PATH.read_text()) == entry_schema()


def test_export_from_the_command_line(exported, capsys):
    root, _, _ = exported
    store = f"sqlite:///{root / 'out' / 'results.db'}"
    args = [
        "export",
        "--store",
        store,
        "--out",
        str(root / "cli"),
        "--cache-dir",
        str(root / "cache"),
    ]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code in (0, None)
    assert "3 entries under" in capsys.readouterr().out
    assert len(list((root / "cli").rglob("*.safetensors"))) == 1
