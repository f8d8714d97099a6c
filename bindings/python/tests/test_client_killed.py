"""A Python client killed with SIGKILL mid-call leaves the server healthy."""

import subprocess
import sys
from pathlib import Path

import pytest

from support import python_env, python_server, python_utp, read_line_with_timeout, run, rust_server

HELPER = str(Path(__file__).with_name("mid_call_client.py"))


def start_client(url, mode):
    return subprocess.Popen([sys.executable, HELPER, url, mode], stdout=subprocess.PIPE, text=True,
                            env=python_env())


def kill_after(client, expected_prefix):
    try:
        line = read_line_with_timeout(client.stdout, 20)
        assert line and line.startswith(expected_prefix), f"client said {line!r}"
    finally:
        client.kill()
        client.wait(10)
        client.stdout.close()
    assert client.returncode == -9


def assert_healthy(server, utp_bin):
    assert server.alive()
    result = run(python_utp("call", server.url, "ADD", "10", "20"))
    assert (result.returncode, result.stdout) == (0, "30\n"), result.stderr
    result = run([str(utp_bin), "call", server.url, "MUL", "6", "7"])
    assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr


@pytest.mark.parametrize("mode, says", [("partial", "mid-call"), ("loop", "calls")])
def test_rust_server_survives_a_killed_python_client(utp_bin, socket_path, mode, says):
    with rust_server(utp_bin, "unix://" + socket_path) as server:
        kill_after(start_client(server.url, mode), says)
        assert_healthy(server, utp_bin)
        kill_after(start_client(server.url, mode), says)  # and again, to be sure nothing leaked
        assert_healthy(server, utp_bin)


@pytest.mark.parametrize("mode, says", [("partial", "mid-call"), ("loop", "calls")])
def test_python_server_survives_a_killed_python_client(utp_bin, socket_path, mode, says):
    with python_server("unix://" + socket_path) as server:
        kill_after(start_client(server.url, mode), says)
        assert_healthy(server, utp_bin)
