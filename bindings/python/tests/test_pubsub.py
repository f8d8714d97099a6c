"""The Python pub/sub subscriber against a Rust publisher (`utp pub`), and the layout vectors."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from support import REPO_ROOT, unique_name
from utp import pubsub
from utp.errors import ConnectionClosed


def load_vectors() -> dict:
    with open(REPO_ROOT / "docs" / "vectors" / "pubsub-v1.json", encoding="utf-8") as file:
        return json.load(file)


def test_vector_region_decodes():
    v = load_vectors()
    decoded = pubsub.decode_region(bytes.fromhex(v["data_region_hex"]))
    assert (decoded["slot_count"], decoded["slot_size"], decoded["tail"]) == (v["slots"], v["slot_size"], v["tail"])
    want = [(m["sequence"], m["type"], m["timestamp_us"], bytes.fromhex(m["payload_hex"])) for m in v["messages"]]
    assert decoded["messages"] == want
    assert not {m[0] for m in decoded["messages"]} & set(v["lapped"])


def test_vector_payloads():
    v = load_vectors()
    s = v["subscribe"]
    assert pubsub.subscribe_payload(s["policy"], s["wait"], s["block_timeout_ns"]).hex() == s["hex"]
    a = pubsub.Accept.decode(bytes.fromhex(v["accept"]["hex"]))
    assert (a.slot_count, a.slot_size, a.region_len, a.start) == (4, 128, 704, 0)


def start_publisher(utp_bin, url):
    proc = subprocess.Popen([str(utp_bin), "pub", url, "--wait-subscribers", "1", "--linger", "1s"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            return proc, pubsub.Subscriber(url + "?policy=block&block_timeout_ms=10000")
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()  # SIGTERM: the publisher removes its socket
                proc.wait(timeout=20)
                raise
            time.sleep(0.02)


def test_python_subscriber_receives_every_line_from_rust(utp_bin):
    name = unique_name("py-pubsub")
    url = f"shm://{name}"
    proc, sub = start_publisher(utp_bin, url)
    with sub:
        lines = [f"line {i} " + "x" * (i % 50) for i in range(3000)]
        proc.stdin.write(("\n".join(lines) + "\n").encode())
        proc.stdin.close()
        for i, line in enumerate(lines):
            m = sub.recv(timeout=20)
            assert (m.sequence, m.lost_before, m.payload) == (i, 0, line.encode())
            assert m.message_type == 0x05
        assert (sub.received, sub.lost) == (3000, 0)
        with pytest.raises(ConnectionClosed):
            sub.recv(timeout=20)
    assert proc.wait(timeout=20) == 0


def test_python_subscriber_times_out_and_refuses_missing_publisher():
    with pytest.raises(pubsub.ConnectError):
        pubsub.Subscriber(f"shm://{unique_name('py-nobody')}")


def test_python_subscriber_counts_exact_loss(utp_bin):
    name = unique_name("py-pubsub-loss")
    url = f"shm://{name}?slots=16&slot=128"
    proc = subprocess.Popen([str(utp_bin), "pub", url, "--wait-subscribers", "1"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            sub = pubsub.Subscriber(url)
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                proc.wait(timeout=20)
                raise
            time.sleep(0.02)
    with sub:
        proc.stdin.write("".join(f"{i}\n" for i in range(200)).encode())
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0  # all 200 published before we read any
        seen = []
        lost_seen = 0
        while True:
            try:
                m = sub.recv(timeout=5)
            except ConnectionClosed:
                break
            assert m.payload == str(m.sequence).encode()
            seen.append(m.sequence)
            lost_seen += m.lost_before
        assert seen == sorted(seen) and seen[-1] == 199
        assert sub.lost == lost_seen > 0
        assert sub.received + sub.lost == 200


def _stream_publisher(utp_bin, url, args=()):
    """A `utp pub URL` process and a StreamSubscriber connected to it."""
    proc = subprocess.Popen([str(utp_bin), "pub", url, "--wait-subscribers", "1", *args],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            return proc, pubsub.subscribe(url + "?policy=block&block_timeout_ms=10000")
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                proc.wait(timeout=20)
                raise
            time.sleep(0.02)


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
def test_python_stream_subscriber_receives_every_line_in_order(utp_bin, scheme):
    if scheme == "unix":
        url = f"unix:///tmp/{unique_name('py-stream-pubsub')}.sock"
    else:
        import socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"tcp://127.0.0.1:{port}"
    proc, sub = _stream_publisher(utp_bin, url)
    assert isinstance(sub, pubsub.StreamSubscriber)
    with sub:
        lines = [f"{scheme} {i} " + "y" * (i % 70) for i in range(2000)]
        proc.stdin.write(("\n".join(lines) + "\n").encode())
        proc.stdin.close()
        for i, line in enumerate(lines):
            m = sub.recv(timeout=20)
            assert (m.sequence, m.lost_before, m.payload, m.message_type) == (i, 0, line.encode(), 0x05)
        assert (sub.received, sub.lost) == (2000, 0)
        with pytest.raises(ConnectionClosed):
            sub.recv(timeout=20)
    assert proc.wait(timeout=20) == 0


def test_python_stream_subscriber_refuses_other_schemes_and_absent_publishers():
    with pytest.raises(pubsub.ConnectError):
        pubsub.StreamSubscriber("udp://127.0.0.1:9")
    with pytest.raises(pubsub.ConnectError):
        pubsub.subscribe(f"unix:///tmp/{unique_name('py-nobody')}.sock", timeout=1)


def test_a_receive_that_times_out_mid_frame_loses_nothing():
    import socket

    from utp import frame
    from utp.errors import UtpTimeout
    from utp.stream import UtpFraming

    left, right = socket.socketpair()
    with left, right:
        channel = UtpFraming(left)
        data = frame.encode(0x01, b"x" * 100, sequence=7)
        for cut in (10, frame.HEADER_SIZE + 40):  # inside the header, inside the payload
            right.sendall(data[:cut])
            with pytest.raises(UtpTimeout):
                channel.receive(0.05)
            right.sendall(data[cut:])
            got = channel.receive(5)
            assert got is not None and (got.sequence, got.payload) == (7, b"x" * 100)
