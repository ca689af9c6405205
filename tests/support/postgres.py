"""A real, throwaway PostgreSQL server for the store's tests, and the rows and worker processes
that the store's tests share (the concurrency tests run the same workers on SQLite and on
PostgreSQL).

The server is the one the machine has installed (Debian's ``postgresql`` package, which .ci/run
installs): a cluster made with ``initdb`` in a temporary folder, listening on a free localhost
port with its unix socket in that folder, stopped and deleted after the session. PostgreSQL
refuses to run as root, so as root (here and in CI) the server runs as the ``postgres`` user
the package creates. Tests skip, with the reason, only when the binaries are not installed or
the server cannot start.

A test module uses the fixtures by binding them to its own names
(``postgres_db = support.postgres.postgres_db``): pytest finds a module's fixtures by name.
``postgres_url`` is one database for the session, ``postgres_db`` a new one for each test.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The database the session fixture creates.
DATABASE = "privbench"


def find_binaries() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: the one on PATH, else the newest Debian one."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions), key=_version, reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _version(folder: Path) -> tuple[int, ...]:
    digits = folder.parent.name.split(".")
    return tuple(int(d) for d in digits if d.isdigit())


class PostgresServer:
    """One cluster in ``folder``, started by :meth:`start`; :meth:`stop` stops and deletes it."""

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.owner = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="privbench-pg-"))
        if self.owner is not None:
            os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
        self.data = self.folder / "data"
        self.port: int | None = None
        self._names = itertools.count(1)

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        """A server binary as the server's user (``runuser`` when we are root)."""
        command = [str(self.binaries / argv[0]), *argv[1:]]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner.pw_name, "--", *command]
        # Output through a file: a pipe could be inherited by the daemonized server.
        with tempfile.TemporaryFile() as output:
            done = subprocess.run(
                command, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=output, stderr=output
            )
            output.seek(0)
            done.stdout = output.read().decode(errors="replace")
        return done

    def start(self) -> None:
        """initdb, then pg_ctl start on a free port; raises RuntimeError with the reason."""
        done = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-locale",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {_tail(done.stdout)}")
        log = self.folder / "server.log"
        for _ in range(3):  # a free port can be taken between finding it and binding it
            port = _free_port()
            options = (
                f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off"
            )
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "-o", options,
                "start",
            )  # fmt: skip
            if done.returncode == 0:
                self.port = port
                return
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {_tail(done.stdout + server_log)}")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its ``postgresql://`` URL."""
        name = name or f"test_{next(self._names)}"
        done = subprocess.run(
            [str(self.binaries / "createdb"), "-h", "127.0.0.1"]
            + ["-p", str(self.port), "-U", "postgres", name],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {_tail(done.stdout + done.stderr)}")
        return self.url(name)

    def stop(self) -> None:
        if self.port is not None:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: us, or as root the ``postgres`` user (RuntimeError if none)."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise RuntimeError(
            "running as root, and runuser (to run PostgreSQL as postgres) is missing"
        )
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root, and there is no 'postgres' user to run the server as "
            "(Debian's postgresql package creates it)"
        ) from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(text: str, lines: int = 15) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb and pg_ctl on PATH or under "
            "/usr/lib/postgresql/*/bin): apt-get install postgresql"
        )
    try:
        server = PostgresServer(binaries)
    except RuntimeError as error:
        pytest.skip(f"PostgreSQL cannot be started: {error}")
    try:
        try:
            server.start()
        except RuntimeError as error:
            pytest.skip(f"PostgreSQL ({binaries}) cannot be started: {error}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The ``postgresql://`` URL of a database on the session's server."""
    return postgres_server.create_database(DATABASE)


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> str:
    """The ``postgresql://`` URL of a new, empty database of its own for one test."""
    return postgres_server.create_database()


# -- shared by the store tests (SQLite and PostgreSQL) ------------------------------------------
def sample_row(index: int, **overrides: Any):
    """A full result row whose JSON columns hold nested values, a path and non-ASCII text."""
    from privbench.runs.rows import ResultRow

    values = {
        "cell_key": f"cell{index:02d}",
        "benchmark": "b",
        "benchmark_version": "1",
        "dataset": "d",
        "dataset_fingerprint": "f" * 16,
        "encoder": "gaussian-blur",
        "encoder_label": f"gaussian-blur σ={index}",
        "encoder_config": {"sigma_px": float(index), "kernel": [3, 5]},
        "encoder_config_hash": "h" * 16,
        "evaluation": "face-id",
        "evaluation_version": "2",
        "evaluation_config": {"epochs": 2, "classifier": {"width": 16}},
        "role": "privacy",
        "protocol": "retrained",
        "seed": index,
        "metrics": {"top1": 0.25 * index, "top5": 0.5},
        "headline_metric": "top1",
        "headline_value": 0.25 * index,
        "chance": 0.025,
        "encoder_weights_hash": None,
        "encoder_description": {"name": "blur <&>"},
        "details": {"training": {"epochs": [1, 2]}, "checkpoint": Path("/tmp/x.pt")},
        "wall_time_s": 1.5,
        "device": "cpu",
        "package_versions": {"torch": "2.1"},
        "created_at": "2026-12-01T00:00:00+00:00",
    }
    return ResultRow(**{**values, **overrides})


def add_rows_worker(url: str, indices: list[int], barrier: Any, results: Any) -> None:
    """A driver in its own process: open the store, wait for the other, add every row; put the
    number of ``add`` calls that returned True (or the traceback) on ``results``."""
    try:
        from privbench.runs.store import ResultStore

        store = ResultStore(url)
        barrier.wait()
        results.put(sum(store.add(sample_row(index)) for index in indices))
    except BaseException:
        barrier.abort()  # the other worker fails at once instead of waiting for this one
        results.put(traceback.format_exc())


def record_failure_worker(url: str, times: int, barrier: Any, results: Any) -> None:
    """A driver in its own process recording the same cell's failure ``times`` times."""
    try:
        from privbench.runs.store import ResultStore

        store = ResultStore(url)
        barrier.wait()
        for attempt in range(times):
            store.record_failure("cell01", "blur × face-id", "b", "1", f"NaN loss ({attempt})")
        results.put(times)
    except BaseException:
        barrier.abort()  # the other worker fails at once instead of waiting for this one
        results.put(traceback.format_exc())


def run_concurrently(worker: Any, url: str, argument: Any, processes: int = 2) -> list[Any]:
    """Run ``worker(url, argument, barrier, results)`` in ``processes`` spawned processes at
    once (a barrier lines them up after each opened the store); their results, or a failure
    with the first worker's traceback."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes, timeout=120), context.Queue()
    workers = [
        context.Process(target=worker, args=(url, argument, barrier, results))
        for _ in range(processes)
    ]
    for process in workers:
        process.start()
    try:
        outcomes = [results.get(timeout=300) for _ in workers]  # a guard against a hang only
    finally:
        for process in workers:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert not errors, errors[0]
    return outcomes
