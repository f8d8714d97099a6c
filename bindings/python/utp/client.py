"""Request/response client: one REQUEST out, one RESPONSE (or ERROR) back.

>>> with Client("unix:///tmp/calc.sock") as client:        # doctest: +SKIP
...     client.call(b"ADD 10 20")
b'OK 30'
"""

from __future__ import annotations

import logging
import time

from . import calculator, sockets
from .endpoint import Endpoint, parse
from .errors import CalculatorError, ConnectionClosed, ProtocolError, ServiceError, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, ERROR, FLAG_REPLY, GOODBYE, HEARTBEAT, REQUEST, RESPONSE, Frame
from .stream import LengthFraming, UtpFraming

DEFAULT_TIMEOUT = 5.0

log = logging.getLogger("utp.client")


def _sent_sequence(channel) -> int | None:
    """The sequence number of the last frame ``channel`` sent (None if it has none)."""
    if isinstance(channel, LengthFraming):
        return None  # the tutorial's framing carries no sequence numbers
    following = getattr(channel, "_next_sequence", None)
    return None if following is None else (following - 1) & (2**64 - 1)


def open_channel(endpoint: Endpoint, timeout: float, max_payload: int = DEFAULT_MAX_PAYLOAD):
    """Connect to ``endpoint`` and return a channel with ``send``/``receive``/``close``.

    Stream URLs give a :class:`~utp.stream.UtpFraming` (or
    :class:`~utp.stream.LengthFraming` with ``?framing=length``); ``shm://``
    gives a :class:`~utp.shm_link.ShmLink`.
    """
    if endpoint.scheme == "shm":
        from . import shm  # only loaded when used: it needs ctypes, mmap and futexes

        return shm.connect(endpoint, timeout, max_payload)
    sock = sockets.connect(endpoint, timeout)
    if endpoint.framing == "length":
        return LengthFraming(sock, RESPONSE, max_payload=max_payload)
    return UtpFraming(sock, max_payload=max_payload)


def is_the_answer(frame: Frame | None, ours: int | None, url: str) -> bool:
    """Whether ``frame``, received while waiting for the answer to request ``ours``, is that answer.

    False for frames to drop and wait on: heartbeats, and replies naming
    another request (flag REPLY, docs/protocol.md "Correlation"), dropped
    with a log line. Raises :class:`~utp.errors.ServiceError` for an ERROR
    answer, :class:`~utp.errors.ConnectionClosed` when the server closed
    (``frame`` is None) or said GOODBYE, and
    :class:`~utp.errors.ProtocolError` for any other message.
    """
    if frame is None or frame.message_type == GOODBYE:
        raise ConnectionClosed(f"{url} closed the connection before answering")
    if (frame.message_type in (RESPONSE, ERROR) and frame.flags & FLAG_REPLY
            and ours is not None and frame.sequence != ours):
        log.warning("refused a reply to request %d while waiting for the reply to request %d",
                    frame.sequence, ours)
        return False
    if frame.message_type == RESPONSE:
        return True
    if frame.message_type == ERROR:
        raise ServiceError(frame.payload.decode("utf-8", errors="replace"))
    if frame.message_type == HEARTBEAT:
        return False
    raise ProtocolError(f"expected RESPONSE (0x11) from {url}, got message type 0x{frame.message_type:02x}")


def parse_calculation(reply: bytes) -> int:
    """The number in a calculator's reply; :class:`~utp.errors.CalculatorError` for ``ERR``."""
    try:
        result = calculator.parse_reply(reply)
    except ValueError as error:
        raise ProtocolError(str(error)) from None
    if isinstance(result, str):
        raise CalculatorError(result)
    return result


class Client:
    """A connection to a utp service; :meth:`call` sends one request and waits for its reply.

    ``timeout`` (seconds) bounds connecting and each call. A client is not
    meant to be shared between threads without a lock (requests are never
    pipelined). After a timeout or a broken connection the client is closed
    and further calls raise :class:`~utp.errors.ConnectionClosed`.
    """

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.endpoint = parse(url)
        self.timeout = timeout
        self._channel = open_channel(self.endpoint, timeout, max_payload)

    def call(self, request: bytes, timeout: float | None = None) -> bytes:
        """Send ``request`` as a REQUEST frame and return the RESPONSE payload.

        The timeout is a deadline for the whole call. A reply that names
        another request (flag REPLY, docs/protocol.md "Correlation") is not
        ours: it is dropped with a log line and the call keeps waiting.

        Raises :class:`~utp.errors.ServiceError` when the server answers with
        ERROR, :class:`~utp.errors.UtpTimeout` when no answer comes in time,
        :class:`~utp.errors.ConnectionClosed` when the server goes away, and
        :class:`~utp.frame.FrameError` for an invalid frame.
        """
        if self._channel is None:
            raise ConnectionClosed(f"the client for {self.endpoint.url} is closed")
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            try:
                self._channel.send(REQUEST, bytes(request), timeout)
            except (ConnectionClosed, OSError):
                self._raise_refusal()  # a server that refuses a client says why, then hangs up
                raise
            ours = _sent_sequence(self._channel)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UtpTimeout("only heartbeats arrived")
                frame = self._channel.receive(remaining)
                if is_the_answer(frame, ours, self.endpoint.url):
                    return frame.payload
        except ServiceError:
            raise
        except UtpTimeout as error:
            self._abandon()
            raise UtpTimeout(f"no reply from {self.endpoint.url} within {timeout:g}s ({error})") from None
        except UtpError:
            self._abandon()
            raise
        except OSError as error:
            self._abandon()
            raise ConnectionClosed(f"connection to {self.endpoint.url} failed: {error.strerror or error}") from None

    def calculate(self, op: str, a: int, b: int, timeout: float | None = None) -> int:
        """Ask the calculator for ``op a b``; raises :class:`~utp.errors.CalculatorError` on ``ERR``."""
        return parse_calculation(self.call(calculator.format_request(op, a, b), timeout))

    def close(self) -> None:
        """Say GOODBYE (best effort) and close the connection. Safe to call twice."""
        channel, self._channel = self._channel, None
        if channel is None:
            return
        try:
            channel.send(GOODBYE, b"", 0.5)
        except (UtpError, OSError):
            pass
        channel.close()

    def _raise_refusal(self) -> None:
        """After a failed send: if the server left an ERROR frame before hanging up, raise it."""
        try:
            frame = self._channel.receive(0.05)
        except (UtpError, OSError):
            return
        if frame is not None and frame.message_type == ERROR:
            raise ServiceError(frame.payload.decode("utf-8", errors="replace"))

    def _abandon(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def calculate(url: str, op: str, a: int, b: int, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Connect, compute ``op a b`` on the calculator at ``url``, disconnect."""
    with Client(url, timeout) as client:
        return client.calculate(op, a, b)
