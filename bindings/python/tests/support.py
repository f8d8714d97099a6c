"""Helpers shared by the tests: paths, unique names, and real server processes."""

from __future__ import annotations

import functools
import itertools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # bindings/python
REPO_ROOT = PACKAGE_DIR.parents[1]
_counter = itertools.count(1)
_counter_lock = threading.Lock()


def load_frame_vectors() -> dict:
    """The frame test vectors, ``docs/vectors/utp-frames.json`` in this repository."""
    path = REPO_ROOT / "docs" / "vectors" / "utp-frames.json"
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def unique_name(prefix: str = "utp-py") -> str:
    """A name no other test (in this or a parallel pytest process) uses: prefix-pid-counter."""
    with _counter_lock:
        number = next(_counter)
    return f"{prefix}-{os.getpid()}-{number}"


def unique_socket_path() -> str:
    """A fresh socket path in the temp directory (the caller removes it)."""
    return os.path.join(tempfile.gettempdir(), unique_name() + ".sock")


def free_tcp_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def python_env() -> dict:
    """Environment for ``python -m utp`` subprocesses: the package importable without install."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_DIR), env.get("PYTHONPATH")]))
    return env


def python_utp(*args: str) -> list[str]:
    """Command line for ``python -m utp ARGS``."""
    return [sys.executable, "-m", "utp", *args]


def run(command: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run a command to completion, capturing text output, with a timeout."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=python_env())


class ServerProcess:
    """A server running in a child process, stopped with SIGTERM (then SIGKILL) on exit.

    ``url`` is read from the server's ``serving on URL`` log line, so a tcp
    port 0 is resolved to the real port.
    """

    def __init__(self, command: list[str], startup_timeout: float = 15.0):
        self.command = command
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, env=python_env(), start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self._wait_for_serving(startup_timeout)

    def _pump(self) -> None:
        for line in self.process.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for_serving(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.log.append(line)
            match = re.search(r"serving on (\S+)", line)
            if match:
                return match.group(1)
        self.stop()
        raise RuntimeError(f"{self.command} did not start serving; log: {''.join(self.log)!r}")

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server, wait for it, and return its exit code (SIGKILL after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def drain_log(self) -> str:
        """Everything the server logged so far (after it exited, all of it)."""
        while True:
            try:
                line = self._lines.get(timeout=0.5 if self.process.poll() is not None else 0.01)
            except queue.Empty:
                return "".join(self.log)
            if line is None:
                return "".join(self.log)
            self.log.append(line)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def read_line_with_timeout(stream, timeout: float) -> str | None:
    """Read one line from a child's pipe, or ``None`` if none comes within ``timeout`` seconds."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def python_server(url: str, service: str = "calc") -> ServerProcess:
    """``python -m utp serve SERVICE --on URL`` in a child process."""
    return ServerProcess(python_utp("serve", service, "--on", url))


def rust_server(utp_bin, url: str, service: str = "calc") -> ServerProcess:
    """The Rust ``utp serve --on URL SERVICE`` in a child process."""
    return ServerProcess([str(utp_bin), "serve", "--on", url, service])


MID_CALL_CLIENT = str(Path(__file__).with_name("mid_call_client.py"))


def start_client(url, mode):
    """Start ``mid_call_client.py URL MODE`` with its stdout piped."""
    return subprocess.Popen([sys.executable, MID_CALL_CLIENT, url, mode], stdout=subprocess.PIPE, text=True,
                            env=python_env())


def kill_after(client, expected_prefix):
    """Wait for the client's first line (it is mid-call by then), then SIGKILL it."""
    try:
        line = read_line_with_timeout(client.stdout, 20)
        assert line and line.startswith(expected_prefix), f"client said {line!r}"
    finally:
        client.kill()
        client.wait(10)
        client.stdout.close()
    assert client.returncode == -9


def assert_healthy(server, utp_bin):
    """The server is alive and answers both the Python and the Rust client."""
    assert server.alive()
    result = run(python_utp("call", server.url, "ADD", "10", "20"))
    assert (result.returncode, result.stdout) == (0, "30\n"), result.stderr
    result = run([str(utp_bin), "call", server.url, "MUL", "6", "7"])
    assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr


# -- acting as another local user (uid/gid 65534) -----------------------------

OTHER_UID = 65534


def as_other_user(command: list[str]) -> list[str]:
    """``command`` run as uid/gid 65534 with no supplementary groups (needs root)."""
    return ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", *command]


@functools.cache
def python_for_other_user() -> str | None:
    """A Python interpreter uid 65534 can run (the test's own may live under /root), or None."""
    for candidate in (sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3"):
        probe = subprocess.run(as_other_user([candidate, "-c", "import utp"]), capture_output=True,
                               env=python_env(), timeout=30)
        if probe.returncode == 0:
            return candidate
    return None


def other_user_python_utp(*args: str) -> list[str]:
    """``python -m utp ARGS`` as uid 65534 (callers skip first if :func:`python_for_other_user` is None)."""
    python = python_for_other_user()
    assert python is not None, "no Python interpreter uid 65534 can run"
    return as_other_user([python, "-m", "utp", *args])


def run_async(coroutine):
    """Runs an asyncio test body, bounded (a hang fails the test, not the suite)."""
    import asyncio

    return asyncio.run(asyncio.wait_for(coroutine, 60))


async def ticking_while(work):
    """Awaits ``work`` while another task ticks every 5 ms; returns (its result, or the
    exception it raised, and the ticks): how often the loop ran meanwhile."""
    import asyncio

    ticks = 0
    done = asyncio.Event()

    async def tick():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        return await work, ticks
    except Exception as error:  # the caller asserts on it
        return error, ticks
    finally:
        done.set()
        await ticker
