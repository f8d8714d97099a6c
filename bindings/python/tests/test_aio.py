"""The asyncio client (utp.aio) against real servers: Rust and Python processes, and
hand-written servers in threads for what a correct server never does."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from support import OTHER_UID, ServerProcess, as_other_user, python_server, rust_server, ticking_while, unique_name
from support import run_async as run

from utp import frame
from utp.aio import AsyncClient
from utp.aio import calculate as async_calculate
from utp.errors import CalculatorError, ConnectionClosed, ServiceError, UtpTimeout
from utp.frame import FrameError
from utp.identity import PeerNotTrusted
from utp.stream import UtpFraming


@pytest.mark.parametrize("server_kind", ["rust", "python"])
def test_tasks_share_a_client_and_each_gets_its_own_answer(utp_bin, stream_url, server_kind):
    start = rust_server if server_kind == "rust" else (lambda _bin, url: python_server(url))
    with start(utp_bin, stream_url) as server:
        async def main():
            async with await AsyncClient.connect(server.url) as client:
                sums = await asyncio.gather(*(client.calculate("ADD", i, 1000) for i in range(50)))
                assert sums == [i + 1000 for i in range(50)]
                assert await client.call(b"MUL 6 7") == b"OK 42"
                with pytest.raises(CalculatorError, match="Division by zero"):
                    await client.calculate("DIV", 1, 0)
                # An answer that is an error leaves the connection usable.
                assert await client.calculate("SUB", 1, 2) == -1
            # Several clients at once, each on its own connection.
            results = await asyncio.gather(*(async_calculate(server.url, "MUL", i, 3) for i in range(8)))
            assert results == [i * 3 for i in range(8)]

        run(main())


def test_the_tutorial_framing_is_spoken_with_framing_length(utp_bin, socket_path):
    with rust_server(utp_bin, "unix://" + socket_path) as server:
        async def main():
            async with await AsyncClient.connect(server.url + "?framing=length") as client:
                assert await client.calculate("ADD", 40, 2) == 42
                assert await client.calculate("MUL", -6, 7) == -42

        run(main())


def test_shm_calls_run_beside_the_event_loop(utp_bin, rust_transports):
    rust_transports("shm")
    with rust_server(utp_bin, "shm://" + unique_name()) as server:
        async def main():
            async with await AsyncClient.connect(server.url) as client:
                answers = await asyncio.gather(*(client.calculate("ADD", i, i) for i in range(20)))
                assert answers == [2 * i for i in range(20)]

        run(main())


def serve_by_hand(path: str, answer) -> threading.Thread:
    """A server in a thread: accepts one client on ``path`` and runs ``answer(conn, channel)``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve():
        try:
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                answer(conn, UtpFraming(conn))
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_reply_naming_another_request_is_dropped(socket_path):
    def answer(conn, channel):
        request = channel.receive(5)
        stray = frame.encode(frame.RESPONSE, b"OK 999", sequence=request.sequence + 7,
                             flags=frame.FLAG_CHECKSUM | frame.FLAG_REPLY)
        heartbeat = frame.encode(frame.HEARTBEAT, b"", sequence=50)
        ours = frame.encode(frame.RESPONSE, b"OK 3", sequence=request.sequence,
                            flags=frame.FLAG_CHECKSUM | frame.FLAG_REPLY)
        conn.sendall(stray + heartbeat + ours)
        channel.receive(5)  # the goodbye

    thread = serve_by_hand(socket_path, answer)

    async def main():
        async with await AsyncClient.connect("unix://" + socket_path) as client:
            assert await client.call(b"ADD 1 2") == b"OK 3"

    run(main())
    thread.join(10)


def test_a_silent_server_times_out_and_the_client_closes(socket_path):
    release = threading.Event()
    thread = serve_by_hand(socket_path, lambda conn, channel: release.wait(10))

    async def main():
        client = await AsyncClient.connect("unix://" + socket_path)
        started = time.monotonic()
        with pytest.raises(UtpTimeout, match="no reply"):
            await client.call(b"ADD 1 2", timeout=0.3)
        took = time.monotonic() - started
        assert 0.25 < took < 2.0, took
        with pytest.raises(ConnectionClosed):
            await client.call(b"ADD 1 2")
        await client.close()

    run(main())
    release.set()
    thread.join(10)


def test_the_loop_runs_while_a_call_waits(socket_path):
    def answer(conn, channel):
        request = channel.receive(5)
        time.sleep(0.3)
        conn.sendall(frame.encode(frame.RESPONSE, b"OK 3", sequence=request.sequence,
                                  flags=frame.FLAG_CHECKSUM | frame.FLAG_REPLY))
        channel.receive(5)

    thread = serve_by_hand(socket_path, answer)

    async def main():
        async with await AsyncClient.connect("unix://" + socket_path) as client:
            answer_bytes, ticks = await ticking_while(client.call(b"ADD 1 2"))
            assert answer_bytes == b"OK 3"
            assert ticks >= 10, f"the loop ticked {ticks} times in 0.3 s: the call blocked it"

    run(main())
    thread.join(10)


def test_a_cancelled_call_closes_the_client(socket_path):
    release = threading.Event()
    thread = serve_by_hand(socket_path, lambda conn, channel: release.wait(10))

    async def main():
        client = await AsyncClient.connect("unix://" + socket_path)
        call = asyncio.create_task(client.call(b"ADD 1 2"))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        with pytest.raises(ConnectionClosed, match="closed"):
            await client.call(b"ADD 1 2")

    run(main())
    release.set()
    thread.join(10)


@pytest.mark.parametrize("garbage, kind", [
    (b"GARBAGE!" * 4, frame.BAD_MAGIC),
    # A header announcing 4 GiB: refused before a byte of payload is awaited.
    (frame.encode(frame.RESPONSE, b"", sequence=1)[:8] + b"\xff\xff\xff\xff"
     + frame.encode(frame.RESPONSE, b"", sequence=1)[12:],
     frame.TOO_LARGE),
])
def test_garbage_from_the_server_is_a_frame_error_and_ends_the_client(socket_path, garbage, kind):
    def answer(conn, channel):
        channel.receive(5)
        conn.sendall(garbage)
        time.sleep(0.5)

    thread = serve_by_hand(socket_path, answer)

    async def main():
        client = await AsyncClient.connect("unix://" + socket_path)
        with pytest.raises(FrameError) as refused:
            await client.call(b"ADD 1 2")
        assert refused.value.kind == kind
        with pytest.raises(ConnectionClosed):
            await client.call(b"ADD 1 2")

    run(main())
    thread.join(10)


def test_an_error_frame_is_a_service_error(socket_path):
    def answer(conn, channel):
        request = channel.receive(5)
        channel.reply(frame.ERROR, b"server busy", request.sequence)
        request = channel.receive(5)
        channel.reply(frame.RESPONSE, b"OK 1", request.sequence)
        channel.receive(5)

    thread = serve_by_hand(socket_path, answer)

    async def main():
        async with await AsyncClient.connect("unix://" + socket_path) as client:
            with pytest.raises(ServiceError, match="server busy"):
                await client.call(b"ADD 1 2")
            assert await client.call(b"ADD 0 1") == b"OK 1"

    run(main())
    thread.join(10)


def test_a_server_that_dies_mid_call_is_connection_closed(socket_path):
    def answer(conn, channel):
        channel.receive(5)
        conn.sendall(frame.encode(frame.RESPONSE, b"OK 3", sequence=1)[:20])  # half a header, then gone

    thread = serve_by_hand(socket_path, answer)

    async def main():
        client = await AsyncClient.connect("unix://" + socket_path)
        with pytest.raises(ConnectionClosed):
            await client.call(b"ADD 1 2")

    run(main())
    thread.join(10)


def test_a_server_of_another_user_is_refused(other_user, utp_bin):
    url = "unix://@" + unique_name()
    with ServerProcess(as_other_user([str(utp_bin), "serve", "calc", "--on", url])):
        async def main():
            with pytest.raises(PeerNotTrusted, match=f"served by uid {OTHER_UID}"):
                await AsyncClient.connect(url)
            async with await AsyncClient.connect(f"{url}?allow_uid={OTHER_UID}") as client:
                assert await client.calculate("ADD", 10, 20) == 30

        run(main())
