"""The Python server (a real child process) with the Python client."""

import os
import random
import signal
import socket
import threading

import pytest

from conftest import make_url
from support import python_server, python_utp, run
from utp import frame
from utp.calculator import evaluate
from utp.client import Client
from utp.errors import ServiceError
from utp.server import Server
from utp.stream import LengthFraming, UtpFraming


def test_calculator_over_every_stream_kind(stream_url):
    with python_server(stream_url) as server:
        with Client(server.url) as client:
            assert client.calculate("ADD", 10, 20) == 30
            assert client.call(b"DIV 1 0") == b"ERR Division by zero"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_and_removes_the_socket_file(socket_path, signum):
    server = python_server("unix://" + socket_path)
    assert os.path.exists(socket_path)
    with Client(server.url) as idle_client:  # an open connection must not hold shutdown up
        assert idle_client.calculate("MUL", 6, 7) == 42
        assert server.stop(signum) == 0
    assert not os.path.exists(socket_path)
    assert "shutting down" in server.drain_log()


def test_tcp_port_zero_is_resolved_in_the_log():
    with python_server("tcp://127.0.0.1:0") as server:
        assert not server.url.endswith(":0")
        assert run(python_utp("call", server.url, "SUB", "1", "3")).stdout == "-2\n"


def test_many_concurrent_clients_get_their_own_answers(socket_path):
    failures = []

    def worker(seed):
        rng = random.Random(seed)
        try:
            with Client("unix://" + socket_path) as client:
                for _ in range(25):
                    op = rng.choice(["ADD", "SUB", "MUL", "DIV"])
                    a, b = rng.randint(-10**6, 10**6), rng.randint(-10**6, 10**6)
                    request = f"{op} {a} {b}".encode()
                    reply = client.call(request)
                    if reply.decode() != evaluate(request):
                        failures.append((request, reply))
        except Exception as error:  # reported below, with the worker's seed
            failures.append((seed, repr(error)))

    with python_server("unix://" + socket_path):
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


def connect_raw(url):
    """A plain socket connected to a ``unix:///PATH`` URL, for sending hand-made bytes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(url[len("unix://"):])
    return sock


def test_protocol_rules_for_other_message_types(socket_path):
    with python_server("unix://" + socket_path) as server:
        conn = UtpFraming(connect_raw(server.url))
        conn.send(frame.DATA, b"hello", 5)
        reply = conn.receive(5)
        assert reply.message_type == frame.ERROR
        assert reply.payload.startswith(b"unexpected message type 0x01")
        conn.send(frame.HEARTBEAT, b"", 5)  # ignored: the next answer is for the request
        conn.send(frame.REQUEST, b"ADD 2 2", 5, flags=0)
        reply = conn.receive(5)
        # The reply names the request it answers: the client's frame number 3.
        assert (reply.message_type, reply.payload, reply.sequence) == (frame.RESPONSE, b"OK 4", 3)
        assert reply.flags & frame.FLAG_CHECKSUM and reply.flags & frame.FLAG_REPLY
        conn.send(frame.GOODBYE, b"", 5)
        assert conn.receive(5) is None  # the server closed
        conn.close()


def test_invalid_frame_closes_only_that_connection(socket_path):
    with python_server("unix://" + socket_path) as server:
        with Client(server.url) as bystander:
            bad = connect_raw(server.url)
            data = bytearray(frame.encode(frame.REQUEST, b"ADD 1 1", sequence=1))
            data[-1] ^= 0x40
            bad.sendall(bytes(data))
            conn = UtpFraming(bad)
            reply = conn.receive(5)
            assert reply.message_type == frame.ERROR and b"checksum_mismatch" in reply.payload
            assert conn.receive(5) is None
            conn.close()
            assert bystander.calculate("ADD", 1, 1) == 2


def test_payload_limit_is_inclusive_and_enforced_before_reading(socket_path):
    with python_server("unix://" + socket_path, service="echo") as server:
        with Client(server.url, timeout=30) as client:
            biggest = bytes(range(256)) * (frame.DEFAULT_MAX_PAYLOAD // 256)
            assert client.call(biggest) == biggest
        sock = connect_raw(server.url)
        header = bytearray(frame.encode(frame.REQUEST, b"", sequence=1))
        header[8:12] = (frame.DEFAULT_MAX_PAYLOAD + 1).to_bytes(4, "little")
        sock.sendall(bytes(header))  # no payload: the server must refuse on the length alone
        conn = UtpFraming(sock)
        reply = conn.receive(5)
        assert reply.message_type == frame.ERROR and b"too_large" in reply.payload
        assert conn.receive(5) is None
        conn.close()


def test_garbage_first_bytes_are_refused_as_bad_magic(socket_path):
    with python_server("unix://" + socket_path) as server:
        sock = connect_raw(server.url)
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        conn = UtpFraming(sock)
        reply = conn.receive(5)
        assert reply.message_type == frame.ERROR and b"bad_magic" in reply.payload
        conn.close()


def test_tutorial_length_framing(socket_path):
    with python_server("unix://" + socket_path) as server:
        conn = LengthFraming(connect_raw(server.url), frame.RESPONSE)
        conn.send(frame.REQUEST, b"ADD 40 2", 5)
        assert conn.receive(5).payload == b"OK 42"
        conn.send(frame.REQUEST, b"\xff", 5)
        assert conn.receive(5).payload == b"ERR Request is not valid UTF-8"
        conn.close()
        with Client(server.url + "?framing=length") as client:
            assert client.calculate("DIV", -7, 2) == -3


def test_echo_service_and_service_error(socket_path):
    with python_server("unix://" + socket_path, service="echo") as server:
        with Client(server.url) as client:
            assert client.call(b"\x00anything\xff") == b"\x00anything\xff"
        conn = UtpFraming(connect_raw(server.url))
        conn.send(frame.TEXT, b"hi", 5)
        assert conn.receive(5).message_type == frame.ERROR
        conn.close()


def test_stale_socket_file_is_replaced(socket_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(socket_path)
    stale.close()  # the file stays, nobody listens
    with python_server("unix://" + socket_path) as server:
        with Client(server.url) as client:
            assert client.calculate("ADD", 1, 2) == 3


def test_second_server_on_a_live_socket_is_refused(socket_path):
    with python_server("unix://" + socket_path):
        result = run(python_utp("serve", "calc", "--on", "unix://" + socket_path))
        assert result.returncode == 2
        assert "already listening" in result.stderr
        assert os.path.exists(socket_path)


def test_failing_handler_answers_error_and_keeps_serving(socket_path):
    def handler(request):
        if request == b"boom":
            raise RuntimeError("handler exploded")
        return request.upper()

    server = Server("unix://" + socket_path, handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with Client(server.url) as client:
            with pytest.raises(ServiceError, match="handler exploded"):
                client.call(b"boom")
            assert client.call(b"fine") == b"FINE"
    finally:
        server.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert not os.path.exists(socket_path)


@pytest.mark.parametrize("kind", ["unix_path", "tcp"])
def test_no_server_is_a_clear_connect_error(kind):
    url, _ = make_url(kind)
    result = run(python_utp("call", url, "ADD", "1", "2"))
    assert result.returncode == 2
    assert "no server at" in result.stderr
