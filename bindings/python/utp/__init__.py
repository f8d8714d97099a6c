"""utp: a pure-Python client and server for UTP frames over unix, tcp and shm.

Written from the specifications alone (``docs/frame.md``,
``docs/protocol.md``, ``docs/shm-layout.md``), standard library only.

>>> from utp import Client                               # doctest: +SKIP
>>> with Client("unix:///tmp/calc.sock") as client:      # doctest: +SKIP
...     client.calculate("ADD", 10, 20)
30
"""

from .calculator import evaluate
from .client import Client, calculate
from .crc32c import crc32c
from .endpoint import Endpoint, EndpointError, parse
from .errors import (
    CalculatorError,
    ConnectError,
    ConnectionClosed,
    ProtocolError,
    ServiceError,
    UtpError,
    UtpTimeout,
)
from .frame import Frame, FrameError, decode, encode
from .identity import PeerNotTrusted, PeerPolicy
from .server import Server

__all__ = [
    "CalculatorError", "Client", "ConnectError", "ConnectionClosed", "Endpoint", "EndpointError",
    "Frame", "FrameError", "PeerNotTrusted", "PeerPolicy", "ProtocolError", "Server", "ServiceError",
    "UtpError", "UtpTimeout",
    "calculate", "crc32c", "decode", "encode", "evaluate", "parse",
]
