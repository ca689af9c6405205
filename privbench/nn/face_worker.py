"""Worker processes for the packaged face models (``python -m privbench.nn.face_worker``).

dlib's deep models hold Python's GIL, so the off-the-shelf attack runs them in separate
processes to use the cores a cell reserves (:func:`privbench.nn.face_models.detect_many`). The
workers are plain subprocesses that read pickled requests on stdin and write pickled results
on stdout: unlike ``multiprocessing``'s spawn, they never re-import the user's main script, and
unlike fork they copy no thread state of the parent (torch's pools, Ray's threads). Each loads
the models once and serves every later request of its parent process.
"""

from __future__ import annotations

import atexit
import pickle
import subprocess
import sys
import threading
from typing import Any

from privbench.api.errors import PrivbenchError


class FaceWorkerError(PrivbenchError):
    """A face-model worker process failed (its error is in the message)."""


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "privbench.nn.face_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def send(self, request: tuple) -> None:
        pickle.dump(request, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()

    def receive(self) -> tuple[bool, Any]:
        """(ok, result) or (False, the error's text)."""
        try:
            return pickle.load(self.process.stdout)
        except EOFError:
            return False, f"the worker process exited (code {self.process.poll()})"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


class WorkerPool:
    """``size`` worker processes; :meth:`run` hands one request to each and gathers the results
    in order."""

    def __init__(self, size: int) -> None:
        self.workers = [_Worker() for _ in range(size)]
        self.lock = threading.Lock()

    def run(self, call: str, chunks: list[tuple]) -> list:
        with self.lock:
            if any(w.process.poll() is not None for w in self.workers):
                self.workers = [_Worker() for _ in self.workers]  # replace dead workers
            for worker, args in zip(self.workers, chunks):
                worker.send((call, args))
            # every reply is read before any error is raised: a reply left in a pipe would be
            # taken for the answer to the next request
            replies = [worker.receive() for worker, _ in zip(self.workers, chunks)]
        errors = [value for ok, value in replies if not ok]
        if errors:
            raise FaceWorkerError(f"a face-model worker failed: {errors[0]}")
        return [value for _, value in replies]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


_POOLS: dict[int, WorkerPool] = {}


def worker_pool(size: int) -> WorkerPool:
    """This process's pool of ``size`` workers, started on first use and closed at exit."""
    if size not in _POOLS:
        _POOLS[size] = WorkerPool(size)
        atexit.register(_POOLS[size].close)
    return _POOLS[size]


def serve() -> None:
    """The worker's loop: (call, args) requests in, (ok, result or error text) out."""
    import os

    from privbench.nn.face_models import WORKER_CALLS

    # The replies go to a private copy of stdout; anything a library prints (to Python's
    # stdout or to file descriptor 1) goes to stderr instead of corrupting them.
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    while True:
        try:
            call, args = pickle.load(stdin)
        except EOFError:
            return
        try:
            reply = (True, WORKER_CALLS[call](*args))
        except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
            reply = (False, f"{type(error).__name__}: {error}")
        pickle.dump(reply, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    serve()
