"""A threaded request/response server on ``unix://`` and ``tcp://`` endpoints.

Rules from docs/protocol.md: every REQUEST gets exactly one RESPONSE (or one
ERROR if the handler fails); HEARTBEAT is ignored; GOODBYE closes the
connection; any other type is answered with ERROR ``unexpected message type
0x..``; an invalid frame gets an ERROR with the reason (when possible) and
closes that connection only. Each connection chooses UTP or the tutorial's
length framing by its first four bytes.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable

from . import frame as utp_frame
from . import sockets
from .endpoint import parse
from .errors import ConnectionClosed, UtpError, UtpTimeout
from .frame import DEFAULT_MAX_PAYLOAD, ERROR, GOODBYE, HEARTBEAT, REQUEST, RESPONSE, FrameError
from .identity import PeerNotTrusted
from .stream import LengthFraming, SocketReader, UtpFraming, sniff_server_framing

log = logging.getLogger("utp.server")

Handler = Callable[[bytes], bytes]

POLL_INTERVAL = 0.1  # how often idle loops look at the stop flag, in seconds
# Clients served at once (a thread each): at the limit a new client takes the
# place of the connection idle the longest, or, with none idle, gets an ERROR
# "server busy" and is closed (the Rust server's rules and words).
DEFAULT_MAX_CLIENTS = 256
EVICTED = "server full: closing the connection that was idle the longest to admit a new client"
# How long a connection may send nothing before it is closed (the Rust server's default).
DEFAULT_IDLE_TIMEOUT = 300.0


def busy_reason(limit: int) -> str:
    """The ERROR text a client gets when the server already serves ``limit`` clients (the Rust server's words)."""
    return f"server busy: it serves at most {limit} clients at once"


def answer(frame, handler: Handler, url: str) -> tuple[int, bytes] | None:
    """What the request/response rules send back for one frame (other than GOODBYE).

    REQUEST -> ``(RESPONSE, handler(payload))``, or ``(ERROR, reason)`` if the
    handler raises; HEARTBEAT -> ``None`` (ignored); anything else ->
    ``(ERROR, "unexpected message type 0x..")``.
    """
    if frame.message_type == HEARTBEAT:
        return None
    if frame.message_type != REQUEST:
        reason = f"unexpected message type 0x{frame.message_type:02x}: this server answers REQUEST (0x10) frames"
        return ERROR, reason.encode()
    try:
        return RESPONSE, handler(frame.payload)
    except Exception as error:  # a handler bug must not kill the server
        log.exception("handler failed on %s", url)
        return ERROR, f"internal error: {error}".encode()


class Server:
    """Serve ``handler`` (request bytes -> reply bytes) on ``url``, one thread per connection.

    ``frame_timeout`` bounds how long a frame may take to arrive once its
    first byte is in, and how long a reply may take to send; a connection
    that sends nothing for ``idle_timeout`` seconds (None: no limit) is
    told why in an ERROR frame and closed. At most
    ``max_clients`` are served at once: a new client then takes the place of
    the connection idle the longest (told why in an ERROR frame), or, when
    none is idle, gets an ERROR frame ("server busy") and is closed. So no
    client can make the server start threads without end, and idle
    connections (a remote host's over tcp) cannot keep others out.
    """

    def __init__(self, url: str, handler: Handler, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 frame_timeout: float = 10.0, max_clients: int = DEFAULT_MAX_CLIENTS,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT):
        self.endpoint = parse(url)
        if self.endpoint.scheme not in ("unix", "tcp"):
            raise UtpError(f"serving on {self.endpoint.scheme}:// is not supported by the Python package")
        self.handler = handler
        self.max_payload = max_payload
        self.frame_timeout = frame_timeout
        self.max_clients = max(1, max_clients)
        self.idle_timeout = idle_timeout
        self._stop = threading.Event()
        self.policy = self.endpoint.policy  # whom to serve: own uid, root, ?allow_uid/?allow_gid
        self._listener = sockets.listen(self.endpoint)
        self._bound = sockets.socket_file_id(self.endpoint)
        self.url = sockets.bound_url(self.endpoint, self._listener)
        self._threads: dict[threading.Thread, _Connection] = {}
        self._lock = threading.Lock()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop` is called, then clean up and return."""
        log.info("serving on %s", self.url)
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([self._listener], [], [], POLL_INTERVAL)
                if not readable:
                    continue
                try:
                    conn, _ = self._listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                except OSError as error:  # e.g. EMFILE: keep serving the connections we have
                    log.error("cannot accept on %s: %s", self.url, error.strerror or error)
                    self._stop.wait(POLL_INTERVAL)
                    continue
                if self.endpoint.scheme == "unix" and not self._trusted(conn):
                    continue
                if not self._make_room():
                    log.warning("refused a client on %s: %d clients already served", self.url, self.max_clients)
                    refuse(conn, busy_reason(self.max_clients))
                    continue
                self._start_connection(conn)
        finally:
            log.info("shutting down %s", self.url)
            self._close_listener()
            self._join_connections(timeout=2.0)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has been called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return; safe from signal handlers and other threads."""
        self._stop.set()

    def _trusted(self, conn: socket.socket) -> bool:
        """Whether the client on ``conn`` may be served; an untrusted one is logged and closed."""
        try:
            sockets.check_client(self.endpoint, conn, self.policy)
        except PeerNotTrusted as error:
            log.warning("%s", error)
            refuse(conn, str(error))
            return False
        return True

    def _make_room(self) -> bool:
        """Below the limit: True. At it: the connection idle the longest is told to end (its thread
        says why and closes it) and True; False when none is idle."""
        with self._lock:
            if len(self._threads) < self.max_clients:
                return True
            idle = [c for c in self._threads.values() if c.idle_since is not None and not c.evicted]
            victim = min(idle, key=lambda c: c.idle_since or 0.0, default=None)
            if victim is None:
                return False
            victim.evicted = True
        log.warning("%s: %s", self.url, EVICTED)
        try:
            victim.conn.shutdown(socket.SHUT_RD)  # wakes its wait at once
        except OSError:
            pass
        return True

    def _close_listener(self) -> None:
        self._listener.close()
        if self._bound is not None:
            sockets.remove_socket_file(self.endpoint, self._bound)

    def _start_connection(self, conn: socket.socket) -> None:
        connection = _Connection(self, conn)
        thread = threading.Thread(target=self._run_connection, args=(connection,), daemon=True,
                                  name=f"utp-conn-{conn.fileno()}")
        with self._lock:
            self._threads[thread] = connection
        thread.start()

    def _join_connections(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run_connection(self, connection: _Connection) -> None:
        try:
            connection.run()
        finally:
            connection.conn.close()
            with self._lock:
                self._threads.pop(threading.current_thread(), None)


def refuse(conn: socket.socket, reason: str) -> None:
    """Say why in one ERROR frame (best effort, never blocking: the client reads it even if its
    send fails), then close."""
    try:
        conn.setblocking(False)
        conn.send(utp_frame.encode(ERROR, reason.encode(), sequence=0))
    except OSError:
        pass
    conn.close()


class _Connection:
    """One accepted connection: sniff the framing, then answer frames until it ends."""

    def __init__(self, server: Server, conn: socket.socket):
        self.server = server
        self.conn = conn
        self.reader = SocketReader(conn)
        self.framing: UtpFraming | LengthFraming | None = None
        # Both under the server's lock: since when this connection waits for
        # a frame (None while it reads or answers one), and whether the
        # server chose it to make room (it then stops before reading more).
        self.idle_since: float | None = None
        self.evicted = False
        self.idle_expired = False

    def run(self) -> None:
        """Serve this connection until the client leaves, breaks a rule, or the server stops."""
        server = self.server
        try:
            if not self._wait_for_data():
                self._say_why_it_ends()
                return
            self.framing = sniff_server_framing(self.conn, self.reader,
                                                time.monotonic() + server.frame_timeout, server.max_payload)
            while self.framing is not None and self._wait_for_data():
                frame = self.framing.receive(server.frame_timeout)
                if frame is None or frame.message_type == GOODBYE:
                    return
                self._answer(frame)
            if self.evicted or self.idle_expired:
                self._say_why_it_ends()
            elif self.framing is not None and server.stopping:
                self.framing.send(GOODBYE, b"", 0.5)
        except FrameError as error:
            log.warning("closing a connection on %s: invalid frame: %s", server.url, error)
            self._send_error(str(error))
        except (ConnectionClosed, UtpTimeout) as error:
            log.info("closing a connection on %s: %s", server.url, error)
        except OSError as error:
            log.info("closing a connection on %s: %s", server.url, error.strerror or error)

    def _wait_for_data(self) -> bool:
        """Whether a frame has started to arrive (False: the server stops, or chose this
        connection to make room for a new one)."""
        lock = self.server._lock
        started = time.monotonic()
        with lock:
            self.idle_since = started
        limit = self.server.idle_timeout
        arrived = False
        while not self.server.stopping and not self.evicted:
            if self.reader.wait_readable(POLL_INTERVAL):
                arrived = True
                break
            if limit is not None and time.monotonic() - started >= limit:
                self.idle_expired = True
                break
        with lock:
            # Chosen while idle: nothing of the next frame has been read.
            self.idle_since = None
            return arrived and not self.evicted

    def _say_why_it_ends(self) -> None:
        """An ERROR frame for a connection the server ends on its own (made room, idle too long)."""
        if self.evicted:
            self._send_error(EVICTED)
        elif self.idle_expired:
            limit = self.server.idle_timeout
            self._send_error(f"closing an idle connection: nothing received for {limit:g}s (idle_timeout)")

    def _answer(self, frame) -> None:
        reply = answer(frame, self.server.handler, self.server.url)
        if reply is not None and self.framing is not None:
            # The reply names the request it answers (docs/protocol.md, "Correlation").
            self.framing.reply(*reply, frame.sequence, self.server.frame_timeout)

    def _send_error(self, reason: str) -> None:
        framing = self.framing or UtpFraming(self.conn, self.reader)
        try:
            framing.send(ERROR, reason.encode(), 1.0)
        except (UtpError, OSError):
            pass
