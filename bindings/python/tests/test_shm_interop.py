"""The Python shm:// client against the Rust server (skipped while the Rust build lacks shm)."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from support import assert_healthy, kill_after, python_utp, run, rust_server, start_client, unique_name
from utp.client import Client
from utp.errors import ConnectionClosed, UtpTimeout


@pytest.fixture
def shm_server(utp_bin, rust_transports):
    """A Rust ``utp serve --on shm://NAME calc`` with a unique NAME."""
    rust_transports("shm")
    with rust_server(utp_bin, "shm://" + unique_name()) as server:
        yield server


def link_names(server):
    """Region names of this server's links in /dev/shm (``utp.NAME.PID.N``)."""
    name = server.url[len("shm://"):]
    return sorted(entry.name for entry in Path("/dev/shm").iterdir() if entry.name.startswith(f"utp.{name}."))


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
            for turn in range(300):  # about 3 MB each way: the 1 MiB rings wrap
                payload = bytes([turn % 251]) * (1 + (turn * 7919) % 20000)
                assert client.call(payload) == payload
            assert link_names(server) != []  # a live link has a name
        assert wait_until(lambda: link_names(server) == [])


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
        assert all(not os.path.exists("/dev/shm/" + name) for name in names)  # the survivor removed it
    finally:
        if client is not None:
            client.close()
        server.stop(signal.SIGKILL)


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


def test_no_shm_server_is_a_clear_connect_error():
    result = run(python_utp("call", "shm://" + unique_name(), "ADD", "1", "2"))
    assert result.returncode == 2
    assert "no server at shm://" in result.stderr
