"""Frames over a stream socket: short reads, timeouts, framing detection."""

import socket
import struct
import threading
import time

import pytest

from utp import frame
from utp.errors import ConnectionClosed, UtpTimeout
from utp.frame import FrameError
from utp.stream import LengthFraming, SocketReader, UtpFraming, sniff_server_framing


@pytest.fixture
def pair():
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def dribble(sock, data, delay=0.001):
    """Send ``data`` one byte at a time from another thread (forces short reads)."""
    def run():
        for index in range(len(data)):
            sock.sendall(data[index:index + 1])
            time.sleep(delay)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_frames_sent_byte_by_byte_are_reassembled(pair):
    left, right = pair
    data = frame.encode(frame.REQUEST, b"ADD 1 2", sequence=1) + frame.encode(frame.HEARTBEAT, sequence=2)
    sender = dribble(left, data)
    receiver = UtpFraming(right)
    first, second = receiver.receive(10), receiver.receive(10)
    sender.join()
    assert (first.message_type, first.payload, second.message_type) == (frame.REQUEST, b"ADD 1 2", frame.HEARTBEAT)


def test_sequence_numbers_start_at_one_and_count_up(pair):
    left, right = pair
    sender, receiver = UtpFraming(left), UtpFraming(right)
    for _ in range(3):
        sender.send(frame.DATA, b"x", 1)
    assert [receiver.receive(1).sequence for _ in range(3)] == [1, 2, 3]


def test_clean_close_between_frames_is_none(pair):
    left, right = pair
    left.close()
    assert UtpFraming(right).receive(1) is None


def test_close_mid_frame_is_connection_closed(pair):
    left, right = pair
    left.sendall(frame.encode(frame.DATA, b"abcdef", sequence=1)[:35])
    left.close()
    with pytest.raises(ConnectionClosed):
        UtpFraming(right).receive(1)


def test_partial_frame_times_out(pair):
    left, right = pair
    left.sendall(frame.encode(frame.DATA, b"abcdef", sequence=1)[:20])
    with pytest.raises(UtpTimeout):
        UtpFraming(right).receive(0.2)


def test_oversized_length_is_refused_before_the_payload_arrives(pair):
    left, right = pair
    header = bytearray(frame.encode(frame.DATA, b"", sequence=1))
    header[8:12] = struct.pack("<I", 50_000_000)
    left.sendall(bytes(header))  # no payload follows: the check must not wait for it
    with pytest.raises(FrameError) as failure:
        UtpFraming(right).receive(5)
    assert failure.value.kind == frame.TOO_LARGE


def test_checksum_mismatch_on_the_stream(pair):
    left, right = pair
    data = bytearray(frame.encode(frame.DATA, b"abc", sequence=1))
    data[-1] ^= 1
    left.sendall(bytes(data))
    with pytest.raises(FrameError) as failure:
        UtpFraming(right).receive(1)
    assert failure.value.kind == frame.CHECKSUM_MISMATCH


def test_length_framing_round_trip(pair):
    left, right = pair
    client, server = LengthFraming(left, frame.RESPONSE), LengthFraming(right, frame.REQUEST)
    client.send(frame.REQUEST, b"ADD 1 2", 1)
    request = server.receive(1)
    assert (request.message_type, request.payload) == (frame.REQUEST, b"ADD 1 2")
    server.send(frame.HEARTBEAT, b"", 1)  # not sent at all
    server.send(frame.ERROR, b"broken", 1)
    reply = client.receive(1)
    assert (reply.message_type, reply.payload) == (frame.RESPONSE, b"ERR broken")


def test_sniff_picks_utp_for_the_magic(pair):
    left, right = pair
    left.sendall(frame.encode(frame.REQUEST, b"ADD 1 2", sequence=1))
    reader = SocketReader(right)
    framing = sniff_server_framing(right, reader, time.monotonic() + 1)
    assert isinstance(framing, UtpFraming)
    assert framing.receive(1).payload == b"ADD 1 2"


def test_sniff_picks_length_framing_for_a_small_length(pair):
    left, right = pair
    left.sendall(struct.pack("<I", 7) + b"ADD 1 2")
    reader = SocketReader(right)
    framing = sniff_server_framing(right, reader, time.monotonic() + 1)
    assert isinstance(framing, LengthFraming)
    assert framing.receive(1).payload == b"ADD 1 2"


def test_sniff_refuses_a_huge_length_as_bad_magic(pair):
    left, right = pair
    left.sendall(b"GET / HTTP/1.1\r\n")
    with pytest.raises(FrameError) as failure:
        sniff_server_framing(right, SocketReader(right), time.monotonic() + 1)
    assert failure.value.kind == frame.BAD_MAGIC


def test_magic_read_as_a_length_is_above_the_limit():
    # docs/protocol.md says 1,431,589,954; 0x55545042 is 1,431,588,930 (see SPEC-NOTES.md).
    assert struct.unpack("<I", frame.MAGIC_BYTES)[0] == 0x55545042 == 1_431_588_930 > frame.DEFAULT_MAX_PAYLOAD
