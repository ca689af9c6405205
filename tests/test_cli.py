"""The command line: help, listing, runs, resume after a kill, and bad input."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from privbench.cli import main

TESTS = Path(__file__).parent
RUNNER_SCRIPT = """
import sys
from support import toy_components  # registers the toy dataset and evaluations
from privbench.cli import main
main(sys.argv[1:])
"""


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, " ".join((captured.out + captured.err).split())


def _run_args(spec: Path, out: Path, cache: Path) -> list[str]:
    return ["run", "--spec", str(spec), "--out", str(out), "--cache-dir", str(cache)]


def _write_spec(toy, tmp_path, **overrides) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy.toy_spec(**overrides)))
    return path


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["list"],
        ["leaderboard"],
        ["show"],
        ["figure"],
        ["tune"],
        ["pareto"],
        ["data"],
        ["data", "check"],
        ["export"],
        ["validate"],
        ["card"],
        ["encoder"],
        ["encoder", "export"],
        ["encoder", "load"],
    ],
)
def test_help_of_every_command(capsys, command):
    code, output = _cli(capsys, *command, "--help")
    assert code == 0
    assert "Usage" in output and "--help" in output and len(output) > 200
    assert "<bool>" not in output  # flags take no value


def test_list_kinds(capsys, toy):
    for kind, expected in (
        ("encoders", "pixelate"),
        ("tasks", "toy-utility"),
        ("attacks", "toy-attack"),
        ("designers", "adversarial"),
        ("benchmarks", "synthfaces"),
        ("datasets", "toy-patterns"),
    ):
        code, output = _cli(capsys, "list", kind)
        assert code in (0, None) and expected in output


def test_run_and_leaderboard_from_store(capsys, toy, tmp_path):
    spec = _write_spec(toy, tmp_path)
    code, output = _cli(capsys, *_run_args(spec, tmp_path / "out", tmp_path / "cache"))
    assert code in (0, None), output
    assert "6 cells run" in output and "leaderboard" in output.lower()
    store = f"sqlite:///{tmp_path / 'out' / 'results.db'}"
    code, output = _cli(capsys, "leaderboard", "--store", store, "--out", str(tmp_path / "again"))
    assert code in (0, None), output
    for name in ("leaderboard.md", "leaderboard.csv", "index.html", "pareto.png"):
        assert (tmp_path / "again" / name).is_file()


def test_leaderboard_of_a_store_that_does_not_exist_names_it_and_creates_nothing(capsys, tmp_path):
    missing = tmp_path / "nowhere" / "results.db"
    tmp_path.joinpath("nowhere").mkdir()
    code, output = _cli(capsys, "leaderboard", "--store", f"sqlite:///{missing}")
    assert code not in (0, None)
    assert f"There is no results store at '{missing}'" in output and "privbench run" in output
    assert not missing.exists()


def _run_in_a_process(toy, tmp_path) -> list[str]:
    """The command line of a toy run in its own Python process (the toy components registered)."""
    spec = _write_spec(toy, tmp_path)
    script = tmp_path / "run_privbench.py"
    script.write_text(RUNNER_SCRIPT)
    return [sys.executable, str(script), *_run_args(spec, tmp_path / "out", tmp_path / "cache")]


def test_killed_run_resumes_without_lost_or_doubled_rows(toy, tmp_path):
    args = _run_in_a_process(toy, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "TOY_SLEEP": "1.0"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = tmp_path / "out" / "results.db"
    _wait_for_rows(database, 2, process)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    stored = sqlite3.connect(database).execute("select count(*) from results").fetchone()[0]
    assert 2 <= stored < 6
    env["TOY_SLEEP"] = "0"
    finished = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"{6 - stored} cells run, {stored} reused" in finished.stdout
    connection = sqlite3.connect(database)
    assert connection.execute(
        "select count(*), count(distinct cell_key) from results"
    ).fetchone() == (6, 6)


def test_bad_inputs_give_one_paragraph_errors(capsys, toy, tmp_path):
    spec = _write_spec(toy, tmp_path)

    def run(spec_path, out, *options):
        return _cli(capsys, *_run_args(spec_path, out, tmp_path / "cache"), *options)

    code, output = run(spec, tmp_path / "o1", "--encoders", "identity,pixelat")
    assert code != 0 and "Did you mean 'pixelate'" in output and "Traceback" not in output

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(toy.toy_spec(seeds="zero")))
    code, output = run(bad, tmp_path / "o2")
    assert code != 0 and "seeds" in output and "Traceback" not in output

    blur = {"name": "gaussian-blur", "config": {"sigma": 3}}
    bad.write_text(yaml.safe_dump(toy.toy_spec(encoders=[blur])))
    code, output = run(bad, tmp_path / "o3")
    assert code != 0 and "'sigma'" in output and "sigma_px" in output
    assert f"In spec file '{bad}'" in output and not (tmp_path / "o3" / "results.db").exists()

    bad.write_text("name: [unclosed")
    code, output = run(bad, tmp_path / "o4")
    assert code != 0 and "not valid YAML" in output

    code, output = run(tmp_path / "missing.yaml", tmp_path / "o5")
    assert code != 0 and "does not exist" in output

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, output = run(spec, blocker / "sub")
    assert code != 0 and "output folder" in output and "Traceback" not in output

    code, output = run(spec, tmp_path / "o6", "--store", "nosuchdb://x")
    assert code != 0 and "results store" in output and "Traceback" not in output

    missing_folder = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'r.db'}"
    code, output = run(spec, tmp_path / "o7", "--store", missing_folder)
    assert code != 0 and "does not exist" in output

    code, output = run(spec, tmp_path / "o8", "--device", "tpu")
    assert code != 0 and "'tpu'" in output

    code, output = run(spec, tmp_path / "o9", "--preset", "huge")
    assert code != 0 and "no preset 'huge'" in output


def test_bad_image_for_show(capsys, tmp_path):
    not_an_image = tmp_path / "x.png"
    not_an_image.write_text("hello")
    code, output = _cli(
        capsys, "show", "pixelate", "--image", str(not_an_image), "--out", str(tmp_path / "s.png")
    )
    assert code != 0 and "Cannot read" in output
    code, output = _cli(
        capsys,
        "show",
        "pixelate",
        "--image",
        str(tmp_path / "none.png"),
        "--out",
        str(tmp_path / "s.png"),
    )
    assert code != 0 and "does not exist" in output


def test_show_draws_clean_and_measurement(capsys, tmp_path):
    import numpy as np
    from PIL import Image

    picture = tmp_path / "face.png"
    Image.fromarray((np.random.default_rng(0).random((80, 80, 3)) * 255).astype("uint8")).save(
        picture
    )
    code, output = _cli(
        capsys,
        "show",
        "gaussian-blur",
        "--image",
        str(picture),
        "--out",
        str(tmp_path / "s.png"),
        "--set",
        "sigma_px=3",
    )
    assert code in (0, None), output
    assert (tmp_path / "s.png").stat().st_size > 10000


def test_settings_errors_name_their_option(capsys):
    code, output = _cli(capsys, "show", "pixelate", "--set", "block_px")
    assert code != 0 and "--set expects KEY=VALUE (e.g. --set sigma_px=4); got 'block_px'" in output
    code, output = _cli(
        capsys, "tune", "--encoder", "canopic-conv1-mp-q", "--designer-set", "cycles"
    )
    assert code != 0 and "--designer-set expects KEY=VALUE (e.g. --designer-set cycles=3)" in output
    code, output = _cli(capsys, "data", "check", "lfw", ".", "--set", "n_identities")
    assert code != 0 and "--set expects KEY=VALUE (e.g. --set n_identities=100)" in output


def test_shared_options_are_declared_once():
    """Every command that takes --device, --cache-dir or --spec gets the one shared option."""
    import typer.main

    from privbench.cli import app

    command = typer.main.get_command(app)
    helps = {}
    for sub in command.commands.values():
        for param in getattr(sub, "params", []):
            if {"--device", "--cache-dir", "--spec"} & set(param.opts):
                helps.setdefault(param.opts[0], set()).add(param.help)
    assert helps and all(len(texts) == 1 for texts in helps.values()), helps


def _wait_for_rows(database, count: int, process, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if database.exists():
            query = "select count(*) from results"
            with contextlib.suppress(sqlite3.OperationalError):  # locked or not yet created
                if sqlite3.connect(database).execute(query).fetchone()[0] >= count:
                    return
        time.sleep(0.1)


def test_output_to_a_pipe_streams_progress_and_prints_the_whole_table(toy, tmp_path):
    args = _run_in_a_process(toy, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "80"}
    finished = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = finished.stdout.splitlines()
    assert "cells: 0/6" in lines
    done = [line for line in lines if line.startswith("cells: 6/6,")]
    assert done and "elapsed" in done[0]
    # the table is printed at its full width, nothing cut to 80 columns
    header = next(line for line in lines if "worst_attack" in line)
    assert len(header) > 80 and "…" not in finished.stdout
    assert any("gaussian-blur" in line for line in lines)


def test_sigterm_prints_the_resume_hint(toy, tmp_path):
    args = _run_in_a_process(toy, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "TOY_SLEEP": "1.0"}
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_rows(tmp_path / "out" / "results.db", 1, process)
    assert process.poll() is None, "the run finished before it could be terminated"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, out + err
    assert "terminated (SIGTERM)" in err and "run the same command again to resume" in err
    assert "Traceback" not in err


def test_list_shows_whole_first_paragraphs(capsys):
    import privbench
    from privbench.api.registry import ENCODERS
    from privbench.cli.listing import description

    code, output = _cli(capsys, "list", "encoders")
    assert code in (0, None)
    for name in privbench.list_encoders():
        text = description(ENCODERS.get(name))
        assert text and " ".join(text.split()) in output, name
    multi_line = [
        n
        for n in privbench.list_encoders()
        if "\n" in (ENCODERS.get(n).__doc__ or "").strip().split("\n\n")[0]
    ]
    for name in multi_line:  # the ones a first line used to cut
        assert description(ENCODERS.get(name)).endswith((".", ")")), name


def test_help_texts_show_option_types_people_can_read(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one line per option
    code, output = _cli(capsys, "run", "--help")
    assert code == 0 and "<bool>" not in output
    code, output = _cli(capsys, "figure", "--help")
    assert "privbench[faces]" in output
