"""A pub/sub subscriber for asyncio: :class:`AsyncSubscriber`, read with ``async for``.

>>> async def follow(url):                                         # doctest: +SKIP
...     async with await AsyncSubscriber.connect(url) as prices:
...         async for message in prices:
...             print(message.sequence, message.lost_before, message.payload)

``unix://`` and ``tcp://`` publishers are read on the event loop.
``shm://`` is read by the blocking :class:`~utp.pubsub.Subscriber` in a
thread of its own, a slice of at most 50 ms at a time (its receiver waits
on a futex, which an event loop cannot wait on).

A receive may time out or be cancelled without losing a message: a
message the thread took for a receive that was cancelled is the next
one's, and a stream keeps a header read before a cancelled wait for its
payload. So ``asyncio.wait_for(subscriber.recv(), 1)`` is safe.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import AsyncIterator

from .aio_stream import FrameStream
from .endpoint import parse
from .errors import ConnectError, ConnectionClosed, UtpError, UtpTimeout
from .pubsub import (
    SUBSCRIBE,
    STREAM_MAX_PAYLOAD,
    WAITS,
    Message,
    Subscriber,
    stream_accepted,
    stream_message,
    subscribe_options,
    subscribe_payload,
)

# The longest the shm reader thread waits in one go: how soon a cancelled
# receive's thread is free again, and how soon close() can unmap.
SLICE = 0.05
# The most messages one trip to the shm reader thread brings back. A trip
# costs tens of microseconds, reading a message a few: one message a trip
# read 9-11 k msgs/s from `utp pub`, where the blocking subscriber alone
# read 266 k (2026-12-08, AMD host).
BATCH = 256


def _take_some(blocking: Subscriber) -> list[Message]:
    """On the reader thread: a message within a slice, then those already there."""
    taken = [blocking.recv(SLICE)]
    while len(taken) < BATCH:
        try:
            taken.append(blocking.recv(0))
        except UtpError:
            break  # none there now, or the end, which the next trip reports
    return taken


class AsyncSubscriber:
    """A subscription to a publisher; make one with :meth:`connect` (or :func:`subscribe`).

    ``received`` and ``lost`` count messages as :class:`~utp.pubsub.Subscriber`
    does; iteration ends when the publisher closes or the subscription
    ends (``ended`` then holds the :class:`~utp.errors.ConnectionClosed`
    that says why).
    """

    def __init__(self, url: str, stream: FrameStream | None = None, position: int = 0,
                 blocking: Subscriber | None = None):
        self.url = url
        self.received = 0
        self.lost = 0
        self.position = position
        self.ended: ConnectionClosed | None = None
        self._stream = stream
        self._blocking = blocking
        self._turn = asyncio.Lock()
        self._closed = False
        # shm: one thread, so the blocking subscriber is never used by two
        # at once, and close() runs after the receive in flight.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "utp-subscriber") if blocking else None
        self._in_flight: asyncio.Future[list[Message]] | None = None
        # Messages a trip to the thread brought back, not yet handed out.
        self._taken: collections.deque[Message] = collections.deque()

    @classmethod
    async def connect(cls, url: str, timeout: float = 5.0) -> AsyncSubscriber:
        """Subscribe to the publisher at ``url`` (``shm://``, ``unix://``, ``tcp://``, with the
        options of :func:`utp.pubsub.subscribe`: ``policy=drop|block``, ``block_timeout_ms=N``)."""
        if url.startswith("shm://"):
            blocking = await asyncio.to_thread(Subscriber, url, timeout)
            return cls(url, blocking=blocking, position=blocking.position)
        if not url.startswith(("unix://", "tcp://")):
            raise ConnectError(f"a subscriber reads shm://, unix:// and tcp:// publishers, not {url!r}")
        _, policy, block_timeout_ns = subscribe_options(url)
        stream = await FrameStream.connect(parse(url.split("?", 1)[0]), timeout, STREAM_MAX_PAYLOAD)
        try:
            async with asyncio.timeout(timeout):
                await stream.send(SUBSCRIBE, subscribe_payload(policy, WAITS["block"], block_timeout_ns))
                _, start, _ = stream_accepted(await stream.receive())
        except TimeoutError:
            stream.close()
            raise UtpTimeout(f"{url}: no answer to the subscription within {timeout:g}s") from None
        except BaseException:
            stream.close()
            raise
        return cls(url, stream=stream, position=start)

    async def recv(self, timeout: float | None = None) -> Message:
        """The next message; raises :class:`~utp.errors.UtpTimeout` when none comes within
        ``timeout`` seconds (None: no limit) and :class:`~utp.errors.ConnectionClosed` once
        the publisher has closed or the subscriber is closed."""
        async with self._turn:
            if self._closed:
                raise self.ended or ConnectionClosed(f"the subscriber of {self.url} is closed")
            try:
                async with asyncio.timeout(timeout):
                    message = await (self._next_shared() if self._blocking else self._next_streamed())
            except TimeoutError:
                raise UtpTimeout(f"{self.url}: no message within {timeout:g}s") from None
            except ConnectionClosed as error:
                self.ended = error
                raise
            self.received += 1
            self.lost += message.lost_before
            self.position = message.sequence + 1
            return message

    async def _next_streamed(self) -> Message:
        assert self._stream is not None
        return stream_message(await self._stream.receive(), self.position)

    async def _next_shared(self) -> Message:
        blocking, thread = self._blocking, self._thread
        assert blocking is not None and thread is not None
        while not self._taken:
            if self._closed:
                raise ConnectionClosed(f"the subscriber of {self.url} is closed")
            if self._in_flight is None:
                self._in_flight = asyncio.wrap_future(thread.submit(_take_some, blocking))
            try:
                # Shielded: a cancelled wait leaves the trip (running or
                # done) for the next call, with the messages it takes.
                batch = await asyncio.shield(self._in_flight)
            except asyncio.CancelledError:
                raise
            except UtpTimeout:
                self._in_flight = None  # an empty slice: take another
                continue
            except BaseException:
                self._in_flight = None
                raise
            self._in_flight = None
            self._taken.extend(batch)
        return self._taken.popleft()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Leave (the publisher forgets this subscriber). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.close()
        if self._blocking is not None and self._thread is not None:
            # After the receive in flight (at most a slice): the blocking
            # subscriber unmaps what that receive reads.
            await asyncio.wrap_future(self._thread.submit(self._blocking.close))
            self._thread.shutdown(wait=False)

    async def __aenter__(self) -> AsyncSubscriber:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


async def subscribe(url: str, timeout: float = 5.0) -> AsyncSubscriber:
    """``await AsyncSubscriber.connect(url, timeout)``."""
    return await AsyncSubscriber.connect(url, timeout)
