"""The Python servers hold at most ``max_clients`` at once. The stream server makes room by
closing the connection idle the longest (as the Rust server does), or, with none idle,
tells the new client "server busy"; the shm server refuses one client more."""

from __future__ import annotations

import threading
import time

import pytest
from support import ServerProcess, python_utp, unique_name, unique_socket_path

from utp.client import Client
from utp.errors import UtpError
from utp.server import Server


def served_again(url: str) -> None:
    """A new client is served within 10 s (the server may still be letting a client go)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with Client(url, timeout=5) as late:
                assert late.calculate("SUB", 1, 2) == -1
            return
        except UtpError as error:
            if "server busy" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("scheme", ["tcp", "unix"])
def test_a_new_client_takes_the_place_of_the_one_idle_the_longest(scheme):
    url = "tcp://127.0.0.1:0" if scheme == "tcp" else f"unix://{unique_socket_path()}"
    with ServerProcess(python_utp("serve", "calc", "--on", url, "--max-clients", "2")) as server:
        oldest, newer = Client(server.url), Client(server.url)
        try:
            assert oldest.calculate("ADD", 1, 1) == 2
            time.sleep(0.05)
            assert newer.calculate("ADD", 2, 2) == 4
            with Client(server.url, timeout=5) as third:
                assert third.calculate("ADD", 3, 3) == 6
                assert newer.calculate("MUL", 6, 7) == 42, "the newer idle client is kept"
            with pytest.raises(UtpError, match="idle the longest"):
                oldest.calculate("ADD", 4, 4)
        finally:
            oldest.close()
            newer.close()
        assert server.alive()
        assert "idle the longest" in server.drain_log()


def test_with_every_client_busy_a_new_one_is_told_so(socket_path):
    release = threading.Event()

    def slow(request: bytes) -> bytes:
        release.wait(10)
        return b"OK 0"

    server = Server("unix://" + socket_path, slow, max_clients=1)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        busy = Client(server.url, timeout=10)
        call = threading.Thread(target=busy.call, args=(b"ADD 0 0",), daemon=True)
        call.start()
        time.sleep(0.2)  # the call is in the handler: not idle
        with pytest.raises(UtpError, match="server busy: it serves at most 1 clients at once"):
            with Client(server.url, timeout=5) as refused:
                refused.call(b"ADD 1 1")
        release.set()
        call.join(10)
        busy.close()
    finally:
        release.set()
        server.stop()
        serving.join(10)


def test_the_shm_server_refuses_a_client_beyond_the_limit():
    url = f"shm://{unique_name()}"
    with ServerProcess(python_utp("serve", "calc", "--on", url, "--max-clients", "2")) as server:
        first, second = Client(server.url), Client(server.url)
        try:
            assert first.calculate("ADD", 1, 1) == 2
            assert second.calculate("ADD", 2, 2) == 4
            with pytest.raises(UtpError, match="server busy: it serves at most 2 clients at once"):
                with Client(server.url, timeout=5) as third:
                    third.calculate("ADD", 3, 3)
            assert first.calculate("MUL", 6, 7) == 42, "the clients served go on"
        finally:
            first.close()
        served_again(server.url)
        second.close()
        assert server.alive()
        assert "refused a client" in server.drain_log()


def test_a_connection_that_sends_nothing_for_the_idle_timeout_is_closed_and_told_why(socket_path):
    server = Server("unix://" + socket_path, lambda request: b"OK 1", idle_timeout=0.3)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        with Client(server.url) as busy, Client(server.url) as idle:
            assert idle.call(b"ADD 0 1") == b"OK 1"
            for _ in range(8):  # 0.8 s of calls 0.1 s apart: never idle for 0.3 s
                assert busy.call(b"ADD 0 1") == b"OK 1"
                time.sleep(0.1)
            with pytest.raises(UtpError, match=r"nothing received for 0.3s \(idle_timeout\)"):
                idle.call(b"ADD 0 1")
    finally:
        server.stop()
        serving.join(10)
