"""The cluster how-to says only what the real command lines accept, and its SLURM script works.

- Every ``privbench`` and ``ray`` command quoted in docs/cluster.md and in docs/running-at-scale.md,
  and every one the sbatch script runs, is parsed by the real CLI (privbench's typer
  app, Ray's click app) without being run: an option that does not exist, or a value of the
  wrong type, fails here. Spec fragments in the how-to validate as spec entries.
- The sbatch script passes ``bash -n`` (and shellcheck where it is installed), and keeps its
  ``#SBATCH`` lines before its first command (sbatch reads no further).
- A dry run of the sbatch script: SLURM (``srun``, ``scontrol``) and the cluster processes
  (the ``ray`` CLI, the ``privbench`` driver) are stand-ins that record what they are asked to do,
  because neither a SLURM allocation nor several nodes exist here; bash, Python, SQLite and the
  script's own logic are real. It checks what the script does: the head on the batch node,
  one Ray worker per other node, one token for all, the driver's command line (parsed by the real
  CLI), the SQLite store kept across jobs, Ray stopped on every exit path, exit codes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
import yaml

from privbench.cli import app
from privbench.runs.spec import ComponentSpec

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_DOC = ROOT / "docs" / "cluster.md"
SCALING_DOC = ROOT / "docs" / "running-at-scale.md"
SBATCH = ROOT / "scripts" / "slurm" / "privbench.sbatch"

#: Values that shell variables in quoted command lines stand for when they are parsed.
SHELL_VALUES = {
    "head_ip": "10.0.0.1",
    "RAY_PORT": "6379",
    "address": "10.0.0.1:6379",
    "PRIVBENCH_CACHE": "/shared/privbench-cache",
    "PRIVBENCH_STORE": "postgresql://bench@dbhost/privbench",
    "PRIVBENCH_OUT": "/shared/privbench-out",
    "DEVICE": "cuda",
    "CPUS_PER_CELL": "2",
    "GPUS_PER_CELL": "0.25",
    "SLURM_CPUS_PER_TASK": "16",
}
PUNCTUATION = set("();<>|&")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: Commands that run the command after them (its own options first).
WRAPPERS = {"srun", "exec", "env", "nohup", "time"}
KEYWORDS = {"until", "while", "if", "then", "do", "!", "{"}


# -- extracting command lines -------------------------------------------------------------------
def scaling_page() -> str:
    """The scaling page of the docs (it was the README's scaling section)."""
    return SCALING_DOC.read_text()


def shell_snippets(markdown: str) -> list[tuple[str, bool]]:
    """The shell of a Markdown document, each snippet with whether it is a full command line:
    the lines of fenced bash/sh blocks (continuations joined) are; inline code spans are
    mentions (`ray start --address` names an option without giving its value)."""
    snippets = []
    for info, body in re.findall(r"```(\w*)\n(.*?)```", markdown, flags=re.S):
        if info in ("bash", "sh", "shell", "console"):
            snippets += [(line, True) for line in body.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S).replace("\n", " ")
    snippets += [(span, False) for span in re.findall(r"`([^`]+)`", prose)]
    return [(text.strip().removeprefix("$ "), full) for text, full in snippets if text.strip()]


def _substitute(line: str) -> str:
    def value(match: re.Match) -> str:
        return SHELL_VALUES.get(match.group(1), f"{match.group(1)}-value")

    line = line.replace('"$@"', "")  # the script's own arguments: none here
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value, line)


def commands(snippet: str, program: str) -> list[list[str]]:
    """The invocations of ``program`` in one line of shell: its arguments, per command (after
    ``VAR=value`` prefixes, ``until``/``if``/``!``, and wrappers such as ``srun -w NODE``)."""
    try:
        lexer = shlex.shlex(_substitute(snippet), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:  # not shell (an unbalanced quote in prose)
        return []
    found, segment = [], []
    for token in [*tokens, ";"]:
        if not token or not set(token) <= PUNCTUATION:  # a word ('' is an empty word)
            segment.append(token)
            continue
        if token[0] in "<>" and segment and segment[-1].isdigit():
            segment.pop()  # the descriptor of a redirection: 2>/dev/null
        while segment and (ASSIGNMENT.match(segment[0]) or segment[0] in KEYWORDS):
            segment.pop(0)
        starts = [0] if segment and _is_program(segment[0], program) else []
        if segment and segment[0] in WRAPPERS:
            starts = [i for i, word in enumerate(segment) if _is_program(word, program)][:1]
        found += [segment[start + 1 :] for start in starts]
        segment = []
    return found


def _is_program(word: str, program: str) -> bool:
    return word == program or word.endswith(f"/bin/{program}")


def documented(program: str, full: bool) -> list[list[str]]:
    """The invocations of ``program`` in docs/cluster.md and docs/running-at-scale.md:
    full command lines (``full``) or mentions in prose."""
    snippets = shell_snippets(CLUSTER_DOC.read_text()) + shell_snippets(scaling_page())
    return [args for text, kind in snippets if kind == full for args in commands(text, program)]


def sbatch_commands(program: str) -> list[list[str]]:
    """The invocations of ``program`` in the sbatch script (continuation lines joined)."""
    text = SBATCH.read_text().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [args for line in lines for args in commands(line, program)]


# -- parsing with the real command lines --------------------------------------------------------
def resolve(root, prog: str, argv: list[str]):
    """The leaf command that ``argv`` names in the command tree ``root``, its context's parent,
    and the arguments left for it."""
    ctx, command, args = None, root, list(argv)
    while hasattr(command, "list_commands"):  # a group: the next word names its subcommand
        assert args, f"{prog}: a subcommand is missing"
        name, *args = args
        ctx = command.make_context(prog if ctx is None else command.name, [name], parent=ctx)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{prog} has no command {name!r}"
        command = sub
    return command, ctx, args


def parse(root, prog: str, argv: list[str]):
    """``argv`` parsed as far as its leaf command's context, without running it: an unknown
    command or option, a missing value or a value of the wrong type raises."""
    command, parent, args = resolve(root, prog, argv)
    return command.make_context(command.name, args, parent=parent)


def check_mention(root, prog: str, argv: list[str]) -> None:
    """A command named in prose: the command exists and so does every option it names."""
    command, _, args = resolve(root, prog, argv)
    options = {name for param in command.params for name in param.opts + param.secondary_opts}
    named = {word.split("=", 1)[0] for word in args if word.startswith("-")}
    assert named <= options, f"{prog} {command.name} has no {sorted(named - options)}"


def privbench_root():
    return typer.main.get_command(app)


def parse_privbench(argv: list[str]):
    return parse(privbench_root(), "privbench", argv)


def ray_root():
    scripts = pytest.importorskip("ray.scripts.scripts", reason="Ray is not installed")
    return scripts.cli


def _ids(commands_: list[list[str]]) -> list[str]:
    return [" ".join(args)[:60] for args in commands_]


DOC_PRIVBENCH = documented("privbench", full=True)
DOC_RAY = documented("ray", full=True)
MENTIONED_PRIVBENCH = documented("privbench", full=False)
MENTIONED_RAY = documented("ray", full=False)


def test_the_how_to_quotes_the_commands_of_every_setting():
    """Extraction found the commands the how-to is about (so the parsing tests check them)."""
    options = {word for args in DOC_PRIVBENCH for word in args if word.startswith("--")}
    wanted = {"--workers", "--cpus-per-cell", "--gpus-per-cell", "--device", "--address"}
    assert wanted | {"--cache-dir", "--store"} <= options
    ray_commands = {" ".join(args[:2]) for args in DOC_RAY}
    assert {"start --head", "start --address=10.0.0.1:6379"} <= ray_commands
    assert any(args[:1] == ["tune"] for args in DOC_PRIVBENCH)
    assert len(MENTIONED_PRIVBENCH) >= 5 and len(MENTIONED_RAY) >= 5


@pytest.mark.parametrize("argv", DOC_PRIVBENCH, ids=_ids(DOC_PRIVBENCH))
def test_documented_privbench_command_parses(argv):
    ctx = parse_privbench(argv)
    assert ctx.command.name == argv[0]


@pytest.mark.parametrize("argv", DOC_RAY, ids=_ids(DOC_RAY))
def test_documented_ray_command_parses(argv):
    parse(ray_root(), "ray", argv)


def test_commands_named_in_prose_exist_with_their_options():
    for argv in MENTIONED_PRIVBENCH:
        check_mention(privbench_root(), "privbench", argv)
    for argv in MENTIONED_RAY:
        check_mention(ray_root(), "ray", argv)


def test_documented_spec_fragments_are_valid_entries():
    blocks = re.findall(r"```yaml\n(.*?)```", CLUSTER_DOC.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        spec = yaml.safe_load(block)
        entries = [e for kind in ("encoders", "tasks", "attacks") for e in spec.get(kind, [])]
        assert entries
        parsed = [ComponentSpec.model_validate(entry) for entry in entries]
        designers = [entry.designer for entry in parsed if entry.designer]
        assert any(entry.resources for entry in parsed + designers)


def test_the_paths_the_how_to_names_exist():
    text = CLUSTER_DOC.read_text() + scaling_page()
    named = set(re.findall(r"(?<![\w/.])((?:docs|scripts)/[\w./-]+\.(?:md|sbatch))", text))
    assert {"docs/cluster.md", "scripts/slurm/privbench.sbatch"} <= named
    assert all((ROOT / path).is_file() for path in named), named
    assert "## Measured" in CLUSTER_DOC.read_text()


# -- the sbatch script, statically --------------------------------------------------------------
def test_sbatch_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_sbatch_passes_shellcheck():
    result = subprocess.run(["shellcheck", str(SBATCH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_sbatch_directives_come_before_the_first_command():
    lines = SBATCH.read_text().splitlines()
    first_command = next(
        i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")
    )
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert directives and max(directives) < first_command
    options = " ".join(lines[i] for i in directives)
    for option in ("--nodes=", "--ntasks-per-node=1", "--cpus-per-task=", "--gpus-per-task="):
        assert option in options


def test_sbatch_driver_line_parses_with_the_real_cli():
    (argv,) = sbatch_commands("privbench")
    ctx = parse_privbench(argv)
    assert ctx.command.name == "run"
    named = {word for word in argv if word.startswith("--")}
    assert {"--address", "--cache-dir", "--store", "--cpus-per-cell", "--gpus-per-cell"} <= named
    assert ctx.params["address"] == "10.0.0.1:6379"


def test_sbatch_ray_lines_parse_with_the_real_cli():
    invocations = sbatch_commands("ray")
    verbs = sorted({args[0] for args in invocations})
    assert verbs == ["health-check", "start", "status"]
    for argv in invocations:
        parse(ray_root(), "ray", argv)
    starts = [args for args in invocations if args[0] == "start"]
    assert sum("--head" in args for args in starts) == 1 and len(starts) == 2
    assert all("--block" in args for args in starts)


# -- the sbatch script, run with stand-ins for SLURM and the cluster processes -----------------
FAKE_SRUN = r"""#!/usr/bin/env bash
node=""
options=()
while (( $# )) && [[ $1 == -* ]]; do
    if [[ $1 == -w ]]; then node=$2; options+=("$1" "$2"); shift 2; else options+=("$1"); shift; fi
done
echo "node=$node ${options[*]}" >> "$FAKE_DIR/srun.log"
FAKE_NODE=$node exec "$@"
"""
FAKE_SCONTROL = r"""#!/usr/bin/env bash
[[ "$1 $2 $3" == "show hostnames $SLURM_JOB_NODELIST" ]] || { echo "scontrol: $*" >&2; exit 2; }
printf '%s\n' $FAKE_NODES
"""
FAKE_RAY = r"""#!/usr/bin/env bash
node=${FAKE_NODE:-batch}
case "$1" in
start)
    role=worker
    [[ " $* " == *" --head "* ]] && role=head
    python - "$role" "$node" "$@" >> "$FAKE_DIR/ray-start.jsonl" <<'PY'
import json, os, sys
role, node, *argv = sys.argv[1:]
mode, token = os.environ.get("RAY_AUTH_MODE"), os.environ.get("RAY_AUTH_TOKEN")
print(json.dumps({"role": role, "node": node, "argv": argv, "mode": mode, "token": token}))
PY
    if [[ $node == "${FAKE_RAY_FAIL_NODE:-}" ]]; then echo "fake ray: no start" >&2; exit 1; fi
    echo $$ >> "$FAKE_DIR/pids"
    trap 'echo "$role $node" >> "$FAKE_DIR/ray-stopped"; rm -f "$FAKE_DIR/up/$node"; exit 0' TERM
    touch "$FAKE_DIR/up/$node"
    [[ $role == head ]] && touch "$FAKE_DIR/up/.head"
    while :; do sleep 0.1; done ;;
health-check)
    [[ -e $FAKE_DIR/up/.head ]] ;;
status)
    [[ -e $FAKE_DIR/up/.head ]] || exit 1
    echo "======== Autoscaler status: now ========"
    echo "Node status"
    echo "Active:"
    for up in "$FAKE_DIR"/up/*; do [[ -e $up ]] && echo " 1 node_${up##*/}"; done
    echo "Pending:"
    echo " (no pending nodes)"
    echo "Recent failures:"
    echo " node_gone: NodeTerminated (ip: 10.9.9.9)" ;;
*)
    echo "fake ray: unexpected $*" >&2; exit 2 ;;
esac
"""
FAKE_PRIVBENCH = r"""
import json, os, signal, sqlite3, sys, time

fake = os.environ["FAKE_DIR"]
argv = sys.argv[1:]
store = argv[argv.index("--store") + 1]
path = store.removeprefix("sqlite:///")
existed = os.path.exists(path)
if store.startswith("sqlite:///"):  # a row of this job, as a real driver would write
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE IF NOT EXISTS jobs (job TEXT)")
    with db:
        db.execute("INSERT INTO jobs VALUES (?)", (os.environ["SLURM_JOB_ID"],))
record = {
    "argv": argv,
    "store_existed": existed,
    "cache_env": os.environ.get("PRIVBENCH_CACHE"),
    "mode": os.environ.get("RAY_AUTH_MODE"),
    "token": os.environ.get("RAY_AUTH_TOKEN"),
}
with open(os.path.join(fake, "privbench.jsonl"), "a") as log:
    log.write(json.dumps(record) + "\n")
if os.environ.get("FAKE_PRIVBENCH_HOLD"):
    def terminated(*_):
        open(os.path.join(fake, "driver-terminated"), "w").close()
        sys.exit(143)
    signal.signal(signal.SIGTERM, terminated)
    open(os.path.join(fake, "driver-running"), "w").close()
    while True:
        time.sleep(0.1)
sys.exit(int(os.environ.get("FAKE_PRIVBENCH_RC", "0")))
"""


class DryRun:
    """A fake allocation of three nodes (the batch script on node-b) and its recordings."""

    nodes = ["node-a", "node-b", "node-c"]
    head = "node-b"

    def __init__(self, tmp_path: Path):
        self.root = tmp_path
        self.fake = tmp_path / "fake"
        (self.fake / "up").mkdir(parents=True)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL), ("ray", FAKE_RAY)):
            (bin_dir / name).write_text(text)
        (bin_dir / "privbench").write_text(f"#!{sys.executable}\n{FAKE_PRIVBENCH}")
        (bin_dir / "python").symlink_to(sys.executable)  # the real interpreter
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
        self.out = tmp_path / "submit" / "privbench-out"
        self.cache = tmp_path / "shared" / "cache"
        self.local = tmp_path / "node-local"
        self.local.mkdir()
        self.env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path / "home"),
            "TMPDIR": str(self.local),
            "FAKE_DIR": str(self.fake),
            "FAKE_NODES": " ".join(self.nodes),
            "SLURM_JOB_ID": "4242",
            "SLURM_JOB_NODELIST": "node-[a-c]",
            "SLURM_JOB_NUM_NODES": "3",
            "SLURM_CPUS_PER_TASK": "16",
            "SLURM_GPUS_PER_TASK": "4",
            "SLURM_SUBMIT_DIR": str(tmp_path / "submit"),
            "SLURMD_NODENAME": self.head,
            "PRIVBENCH_CACHE": str(self.cache),
            "RAY_HEAD_IP": "10.1.2.3",
        }

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", str(SBATCH), *args],
            env={**self.env, **env},
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, *args: str, **env: str) -> tuple[int, str]:
        process = self.start(*args, **env)
        output, _ = process.communicate(timeout=180)
        return process.returncode, output

    def records(self, name: str) -> list[dict]:
        path = self.fake / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def lines(self, name: str) -> list[str]:
        path = self.fake / name
        return path.read_text().splitlines() if path.exists() else []

    def stopped(self) -> set[str]:
        return set(self.lines("ray-stopped"))

    def kept_jobs(self) -> list[str]:
        with sqlite3.connect(self.out / "results.db") as db:
            return [job for (job,) in db.execute("SELECT job FROM jobs")]

    def kill_leftovers(self) -> None:
        for pid in self.lines("pids"):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def dry(tmp_path):
    run = DryRun(tmp_path)
    yield run
    run.kill_leftovers()


def test_dry_run_starts_ray_on_every_node_and_runs_the_driver_on_the_head(dry):
    code, output = dry.run("--encoders", "identity,gaussian-blur")
    assert code == 0, output

    starts = {(line.split()[0]) for line in dry.lines("srun.log")}
    assert starts == {f"node={node}" for node in dry.nodes}
    for line in dry.lines("srun.log"):
        assert "--nodes=1 --ntasks=1 --cpus-per-task=16 --gpus-per-task=4" in line
    ray_starts = dry.records("ray-start.jsonl")
    assert sorted((r["role"], r["node"]) for r in ray_starts) == [
        ("head", "node-b"),
        ("worker", "node-a"),
        ("worker", "node-c"),
    ]
    for record in ray_starts:
        parse(ray_root(), "ray", record["argv"])
        assert "--num-cpus=16" in record["argv"] and "--block" in record["argv"]
        if record["role"] == "worker":
            assert "--address=10.1.2.3:6379" in record["argv"]
        else:
            assert "--node-ip-address=10.1.2.3" in record["argv"]
    tokens = {record["token"] for record in ray_starts}
    assert len(tokens) == 1 and len(tokens.pop()) == 64  # one token for the whole job
    assert {record["mode"] for record in ray_starts} == {"token"}

    (driver,) = dry.records("privbench.jsonl")
    ctx = parse_privbench(driver["argv"])
    assert ctx.command.name == "run"
    assert ctx.params["address"] == "10.1.2.3:6379"
    assert ctx.params["cache_dir"] == dry.cache and driver["cache_env"] == str(dry.cache)
    assert ctx.params["out"] == dry.out
    assert ctx.params["store"] == f"sqlite:///{dry.local}/privbench-4242/results.db"
    assert (ctx.params["device"], ctx.params["cpus_per_cell"], ctx.params["gpus_per_cell"]) == (
        "cuda",
        1,
        0.25,
    )
    assert ctx.params["encoders"] == "identity,gaussian-blur"  # the script's own arguments
    assert driver["mode"] == "token" and len(driver["token"]) == 64
    assert not driver["store_existed"]

    assert dry.stopped() == {"head node-b", "worker node-a", "worker node-c"}
    assert dry.kept_jobs() == ["4242"]
    with sqlite3.connect(dry.out / "results.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_dry_run_a_resubmitted_job_resumes_from_the_kept_store(dry):
    assert dry.run()[0] == 0
    code, output = dry.run(SLURM_JOB_ID="4243")
    assert code == 0, output
    first, second = dry.records("privbench.jsonl")
    assert not first["store_existed"] and second["store_existed"]
    assert dry.kept_jobs() == ["4242", "4243"]


def test_dry_run_the_drivers_exit_code_is_the_jobs_and_a_postgresql_url_passes_untouched(dry):
    url = "postgresql://bench@dbhost/privbench"
    code, output = dry.run(PRIVBENCH_STORE=url, FAKE_PRIVBENCH_RC="1")  # a cell failed
    assert code == 1, output
    (driver,) = dry.records("privbench.jsonl")
    assert parse_privbench(driver["argv"]).params["store"] == url
    assert not (dry.out / "results.db").exists()  # nothing to keep: the server holds the rows
    assert dry.stopped() == {"head node-b", "worker node-a", "worker node-c"}


def test_dry_run_sigterm_stops_the_driver_keeps_the_store_and_stops_ray(dry):
    process = dry.start(FAKE_PRIVBENCH_HOLD="1")
    deadline = time.monotonic() + 120
    while not (dry.fake / "driver-running").exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the driver never started"
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)  # what --signal=B:TERM@120 and scancel send
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 143, output
    assert (dry.fake / "driver-terminated").exists()
    assert dry.kept_jobs() == ["4242"]
    assert dry.stopped() == {"head node-b", "worker node-a", "worker node-c"}


def test_dry_run_a_node_whose_ray_fails_stops_the_job_with_its_name(dry):
    code, output = dry.run(FAKE_RAY_FAIL_NODE="node-c")
    assert code == 1
    assert "Ray on node-c exited" in output
    assert not dry.records("privbench.jsonl")
    assert dry.stopped() == {"head node-b", "worker node-a"}


def test_dry_run_outside_slurm_says_so(dry):
    env = {key: value for key, value in dry.env.items() if not key.startswith("SLURM")}
    result = subprocess.run(
        ["bash", str(SBATCH)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "not inside a SLURM job" in result.stderr
