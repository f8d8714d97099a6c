"""Exceptions raised by the utp package; all derive from :class:`UtpError`."""


class UtpError(Exception):
    """Base class of every error this package raises on purpose."""


class ConnectError(UtpError):
    """No connection could be made to the endpoint (no server, refused, timed out)."""


class ConnectionClosed(UtpError):
    """The peer closed the connection (or sent GOODBYE) while an answer was due."""


class UtpTimeout(UtpError, TimeoutError):
    """A blocking operation did not finish within its timeout."""


class ProtocolError(UtpError):
    """The peer sent something the request/response rules do not allow."""


class ServiceError(UtpError):
    """The server answered with an ERROR frame: it could not handle the request at all."""


class CalculatorError(UtpError):
    """The calculator answered ``ERR <message>``; ``str(error)`` is the message."""
