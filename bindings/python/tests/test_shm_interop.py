"""The Python shm:// client (layout v2) against the Rust server (skipped while the Rust build lacks shm)."""

import fcntl
import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from support import (
    assert_healthy,
    kill_after,
    python_server,
    python_utp,
    run,
    rust_server,
    start_client,
    unique_name,
)

from utp import frame
from utp import shm_layout as layout
from utp.client import Client
from utp.errors import ConnectionClosed, UtpTimeout
from utp.shm import receive_frame_with_fds
from utp.shm_socket_dir import private_dir, socket_path
from utp.stream import UtpFraming


@pytest.fixture
def shm_server(utp_bin, rust_transports):
    """A Rust ``utp serve --on shm://NAME calc`` with a unique NAME."""
    rust_transports("shm")
    with rust_server(utp_bin, "shm://" + unique_name()) as server:
        yield server


def link_names(server):
    """Anything named after this server's links in /dev/shm: always nothing in v2 (memfds)."""
    name = server.url[len("shm://"):].partition("?")[0]
    return sorted(entry.name for entry in Path("/dev/shm").iterdir() if f"utp.{name}." in entry.name)


def remove_stale_socket(server):
    """A SIGKILLed server cannot remove its socket file: the test does."""
    path = socket_path(private_dir(), server.url[len("shm://"):].partition("?")[0])
    if os.path.exists(path):
        os.unlink(path)


def memfd_links(pid):
    """The memfd link regions process ``pid`` has mapped (``/memfd:utp.`` in /proc/PID/maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[4] for line in maps.splitlines() if "/memfd:utp." in line})


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_python_cli_calls_rust_server_over_shm(shm_server):
    result = run(python_utp("call", shm_server.url, "ADD", "10", "20"))
    assert (result.returncode, result.stdout, result.stderr) == (0, "30\n", "")
    result = run(python_utp("call", shm_server.url, "DIV", "1", "0"))
    assert (result.returncode, result.stderr.strip()) == (1, "Division by zero")
    assert wait_until(lambda: link_names(shm_server) == [])


def test_many_calls_on_one_link_wrap_the_rings(utp_bin, rust_transports):
    rust_transports("shm")
    with rust_server(utp_bin, "shm://" + unique_name(), service="echo") as server:
        with Client(server.url) as client:
            # The server keeps only what this client offered: no records in
            # pieces (shm-layout.md 4.4), which it does not read, though
            # replies over 16 KiB would go in pieces to a Rust client.
            assert client._channel.attach.features == layout.FEATURE_WAKE_BYTES
            for turn in range(300):  # about 3 MB each way: the 1 MiB rings wrap
                payload = bytes([turn % 251]) * (1 + (turn * 7919) % 20000)
                assert client.call(payload) == payload
            assert memfd_links(server.process.pid) != []  # a live link is a memfd ...
            assert link_names(server) == []  # ... with no name
        assert wait_until(lambda: memfd_links(server.process.pid) == [])


def test_small_rings_wrap_with_padding(utp_bin, rust_transports):
    rust_transports("shm")
    with rust_server(utp_bin, "shm://" + unique_name() + "?ring=4k", service="echo") as server:
        with Client(server.url.partition("?")[0]) as client:
            for turn in range(100):  # 4 KiB rings: padding at the end of almost every lap
                payload = bytes([turn % 251]) * (1 + (turn * 977) % 3000)
                assert client.call(payload) == payload


@pytest.mark.parametrize("wait", ["spin", "adaptive", "block"])
def test_every_wait_strategy_gets_answers(shm_server, wait):
    with Client(f"{shm_server.url}?wait={wait}") as client:
        assert [client.calculate("ADD", i, i) for i in range(20)] == [2 * i for i in range(20)]


def test_concurrent_python_clients_each_get_a_link(shm_server):
    failures = []

    def worker(seed):
        try:
            with Client(shm_server.url) as client:
                for i in range(50):
                    if client.calculate("MUL", seed, i) != seed * i:
                        failures.append((seed, i))
        except Exception as error:
            failures.append((seed, repr(error)))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads) and failures == []


@pytest.mark.parametrize("mode, says", [("partial", "mid-call"), ("loop", "calls")])
def test_rust_server_survives_a_killed_python_shm_client(utp_bin, shm_server, mode, says):
    kill_after(start_client(shm_server.url, mode), says)
    assert_healthy(shm_server, utp_bin)
    assert wait_until(lambda: link_names(shm_server) == []), link_names(shm_server)


def wait_until_stopped(pid):
    """Block until every thread of ``pid`` is stopped (SIGSTOP is delivered asynchronously)."""
    def states():
        tasks = Path(f"/proc/{pid}/task")
        return [(task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks.iterdir()]
    assert wait_until(lambda: all(state in "tT" for state in states())), states()


def test_killed_server_is_noticed_by_a_waiting_client(utp_bin, rust_transports):
    rust_transports("shm")
    server = rust_server(utp_bin, "shm://" + unique_name())
    client = None
    try:
        client = Client(server.url, timeout=30)
        assert client.calculate("ADD", 1, 1) == 2
        names = link_names(server)
        os.kill(server.process.pid, signal.SIGSTOP)  # the next request is never answered ...
        wait_until_stopped(server.process.pid)
        outcome = []
        waiter = threading.Thread(target=lambda: outcome.append(_call_outcome(client)))
        waiter.start()
        time.sleep(0.3)
        server.process.kill()  # ... and then the server dies
        waiter.join(20)
        assert not waiter.is_alive()
        assert outcome and isinstance(outcome[0], ConnectionClosed), outcome
        assert not isinstance(outcome[0], UtpTimeout)
        assert names == []  # nothing was ever named in /dev/shm
    finally:
        if client is not None:
            client.close()
        server.stop(signal.SIGKILL)
        remove_stale_socket(server)


def test_stopped_server_gives_a_timeout_not_a_hang(utp_bin, rust_transports):
    rust_transports("shm")
    server = rust_server(utp_bin, "shm://" + unique_name())
    client = None
    try:
        client = Client(server.url, timeout=10)
        assert client.calculate("ADD", 1, 1) == 2
        os.kill(server.process.pid, signal.SIGSTOP)
        wait_until_stopped(server.process.pid)
        with pytest.raises(UtpTimeout, match="no reply from shm://"):
            client.call(b"ADD 2 2", timeout=0.3)
    finally:
        if client is not None:
            client.close()
        server.stop(signal.SIGKILL)
        remove_stale_socket(server)


def _call_outcome(client):
    try:
        return client.call(b"ADD 2 2")
    except Exception as error:
        return error


def test_orderly_server_shutdown_closes_the_link(utp_bin, rust_transports):
    rust_transports("shm")
    server = rust_server(utp_bin, "shm://" + unique_name())
    client = Client(server.url, timeout=10)
    try:
        assert client.calculate("SUB", 1, 2) == -1
        assert server.stop() == 0
        with pytest.raises(ConnectionClosed):
            client.call(b"ADD 1 1")
    finally:
        client.close()
        server.stop(signal.SIGKILL)
        remove_stale_socket(server)


def test_no_shm_server_is_a_clear_connect_error():
    result = run(python_utp("call", "shm://" + unique_name(), "ADD", "1", "2"))
    assert result.returncode == 2
    assert "no server at shm://" in result.stderr


def test_the_rust_server_refuses_a_v1_client_with_an_error_frame(shm_server):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path(private_dir(), shm_server.url[len("shm://"):]))
    handshake = UtpFraming(sock)
    try:
        handshake.send(frame.LINK_HELLO, struct.pack("<IIQ", 1, 0, 0), 5)
        reply = handshake.receive(5)
        assert reply is not None and reply.message_type == frame.ERROR
        assert b"version 1" in reply.payload and b"version 2" in reply.payload, reply.payload
    finally:
        handshake.close()


def test_the_rust_servers_region_cannot_be_resized_by_a_client(utp_bin, shm_server):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path(private_dir(), shm_server.url[len("shm://"):]))
    try:
        UtpFraming(sock).send(frame.LINK_HELLO, layout.hello_payload(0), 5)
        attach, fds = receive_frame_with_fds(sock, 5, layout.HANDSHAKE_MAX_PAYLOAD)
        assert attach.message_type == frame.LINK_ATTACH and len(fds) == 1
        try:
            assert layout.Attach.decode(attach.payload).kind == layout.KIND_MEMFD
            seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
            assert seals & layout.REQUIRED_SEALS == layout.REQUIRED_SEALS
            with pytest.raises(PermissionError):
                os.ftruncate(fds[0], 0)
        finally:
            os.close(fds[0])
    finally:
        sock.close()
    assert_healthy(shm_server, utp_bin)


def test_a_python_client_asks_the_rust_server_for_a_small_ring(utp_bin, rust_transports):
    rust_transports("shm")
    with rust_server(utp_bin, "shm://" + unique_name(), service="echo") as server:
        with Client(server.url + "?ring=4k") as client:
            assert client._channel.attach.capacity == 4096
            for turn in range(60):
                payload = bytes([turn]) * (1 + (turn * 631) % (4096 - 104))
                assert client.call(payload) == payload


def test_the_rust_client_on_a_python_server_with_small_rings(utp_bin, rust_transports):
    rust_transports("shm")
    name = unique_name()
    with python_server(f"shm://{name}?ring=4k", service="calc") as server:
        for _ in range(3):
            result = run([str(utp_bin), "call", f"shm://{name}", "ADD", "2", "40"])
            assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr
        assert server.alive()


def threads_of(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def test_python_clients_are_served_without_a_thread_each(shm_server):
    """The Python client agrees on wake-up bytes (section 5.3), so the Rust
    server waits for its requests in its event loop instead of giving each
    link a thread; the bytes must really come, or no call would be answered."""
    pid = shm_server.process.pid
    with Client(shm_server.url) as first:
        assert first.calculate("ADD", 1, 2) == 3
        with_one = threads_of(pid)
        clients = [Client(shm_server.url) for _ in range(16)]
        try:
            started = time.monotonic()
            for round_ in range(20):
                for i, client in enumerate(clients):
                    assert client.calculate("ADD", i, round_) == i + round_
            elapsed = time.monotonic() - started
            with_seventeen = threads_of(pid)
        finally:
            for client in clients:
                client.close()
    # A thread per client would add 16; the server's worker pool grows by a
    # few at most (docs/transports.md, "Servers").
    assert with_seventeen < with_one + 8, f"{with_one} threads with 1 client, {with_seventeen} with 17"
    # 320 calls woken by bytes take well under a second; missed wake-ups
    # would leave each call to a 100 ms liveness tick (32 s).
    assert elapsed < 10, f"{elapsed:.1f} s for 320 calls"
