"""A Python client killed with SIGKILL mid-call leaves the server healthy."""

import os

import pytest

from conftest import make_url
from support import assert_healthy, kill_after, python_server, rust_server, start_client

MODES = [("partial", "mid-call"), ("loop", "calls")]


@pytest.fixture(params=["unix_path", "tcp"])
def kill_url(request):
    """A fresh unix or tcp URL; the socket file, if any, is removed afterwards."""
    url, path = make_url(request.param)
    yield url
    if path and os.path.exists(path):
        os.unlink(path)


@pytest.mark.parametrize("mode, says", MODES)
def test_rust_server_survives_a_killed_python_client(utp_bin, rust_transports, kill_url, mode, says):
    rust_transports(kill_url.split("://", 1)[0])
    with rust_server(utp_bin, kill_url) as server:
        kill_after(start_client(server.url, mode), says)
        assert_healthy(server, utp_bin)
        kill_after(start_client(server.url, mode), says)  # and again, to be sure nothing leaked
        assert_healthy(server, utp_bin)


@pytest.mark.parametrize("mode, says", MODES)
def test_python_server_survives_a_killed_python_client(utp_bin, rust_transports, kill_url, mode, says):
    rust_transports(kill_url.split("://", 1)[0])  # the health check also runs the Rust client
    with python_server(kill_url) as server:
        kill_after(start_client(server.url, mode), says)
        assert_healthy(server, utp_bin)
