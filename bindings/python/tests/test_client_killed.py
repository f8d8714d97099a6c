"""A Python client killed with SIGKILL mid-call leaves the server healthy."""

import pytest

from support import assert_healthy, kill_after, python_server, rust_server, start_client


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
