"""asyncio: the calls of :class:`utp.client.Client`, awaited (:class:`AsyncClient`),
and pub/sub subscriptions read with ``async for`` (:class:`AsyncSubscriber`).

>>> import asyncio                                                  # doctest: +SKIP
>>> async def main():
...     async with await AsyncClient.connect("unix:///tmp/calc.sock") as client:
...         return await client.calculate("ADD", 10, 20)
>>> asyncio.run(main())
30

Over ``unix://`` and ``tcp://`` the frames move on the event loop
(asyncio streams; connecting, with its check of who the server is, runs in
a worker thread). Over ``shm://`` each call runs the blocking client in a
worker thread (:func:`asyncio.to_thread`): the link's receiver waits on a
futex, which an event loop cannot wait on.

One client may be shared by many tasks: their calls take turns (requests
are never pipelined). As with the blocking client, a call's timeout is a
deadline for the whole call, a reply naming another request is dropped,
and after a timeout, a broken connection or a cancelled call the client
is closed (a stream left mid-frame must not answer the next call), so
later calls raise :class:`~utp.errors.ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
import threading

from . import calculator
from .aio_stream import FrameStream
from .aio_subscriber import AsyncSubscriber, subscribe
from .client import DEFAULT_TIMEOUT, Client, is_the_answer, parse_calculation
from .endpoint import Endpoint, parse
from .errors import ConnectionClosed, ServiceError, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, GOODBYE, REQUEST

__all__ = ["AsyncClient", "AsyncSubscriber", "calculate", "subscribe"]

class AsyncClient:
    """A connection to a utp service whose calls are awaited; make one with :meth:`connect`."""

    def __init__(self, endpoint: Endpoint, timeout: float, stream: FrameStream | None = None,
                 blocking: Client | None = None):
        self.endpoint = endpoint
        self.timeout = timeout
        self._stream = stream
        self._blocking = blocking
        # Tasks take turns; a worker thread still running a cancelled call
        # holds the thread lock until its own deadline.
        self._turn = asyncio.Lock()
        self._thread_turn = threading.Lock()
        self._closed = False

    @classmethod
    async def connect(cls, url: str, timeout: float = DEFAULT_TIMEOUT,
                      max_payload: int = DEFAULT_MAX_PAYLOAD) -> AsyncClient:
        """Connect to the server at ``url`` (``unix://``, ``tcp://``, ``shm://``) within ``timeout`` seconds.

        The server is checked as the blocking client checks it (who runs it,
        against the URL's ``allow_uid``/``allow_gid``): a server of another
        user raises :class:`~utp.identity.PeerNotTrusted`.
        """
        endpoint = parse(url)
        if endpoint.scheme == "shm":
            blocking = await asyncio.to_thread(Client, url, timeout, max_payload)
            return cls(endpoint, timeout, blocking=blocking)
        return cls(endpoint, timeout, stream=await FrameStream.connect(endpoint, timeout, max_payload))

    async def call(self, request: bytes, timeout: float | None = None) -> bytes:
        """Send ``request`` as a REQUEST frame and return the RESPONSE payload.

        Raises :class:`~utp.errors.ServiceError` when the server answers with
        ERROR, :class:`~utp.errors.UtpTimeout` when no answer comes within the
        timeout (the whole call's), :class:`~utp.errors.ConnectionClosed` when
        the server goes away or the client is closed, and
        :class:`~utp.frame.FrameError` for an invalid frame.
        """
        timeout = self.timeout if timeout is None else timeout
        async with self._turn:
            if self._closed:
                raise ConnectionClosed(f"the client for {self.endpoint.url} is closed")
            if self._blocking is not None:
                return await self._thread_call(bytes(request), timeout)
            return await self._stream_call(bytes(request), timeout)

    async def _thread_call(self, request: bytes, timeout: float) -> bytes:
        try:
            return await asyncio.to_thread(self._blocking_call, request, timeout)
        except asyncio.CancelledError:
            # The worker thread finishes its call (within its deadline);
            # the client closes after it, as a stream client closes at once.
            self._closed = True
            asyncio.get_running_loop().run_in_executor(None, self._blocking_close)
            raise

    def _blocking_call(self, request: bytes, timeout: float) -> bytes:
        with self._thread_turn:
            assert self._blocking is not None
            return self._blocking.call(request, timeout)

    async def _stream_call(self, request: bytes, timeout: float) -> bytes:
        stream = self._stream
        assert stream is not None
        try:
            async with asyncio.timeout(timeout):
                await stream.send(REQUEST, request)
                ours = stream.sent_sequence
                while True:
                    frame = await stream.receive()
                    if is_the_answer(frame, ours, self.endpoint.url):
                        assert frame is not None
                        return frame.payload
        except TimeoutError:
            self._abandon()
            raise UtpTimeout(f"no reply from {self.endpoint.url} within {timeout:g}s") from None
        except asyncio.CancelledError:
            self._abandon()
            raise
        except ServiceError:
            raise  # the server's answer: the connection goes on
        except UtpError:
            self._abandon()
            raise
        except OSError as error:
            self._abandon()
            raise ConnectionClosed(f"connection to {self.endpoint.url} failed: {error.strerror or error}") from None

    async def calculate(self, op: str, a: int, b: int, timeout: float | None = None) -> int:
        """Ask the calculator for ``op a b``; raises :class:`~utp.errors.CalculatorError` on ``ERR``."""
        return parse_calculation(await self.call(calculator.format_request(op, a, b), timeout))

    async def close(self) -> None:
        """Say GOODBYE (best effort, at most 0.5 s) and close the connection. Safe to call twice."""
        async with self._turn:
            if self._closed:
                return
            self._closed = True
            if self._blocking is not None:
                await asyncio.to_thread(self._blocking_close)
                return
            assert self._stream is not None
            try:
                async with asyncio.timeout(0.5):
                    await self._stream.send(GOODBYE, b"")
            except (TimeoutError, UtpError, OSError):
                pass
            self._stream.close()

    def _blocking_close(self) -> None:
        with self._thread_turn:
            assert self._blocking is not None
            self._blocking.close()

    def _abandon(self) -> None:
        self._closed = True
        if self._stream is not None:
            self._stream.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


async def calculate(url: str, op: str, a: int, b: int, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Connect, compute ``op a b`` on the calculator at ``url``, disconnect."""
    async with await AsyncClient.connect(url, timeout) as client:
        return await client.calculate(op, a, b)
