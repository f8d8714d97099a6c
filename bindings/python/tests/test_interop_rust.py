"""Python against the real Rust binary, both ways, on every stream transport it has."""

import os
import subprocess


from support import python_server, python_utp, run, rust_server
from utp import frame
from utp.client import Client, open_channel
from utp.endpoint import parse

def scheme(url):
    return url.split("://", 1)[0]


# -- Rust server, Python client ------------------------------------------------

def test_python_cli_calls_rust_server(utp_bin, rust_transports, stream_url):
    rust_transports(scheme(stream_url))
    with rust_server(utp_bin, stream_url):
        result = run(python_utp("call", stream_url, "ADD", "10", "20"))
        assert (result.returncode, result.stdout, result.stderr) == (0, "30\n", "")
        result = run(python_utp("call", stream_url, "DIV", "1", "0"))
        assert (result.returncode, result.stdout, result.stderr.strip()) == (1, "", "Division by zero")


def test_python_client_speaks_tutorial_framing_to_rust_server(utp_bin, rust_transports, stream_url):
    rust_transports(scheme(stream_url))
    with rust_server(utp_bin, stream_url):
        with Client(stream_url + "?framing=length") as client:
            assert client.calculate("MUL", -6, 7) == -42


def test_rust_server_removes_its_socket_file(utp_bin, socket_path):
    server = rust_server(utp_bin, "unix://" + socket_path)
    assert os.path.exists(socket_path)
    assert server.stop() == 0
    assert not os.path.exists(socket_path)


# -- Python server, Rust client ------------------------------------------------

def test_rust_cli_calls_python_server(utp_bin, rust_transports, stream_url):
    rust_transports(scheme(stream_url))
    with python_server(stream_url) as server:
        result = run([str(utp_bin), "call", server.url, "ADD", "10", "20"])
        assert (result.returncode, result.stdout) == (0, "30\n"), result.stderr
        result = run([str(utp_bin), "call", server.url, "DIV", "1", "0"])
        assert result.returncode == 1 and "Division by zero" in result.stderr
        result = run([str(utp_bin), "call", server.url + "?framing=length", "SUB", "5", "7"])
        assert (result.returncode, result.stdout) == (0, "-2\n"), result.stderr


def test_many_rust_clients_at_once_on_the_python_server(utp_bin, socket_path):
    with python_server("unix://" + socket_path) as server:
        clients = [subprocess.Popen([str(utp_bin), "call", server.url, "MUL", str(n), "3"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for n in range(12)]
        outputs = [client.communicate(timeout=30) for client in clients]
    assert [(client.returncode, out) for client, (out, _err) in zip(clients, outputs, strict=True)] == [
        (0, f"{3 * n}\n") for n in range(12)]


# -- the same requests to both servers give the same replies -------------------

SAME_REPLY_REQUESTS = [
    b"ADD 10 20", b"DIV 7 2", b"DIV 1 0", b"ADD 9223372036854775807 1", b"POW 2 3", b"ADD 1", b"ADD x 2",
    b"\xff\xfe", b"sub 5 7", b"Mul -3 4", b"DIV -7 2", b"DIV 7 -2", b"\tADD\r\n1 \x0c 2\x0b ", b"ADD +1 2",
    b"ADD 0000000000000000000000000000001 1", b"ADD -9223372036854775808 9223372036854775807",
    b"SUB -9223372036854775808 1", b"MUL 4611686018427387904 2", b"DIV -9223372036854775808 -1",
    b"ADD 9223372036854775808 0", b"ADD 1_0 1", b"ADD 1.5 1", "ADD \u0661 1".encode(), b"ADD 1 2 3", b"",
    b"POW x", b"POW x 2", b"ADD x y", b"ADD 1 y", b"DIV x 0", "\u0130DD 1 1".encode(), b"ADD\x00 1 1",
    b"ADD -0 0", b"  ",
]
# docs/protocol.md: fields are separated by ASCII whitespace only, never by
# Unicode spaces (SPEC-NOTES.md, "calculator whitespace", fixed in both).
UNICODE_SPACE_REQUESTS = ["ADD\u00a01 2".encode(), "ADD\u20031 2".encode()]


def replies(url, requests):
    with Client(url) as client:
        return [client.call(request) for request in requests]


def test_python_and_rust_calculators_agree(utp_bin, socket_path):
    rust_url, python_url = "unix://" + socket_path, "unix://" + socket_path + ".py"
    try:
        with rust_server(utp_bin, rust_url), python_server(python_url):
            rust, python = replies(rust_url, SAME_REPLY_REQUESTS), replies(python_url, SAME_REPLY_REQUESTS)
    finally:
        assert not os.path.exists(socket_path + ".py")
    assert list(zip(SAME_REPLY_REQUESTS, python, strict=True)) == list(zip(SAME_REPLY_REQUESTS, rust, strict=True))


def test_unicode_spaces_are_not_separators_in_either(utp_bin, socket_path):
    with rust_server(utp_bin, "unix://" + socket_path):
        for reply in replies("unix://" + socket_path, UNICODE_SPACE_REQUESTS):
            assert reply.startswith(b"ERR Expected 3 fields")


def exchange(url, frames=(), raw=b"", replies=1):
    """Send hand-made frames, then raw bytes, on a fresh connection; read ``replies`` answers.

    Each answer is ``(message_type, payload)``, or ``None`` once the server has closed.
    """
    channel = open_channel(parse(url), timeout=5)
    try:
        for message_type, payload in frames:
            channel.send(message_type, payload, 5)
        if raw:
            channel.sock.sendall(raw)
        answers = [channel.receive(5) for _ in range(replies)]
        return [(answer.message_type, answer.payload) if answer else None for answer in answers]
    finally:
        channel.close()


def test_both_servers_follow_the_request_rules(utp_bin, socket_path):
    rust_url, python_url = "unix://" + socket_path, "unix://" + socket_path + ".py"
    corrupt = bytearray(frame.encode(frame.REQUEST, b"ADD 1 1", sequence=1))
    corrupt[-1] ^= 1
    with rust_server(utp_bin, rust_url), python_server(python_url):
        for url in (rust_url, python_url):
            unexpected, answer = exchange(
                url, [(frame.DATA, b"x"), (frame.HEARTBEAT, b""), (frame.REQUEST, b"ADD 2 2")], replies=2)
            assert unexpected[0] == frame.ERROR, url
            assert unexpected[1].startswith(b"unexpected message type 0x01"), url
            assert answer == (frame.RESPONSE, b"OK 4"), url
            assert exchange(url, [(frame.REQUEST, b"ADD 1 1"), (frame.GOODBYE, b"")], replies=2) == [
                (frame.RESPONSE, b"OK 2"), None], url
            error, closed = exchange(url, raw=bytes(corrupt), replies=2)
            assert error[0] == frame.ERROR and closed is None, (url, error, closed)
