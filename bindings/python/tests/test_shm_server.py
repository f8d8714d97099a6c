"""The Python shm:// server (a real child process) with Python and Rust clients."""

import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import (assert_healthy, kill_after, python_server, python_utp, run, start_client, unique_name)
from utp import frame
from utp.client import Client, open_channel
from utp.endpoint import parse
from utp.errors import ConnectionClosed
from utp.stream import UtpFraming


def link_names(name):
    return sorted(entry.name for entry in Path("/dev/shm").iterdir() if entry.name.startswith(f"utp.{name}."))


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def shm_name():
    """A unique shm link name."""
    return unique_name()


def test_python_client_and_server_over_shm(shm_name):
    with python_server("shm://" + shm_name) as server:
        with Client(server.url) as client:
            assert client.calculate("ADD", 10, 20) == 30
            assert client.call(b"DIV 1 0") == b"ERR Division by zero"
            assert len(link_names(shm_name)) == 1  # a live link has a name
        assert wait_until(lambda: link_names(shm_name) == [])


def test_rust_cli_calls_python_shm_server(utp_bin, rust_transports, shm_name):
    rust_transports("shm")
    with python_server("shm://" + shm_name) as server:
        result = run([str(utp_bin), "call", server.url, "ADD", "10", "20"])
        assert (result.returncode, result.stdout) == (0, "30\n"), result.stderr
        result = run([str(utp_bin), "call", server.url, "DIV", "1", "0"])
        assert result.returncode == 1 and "Division by zero" in result.stderr
    assert link_names(shm_name) == []


def test_echo_wraps_the_rings_many_times(shm_name):
    with python_server("shm://" + shm_name, service="echo") as server:
        with Client(server.url, timeout=20) as client:
            for turn in range(150):  # about 2.3 MB each way: the 1 MiB rings wrap twice
                payload = bytes([turn % 251]) * (1 + (turn * 7919) % 30000)
                assert client.call(payload) == payload


def test_concurrent_clients_each_get_a_link(shm_name):
    failures = []

    def worker(seed):
        try:
            with Client("shm://" + shm_name) as client:
                for i in range(30):
                    if client.calculate("SUB", seed, i) != seed - i:
                        failures.append((seed, i))
        except Exception as error:
            failures.append((seed, repr(error)))

    with python_server("shm://" + shm_name):
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads) and failures == []


def test_protocol_rules_over_shm(shm_name):
    with python_server("shm://" + shm_name) as server:
        channel = open_channel(parse(server.url), timeout=5)
        try:
            channel.send(frame.DATA, b"x", 5)
            reply = channel.receive(5)
            assert reply.message_type == frame.ERROR and reply.payload.startswith(b"unexpected message type 0x01")
            channel.send(frame.HEARTBEAT, b"", 5)
            channel.send(frame.REQUEST, b"MUL 7 6", 5)
            assert channel.receive(5).payload == b"OK 42"
            channel.send(frame.GOODBYE, b"", 5)
            assert channel.receive(5) is None  # the server closed the link in an orderly way
        finally:
            channel.close()


def test_bad_hello_gets_an_error_frame(shm_name):
    with python_server("shm://" + shm_name):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(b"\0utp/shm/" + shm_name.encode())
        handshake = UtpFraming(sock)
        handshake.send(frame.LINK_HELLO, struct.pack("<IIQ", 2, 0, 0), 5)  # layout version 2
        reply = handshake.receive(5)
        assert reply.message_type == frame.ERROR and b"layout version 2" in reply.payload
        assert handshake.receive(5) is None
        handshake.close()
    assert link_names(shm_name) == []


def test_sigterm_closes_open_links_and_removes_their_names(shm_name):
    server = python_server("shm://" + shm_name)
    client = Client(server.url, timeout=10)
    try:
        assert client.calculate("ADD", 1, 1) == 2
        assert server.stop(signal.SIGTERM) == 0
        assert link_names(shm_name) == []
        with pytest.raises(ConnectionClosed):
            client.call(b"ADD 1 1")
    finally:
        client.close()


def test_second_server_on_the_same_name_is_refused(shm_name):
    with python_server("shm://" + shm_name):
        result = run(python_utp("serve", "calc", "--on", "shm://" + shm_name))
        assert result.returncode == 2 and "already listening" in result.stderr


def test_regions_of_dead_servers_are_reclaimed_on_start(shm_name):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    stale = Path(f"/dev/shm/utp.{shm_name}.{dead.pid}.1")
    stale.write_bytes(b"left behind")
    other = Path(f"/dev/shm/utp.{shm_name}x.{dead.pid}.1")  # another endpoint's name: not ours to touch
    other.write_bytes(b"not ours")
    try:
        with python_server("shm://" + shm_name):
            assert not stale.exists()
            assert other.exists()
    finally:
        for path in (stale, other):
            if path.exists():
                path.unlink()


@pytest.mark.parametrize("mode, says", [("partial", "mid-call"), ("loop", "calls")])
def test_python_shm_server_survives_a_killed_client(utp_bin, rust_transports, shm_name, mode, says):
    rust_transports("shm")  # the health check also runs the Rust client
    with python_server("shm://" + shm_name) as server:
        kill_after(start_client(server.url, mode), says)
        assert_healthy(server, utp_bin)
        assert wait_until(lambda: link_names(shm_name) == []), link_names(shm_name)
