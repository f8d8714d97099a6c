"""The Python servers serve at most ``--max-clients`` at once: one client more is told
"server busy" and closed, and the server goes on (a real server process)."""

from __future__ import annotations

import time

import pytest
from support import ServerProcess, python_utp, unique_name, unique_socket_path

from utp.client import Client
from utp.errors import UtpError


@pytest.mark.parametrize("scheme", ["unix", "shm"])
def test_a_client_beyond_the_limit_is_told_the_server_is_busy(scheme):
    url = f"shm://{unique_name()}" if scheme == "shm" else f"unix://{unique_socket_path()}"
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
        # Once a client has left, there is room again.
        deadline = time.monotonic() + 10
        while True:
            try:
                with Client(server.url, timeout=5) as late:
                    assert late.calculate("SUB", 1, 2) == -1
                break
            except UtpError as error:
                if "server busy" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        second.close()
        assert server.alive()
        assert "refused a client" in server.drain_log()
