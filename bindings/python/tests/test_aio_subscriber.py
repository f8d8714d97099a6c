"""The asyncio subscriber (utp.aio.AsyncSubscriber) against a Rust publisher (`utp pub`)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time

import pytest
from support import free_tcp_port, ticking_while, unique_name
from support import run_async as run

from utp import frame
from utp.aio import AsyncSubscriber
from utp.aio_stream import FrameStream
from utp.errors import ConnectError, ConnectionClosed, UtpTimeout


def url_of(scheme: str) -> str:
    if scheme == "shm":
        return f"shm://{unique_name('py-aio-pub')}"
    if scheme == "unix":
        return f"unix:///tmp/{unique_name('py-aio-pub')}.sock"
    return f"tcp://127.0.0.1:{free_tcp_port()}"


class Publisher:
    """A `utp pub URL` process, fed lines through stdin; waits for one subscriber."""

    def __init__(self, utp_bin, url: str):
        self.url = url
        self.process = subprocess.Popen([str(utp_bin), "pub", url, "--wait-subscribers", "1", "--linger", "1s"],
                                        stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    async def subscribe(self, options: str = "?policy=block&block_timeout_ms=10000") -> AsyncSubscriber:
        deadline = time.monotonic() + 20
        while True:
            try:
                return await AsyncSubscriber.connect(self.url + options)
            except (ConnectError, OSError, ConnectionClosed):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                await asyncio.sleep(0.02)

    def publish(self, lines, pause: float = 0.0, close: bool = True) -> None:
        assert self.process.stdin is not None
        for line in lines:
            self.process.stdin.write(line.encode() + b"\n")
            if pause:
                self.process.stdin.flush()
                time.sleep(pause)
        self.process.stdin.flush()
        if close:
            self.process.stdin.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the publisher removes its socket
        self.process.wait(timeout=20)
        assert self.process.stderr is not None
        self.process.stderr.close()
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()


@pytest.mark.parametrize("scheme", ["shm", "unix", "tcp"])
def test_every_message_arrives_in_order_and_iteration_ends_with_the_publisher(utp_bin, rust_transports, scheme):
    if scheme == "shm":
        rust_transports("shm")
    lines = [f"{scheme} {i} " + "z" * (i % 60) for i in range(2000)]
    with Publisher(utp_bin, url_of(scheme)) as publisher:
        async def main():
            subscriber = await publisher.subscribe()
            async with subscriber:
                threading.Thread(target=publisher.publish, args=(lines,), daemon=True).start()
                got = [message async for message in subscriber]
            assert [m.payload for m in got] == [line.encode() for line in lines]
            assert [m.sequence for m in got] == list(range(2000))
            assert all(m.lost_before == 0 and m.message_type == 0x05 for m in got)
            assert (subscriber.received, subscriber.lost) == (2000, 0)
            assert isinstance(subscriber.ended, ConnectionClosed)

        run(main())
        assert publisher.process.wait(timeout=20) == 0


@pytest.mark.parametrize("scheme", ["shm", "unix"])
def test_receives_cut_short_by_timeouts_lose_nothing(utp_bin, rust_transports, scheme):
    """Hundreds of receives cancelled by wait_for while messages trickle in: each
    message still arrives once, in order."""
    if scheme == "shm":
        rust_transports("shm")
    lines = [f"tick {i}" for i in range(150)]
    with Publisher(utp_bin, url_of(scheme)) as publisher:
        async def main():
            subscriber = await publisher.subscribe()
            async with subscriber:
                feeder = threading.Thread(target=publisher.publish, args=(lines, 0.002), daemon=True)
                feeder.start()
                got, cut_short = [], 0
                while len(got) < len(lines):
                    try:
                        got.append(await asyncio.wait_for(subscriber.recv(), 0.001))
                    except TimeoutError:
                        cut_short += 1
                assert [m.payload.decode() for m in got] == lines
                assert subscriber.lost == 0
                assert cut_short > 20, f"only {cut_short} receives were cut short: the test tested little"

        run(main())


def test_a_frame_split_by_a_cancelled_receive_is_read_whole_by_the_next():
    left, right = socket.socketpair()

    async def main():
        reader, writer = await asyncio.open_connection(sock=left)
        stream = FrameStream(reader, writer, max_payload=1 << 20)
        data = frame.encode(0x01, b"x" * 100, sequence=7)
        for cut in (10, frame.HEADER_SIZE + 40):  # inside the header, inside the payload
            right.sendall(data[:cut])
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(stream.receive(), 0.05)
            right.sendall(data[cut:])
            got = await asyncio.wait_for(stream.receive(), 5)
            assert got is not None and (got.sequence, got.payload) == (7, b"x" * 100)
        stream.close()

    with right:
        run(main())


def test_a_quiet_publisher_times_out_the_receive_but_not_the_loop(utp_bin, rust_transports):
    rust_transports("shm")
    with Publisher(utp_bin, url_of("shm")) as publisher:
        async def main():
            subscriber = await publisher.subscribe()
            async with subscriber:
                started = time.monotonic()
                outcome, ticks = await ticking_while(subscriber.recv(timeout=0.3))
                took = time.monotonic() - started
                assert isinstance(outcome, UtpTimeout), outcome
                assert 0.25 < took < 2.0, took
                assert ticks >= 10, f"the loop ticked {ticks} times in 0.3 s: the receive blocked it"
                publisher.publish(["late"])
                message = await subscriber.recv(timeout=10)
                assert message.payload == b"late"

        run(main())


def test_closing_while_a_receive_waits_ends_it_cleanly(utp_bin, rust_transports):
    rust_transports("shm")
    with Publisher(utp_bin, url_of("shm")) as publisher:
        async def main():
            subscriber = await publisher.subscribe()
            waiting = asyncio.create_task(subscriber.recv())
            await asyncio.sleep(0.1)
            await subscriber.close()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(waiting, 5)
            await subscriber.close()  # twice is fine
            with pytest.raises(ConnectionClosed):
                await subscriber.recv()

        run(main())


def test_other_schemes_and_absent_publishers_are_refused():
    async def main():
        with pytest.raises(ConnectError):
            await AsyncSubscriber.connect("udp://127.0.0.1:9")
        with pytest.raises(ConnectError):
            await AsyncSubscriber.connect(f"unix:///tmp/{unique_name('py-nobody')}.sock", timeout=1)
        with pytest.raises(ConnectError):
            await AsyncSubscriber.connect(f"shm://{unique_name('py-nobody')}", timeout=1)

    run(main())
