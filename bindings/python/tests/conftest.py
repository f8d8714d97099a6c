"""Fixtures: the Rust ``utp`` binary (built if missing), unique endpoints, cleanup checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from support import REPO_ROOT, free_tcp_port, unique_name, unique_socket_path

NOT_IN_THIS_BUILD = "not available in this build"


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the session, no file named by this test process may remain in the temp dir, /dev/shm
    or this user's shm socket directory."""
    yield
    marker = unique_name().rsplit("-", 1)[0] + "-"  # "utp-py-<pid>-"
    from utp.shm_socket_dir import private_dir  # the shm rendezvous sockets live there

    places = [Path(tempfile.gettempdir()), Path("/dev/shm"), Path(private_dir())]
    leftovers = [str(entry) for place in places if place.is_dir()
                 for entry in place.iterdir() if marker in entry.name]
    assert leftovers == [], f"tests left these behind: {leftovers}"


@pytest.fixture(scope="session")
def utp_bin() -> Path:
    """The Rust CLI: ``$UTP_BIN``, else ``<repo>/target/debug/utp`` (built with cargo if missing)."""
    configured = os.environ.get("UTP_BIN")
    binary = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "utp"
    if binary.exists():
        return binary
    if configured:
        pytest.fail(f"UTP_BIN={configured} does not exist")
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail(f"{binary} is missing and cargo is not on PATH to build it")
    build = subprocess.run([cargo, "build", "-p", "utp-cli"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=1800)
    if build.returncode != 0 or not binary.exists():
        pytest.fail(f"`cargo build -p utp-cli` failed:\n{build.stderr[-4000:]}")
    return binary


@pytest.fixture(scope="session")
def rust_transports(utp_bin):
    """A function ``scheme -> None`` that skips the test if the Rust build lacks that transport."""
    probes = {
        "unix": "unix://@" + unique_name("utp-py-probe"),
        "tcp": "tcp://127.0.0.1:1",
        "shm": "shm://" + unique_name("utp-py-probe"),
    }
    verdicts: dict[str, str | None] = {}

    def require(scheme: str) -> None:
        if scheme not in verdicts:
            probe = subprocess.run([str(utp_bin), "call", probes[scheme], "ADD", "1", "2", "--timeout", "2s"],
                                   capture_output=True, text=True, timeout=30)
            verdicts[scheme] = probe.stderr.strip() if NOT_IN_THIS_BUILD in probe.stderr else None
        if verdicts[scheme]:
            pytest.skip(f"the Rust utp binary has no {scheme}:// transport yet "
                        f"(`utp call` says: {verdicts[scheme].splitlines()[0]})")

    return require


@pytest.fixture
def socket_path():
    """A unique unix socket path, removed afterwards if a test left it behind."""
    path = unique_socket_path()
    yield path
    if os.path.exists(path):
        os.unlink(path)


def make_url(kind: str) -> tuple[str, str | None]:
    """A fresh URL of ``kind`` (unix_path, unix_abstract, tcp) and the file it creates, if any."""
    if kind == "unix_path":
        path = unique_socket_path()
        return "unix://" + path, path
    if kind == "unix_abstract":
        return "unix://@" + unique_name(), None
    if kind == "tcp":
        return f"tcp://127.0.0.1:{free_tcp_port()}", None
    raise ValueError(kind)


@pytest.fixture(params=["unix_path", "unix_abstract", "tcp"])
def stream_url(request):
    """A fresh stream URL, once per kind; any socket file is removed afterwards."""
    url, path = make_url(request.param)
    yield url
    if path and os.path.exists(path):
        os.unlink(path)


@pytest.fixture
def other_user():
    """Skip unless this process can act as uid 65534 (root, setpriv, a Python it can run)."""
    if os.geteuid() != 0:
        pytest.skip("acting as another user needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    from support import python_for_other_user

    if python_for_other_user() is None:
        pytest.skip("no Python interpreter that uid 65534 can run (and read the package with)")
    return 65534
