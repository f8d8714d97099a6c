"""shm:// v2 with a real other user (uid 65534 through setpriv): a server of another user is
refused by Python clients, a client of another user gets an ERROR frame and no region from
the Python server, allow_uid admits, and the Rust binary interoperates on both sides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import (
    OTHER_UID,
    ServerProcess,
    as_other_user,
    other_user_python_utp,
    python_server,
    python_utp,
    run,
    unique_name,
)

from utp.client import Client
from utp.errors import ConnectError
from utp.shm_socket_dir import private_dir, shared_dir, socket_path


def test_a_server_of_another_user_is_refused_even_in_our_directory(other_user, utp_bin) -> None:
    """uid 65534 serves; its socket is moved into root's private directory (as a confused admin or a
    symlink-following tool might): the clients still refuse it by SO_PEERCRED before LINK_HELLO."""
    name = unique_name()
    url = f"shm://{name}?allow_uid=0"  # binds in /tmp/utp-65534.shared, reachable by root
    with ServerProcess(other_user_python_utp("serve", "calc", "--on", url)):
        theirs = socket_path(shared_dir(OTHER_UID), name)
        ours = socket_path(private_dir(), name)
        os.makedirs(private_dir(), mode=0o700, exist_ok=True)
        os.rename(theirs, ours)
        try:
            result = run(python_utp("call", f"shm://{name}", "ADD", "10", "20"))
            assert result.returncode == 2 and result.stdout == "", result
            assert f"shm://{name} is served by uid {OTHER_UID}, not by you (uid 0)" in result.stderr
            assert f"?allow_uid={OTHER_UID}" in result.stderr
            result = run([str(utp_bin), "call", f"shm://{name}", "ADD", "10", "20", "--timeout", "2s"])
            assert result.returncode != 0 and result.stdout == "", result
            assert f"uid {OTHER_UID}" in result.stderr
        finally:
            os.unlink(ours)


@pytest.mark.parametrize("server_kind", ["python", "rust"])
def test_trusting_another_users_server_finds_it_in_its_shared_directory(other_user, utp_bin,
                                                                         server_kind: str) -> None:
    name = unique_name()
    url = f"shm://{name}?allow_uid=0"
    command = (other_user_python_utp("serve", "calc", "--on", url) if server_kind == "python"
               else as_other_user([str(utp_bin), "serve", "calc", "--on", url]))
    with ServerProcess(command):
        with pytest.raises(ConnectError, match="no server at"):  # not looked for without allow_uid
            Client(f"shm://{name}", timeout=2)
        with Client(f"shm://{name}?allow_uid={OTHER_UID}", timeout=5) as client:
            assert client.calculate("ADD", 10, 20) == 30  # the region is 65534's, and trusted


def test_the_python_server_gives_another_user_an_error_and_no_region(other_user, utp_bin) -> None:
    name = unique_name()
    # A server that admits uid 65533 binds in its shared directory, so 65534 can connect ...
    with python_server(f"shm://{name}?allow_uid=65533") as server:
        result = run(other_user_python_utp("call", f"shm://{name}", "ADD", "1", "2"))
        assert result.returncode == 2 and result.stdout == "", result
        assert f"refused a client of uid {OTHER_UID}" in result.stderr, result.stderr  # ... and is told why
        result = run(as_other_user([str(utp_bin), "call", f"shm://{name}", "ADD", "1", "2", "--timeout", "2s"]))
        assert result.returncode != 0 and result.stdout == "", result
        assert f"uid {OTHER_UID}" in result.stderr, result.stderr
        assert "/memfd:utp." not in Path(f"/proc/{server.process.pid}/maps").read_text()  # no region made
        with Client(f"shm://{name}") as client:  # the owner is still served
            assert client.calculate("MUL", 6, 7) == 42
        server.stop()
        assert f"refused a client of uid {OTHER_UID}" in server.drain_log()


def test_a_default_python_server_is_out_of_another_users_reach(other_user) -> None:
    name = unique_name()
    with python_server(f"shm://{name}"):
        result = run(other_user_python_utp("call", f"shm://{name}", "ADD", "1", "2"))
        assert result.returncode == 2 and "no server at" in result.stderr, result


@pytest.mark.parametrize("client_kind", ["python", "rust"])
def test_allow_uid_on_the_python_server_admits_that_user(other_user, utp_bin, client_kind: str) -> None:
    name = unique_name()
    with python_server(f"shm://{name}?allow_uid={OTHER_UID}"):
        command = (other_user_python_utp("call", f"shm://{name}", "MUL", "6", "7") if client_kind == "python"
                   else as_other_user([str(utp_bin), "call", f"shm://{name}", "MUL", "6", "7"]))
        result = run(command)
        assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr
