"""Peer identity: the default policy, allow_uid/allow_gid, unknown options, socket files
that are private from their first instant, symlinks refused, and real other users
(uid 65534 through setpriv) refused by Python and Rust clients and servers."""

from __future__ import annotations

import os
import pathlib
import stat
import tempfile
import threading

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
    unique_socket_path,
)

from utp.client import Client
from utp.endpoint import EndpointError, parse
from utp.identity import Credentials, PeerNotTrusted, PeerPolicy
from utp.server import Server


def test_default_policy_trusts_own_uid_and_root_only() -> None:
    policy = parse("unix://@x").policy
    me = os.geteuid()
    stranger = 4243 if me == 4242 else 4242
    assert policy.allows(me, 12345) and policy.allows(0, 0)
    assert not policy.allows(stranger, stranger)


def test_allow_uid_and_allow_gid_widen_it() -> None:
    policy = parse("unix:///tmp/a.sock?allow_uid=4242,4343&allow_gid=77").policy
    assert policy.allows(4242, 1) and policy.allows(4343, 1) and policy.allows(9999, 77)
    assert not policy.allows(9999, 78)


def test_refusals_use_the_rust_librarys_words() -> None:
    policy = PeerPolicy(own_uid=0)
    with pytest.raises(PeerNotTrusted) as refused:
        policy.check_server("shm://calc", "the rendezvous socket", 65534, 65534)
    assert str(refused.value) == (
        "shm://calc is served by uid 65534, not by you (uid 0): the rendezvous socket belongs to "
        "another user, who could read or forge your messages; pass ?allow_uid=65534 to trust it")
    with pytest.raises(PeerNotTrusted) as refused:
        policy.check_client("unix:///x", Credentials(pid=7, uid=65534, gid=65534))
    assert str(refused.value) == (
        "refused a client of uid 65534 (pid 7) on unix:///x: this server runs as uid 0; "
        "add ?allow_uid=65534 to the server's URL to admit it")


@pytest.mark.parametrize("url, expected", [
    ("unix:///tmp/a.sock?allow_uids=65534",
     'unknown option "allow_uids" for unix://; valid options: framing, allow_uid, allow_gid'),
    ("tcp://127.0.0.1:1?allow_uid=0", "the tcp transport cannot tell who the peer is"),
    ("unix://@a?allow_uid=root", "allow_uid='root' is not a comma-separated list of numeric ids"),
    ("shm://a?allow_gid=1,x", "allow_gid='1,x' is not a comma-separated list of numeric ids"),
])
def test_misspelt_or_unenforceable_options_are_errors(url: str, expected: str) -> None:
    with pytest.raises(EndpointError) as error:
        parse(url)
    assert expected in str(error.value)


def test_the_socket_file_is_never_seen_with_a_wider_mode() -> None:
    path = unique_socket_path()
    url = "unix://" + path
    stop = threading.Event()
    seen: list[int] = []

    def watch() -> None:
        while not stop.is_set():
            try:
                seen.append(stat.S_IMODE(os.lstat(path).st_mode))
            except FileNotFoundError:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    old_umask = os.umask(0)  # the most permissive: only the fchmod before bind keeps it private
    try:
        for _ in range(200):
            Server(url, bytes)._close_listener()
    finally:
        os.umask(old_umask)
        stop.set()
        watcher.join()
    assert seen, "the watcher never saw the socket file"
    assert set(seen) == {0o600}, sorted({oct(mode) for mode in seen})
    assert not os.path.exists(path)


def test_a_symlink_at_the_socket_path_is_refused_and_left_alone() -> None:
    # A directory of our own, removed with everything in it (pytest's
    # tmp_path would leave it behind in /tmp).
    with tempfile.TemporaryDirectory() as scratch:
        target = pathlib.Path(scratch) / "precious"
        target.write_bytes(b"precious")
        link = unique_socket_path()
        os.symlink(target, link)
        try:
            with pytest.raises(PeerNotTrusted, match="is a symbolic link"):
                Server("unix://" + link, bytes)
            assert os.path.islink(link) and target.read_bytes() == b"precious"
        finally:
            os.unlink(link)


def test_close_removes_only_the_socket_it_bound() -> None:
    path = unique_socket_path()
    server = Server("unix://" + path, bytes)
    os.unlink(path)
    with open(path, "wb") as replacement:
        replacement.write(b"not ours")
    try:
        server._close_listener()
        with open(path, "rb") as still_there:
            assert still_there.read() == b"not ours"
    finally:
        os.unlink(path)


# -- real other users ------------------------------------------------------------

@pytest.mark.parametrize("server_kind", ["python", "rust"])
def test_the_python_client_refuses_a_server_of_another_user(other_user, utp_bin, server_kind: str) -> None:
    url = "unix://@" + unique_name()
    command = (other_user_python_utp("serve", "calc", "--on", url) if server_kind == "python"
               else as_other_user([str(utp_bin), "serve", "calc", "--on", url]))
    with ServerProcess(command):
        result = run(python_utp("call", url, "ADD", "10", "20"))
        assert result.returncode == 2 and result.stdout == ""
        assert f"{url} is served by uid {OTHER_UID}, not by you (uid 0)" in result.stderr
        assert f"?allow_uid={OTHER_UID}" in result.stderr
        with Client(f"{url}?allow_uid={OTHER_UID}") as client:
            assert client.calculate("ADD", 10, 20) == 30


def test_the_python_server_refuses_a_client_of_another_user_and_keeps_serving(other_user, utp_bin) -> None:
    with python_server("unix://@" + unique_name()) as server:
        result = run(other_user_python_utp("call", server.url, "ADD", "1", "2"))
        assert result.returncode != 0 and result.stdout == "", result
        assert f"refused a client of uid {OTHER_UID}" in result.stderr, result.stderr  # told why
        result = run(as_other_user([str(utp_bin), "call", server.url, "ADD", "1", "2", "--timeout", "2s"]))
        assert result.returncode != 0 and result.stdout == "", result
        assert f"refused a client of uid {OTHER_UID}" in result.stderr, result.stderr
        assert run(python_utp("call", server.url, "ADD", "2", "3")).stdout == "5\n"
        server.stop()
        assert f"refused a client of uid {OTHER_UID}" in server.drain_log()


def test_allow_uid_on_the_python_server_admits_that_user(other_user) -> None:
    with python_server(f"unix://@{unique_name()}?allow_uid={OTHER_UID}") as server:
        plain = server.url.partition("?")[0]
        result = run(other_user_python_utp("call", plain, "MUL", "6", "7"))
        assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr


def test_a_path_socket_admits_another_user_only_when_allowed(other_user) -> None:
    path = unique_socket_path()
    with python_server("unix://" + path) as server:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        result = run(other_user_python_utp("call", server.url, "ADD", "1", "2"))
        assert result.returncode == 2 and result.stdout == "", result
    with python_server(f"unix://{path}?allow_uid={OTHER_UID}") as server:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o666  # who is served is decided at accept
        result = run(other_user_python_utp("call", "unix://" + path, "MUL", "6", "7"))
        assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr


def test_the_rust_server_tells_a_refused_python_client_why(other_user, utp_bin) -> None:
    from support import rust_server

    with rust_server(utp_bin, "unix://@" + unique_name()) as server:
        result = run(other_user_python_utp("call", server.url, "ADD", "1", "2"))
        assert result.returncode != 0 and result.stdout == "", result
        assert f"refused a client of uid {OTHER_UID}" in result.stderr, result.stderr
        assert f"add ?allow_uid={OTHER_UID} to the server's URL" in result.stderr
        assert run(python_utp("call", server.url, "ADD", "2", "3")).stdout == "5\n"
