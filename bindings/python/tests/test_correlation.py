"""Replies name the request they answer (docs/protocol.md, "Correlation")."""

import socket
import threading

from support import rust_server
from utp import frame
from utp.client import Client
from utp.stream import UtpFraming


def test_a_reply_naming_another_request_is_refused(socket_path):
    """A server (or a client sharing the channel) that delivers someone else's
    answer first cannot make the call return it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        with conn:
            channel = UtpFraming(conn)
            request = channel.receive(5)
            stray = frame.encode(frame.RESPONSE, b"OK 999", sequence=request.sequence + 7,
                                 flags=frame.FLAG_CHECKSUM | frame.FLAG_REPLY)
            ours = frame.encode(frame.RESPONSE, b"OK 3", sequence=request.sequence,
                                flags=frame.FLAG_CHECKSUM | frame.FLAG_REPLY)
            conn.sendall(stray + ours)
            channel.receive(5)  # the goodbye

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with Client("unix://" + socket_path) as client:
            assert client.call(b"ADD 1 2") == b"OK 3"
    finally:
        thread.join(10)
        listener.close()


def test_rust_server_replies_name_the_request(utp_bin, socket_path):
    with rust_server(utp_bin, "unix://" + socket_path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(socket_path)
        with sock:
            channel = UtpFraming(sock)
            for _ in range(3):
                channel.send(frame.REQUEST, b"ADD 2 2", 5)
            sent = [1, 2, 3]
            for sequence in sent:
                reply = channel.receive(5)
                assert reply.payload == b"OK 4"
                assert reply.flags & frame.FLAG_REPLY
                assert reply.sequence == sequence


def test_python_server_replies_name_the_request(socket_path):
    from support import python_server
    with python_server("unix://" + socket_path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(socket_path)
        with sock:
            channel = UtpFraming(sock)
            channel._next_sequence = 41
            channel.send(frame.REQUEST, b"MUL 6 7", 5)
            reply = channel.receive(5)
            assert (reply.payload, reply.sequence) == (b"OK 42", 41)
            assert reply.flags & frame.FLAG_REPLY
