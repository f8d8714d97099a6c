"""Frame encode/decode beyond the shared vectors: rule order, bounds, robustness."""

import random
import struct

import pytest

from utp import frame
from utp.frame import FrameError


def sample(payload=b"hello", **fields):
    fields.setdefault("sequence", 9)
    fields.setdefault("timestamp_us", 10)
    return frame.encode(frame.DATA, payload, **fields)


def test_round_trip_keeps_every_field():
    data = frame.encode(0x7F, b"\x00payload\xff", sequence=2**64 - 1, timestamp_us=123, flags=0xFFFF)
    decoded = frame.decode(data)
    assert (decoded.message_type, decoded.payload, decoded.sequence, decoded.timestamp_us, decoded.flags) == (
        0x7F, b"\x00payload\xff", 2**64 - 1, 123, 0xFFFF)


def test_header_layout_is_little_endian_and_packed():
    data = sample(b"ab", sequence=0x0102030405060708, timestamp_us=0x1112131415161718)
    assert data[:4] == b"BPTU"
    assert data[4] == 1 and data[5] == frame.DATA
    assert struct.unpack_from("<HIQQ", data, 6) == (1, 2, 0x0102030405060708, 0x1112131415161718)
    assert len(data) == 34


def test_without_checksum_flag_the_field_is_zero_and_not_verified():
    data = bytearray(sample(flags=0))
    assert data[28:32] == bytes(4)
    data[-1] ^= 0xFF
    assert frame.decode(bytes(data)).payload == b"hell" + bytes([ord("o") ^ 0xFF])


def test_unknown_flag_bits_are_ignored():
    assert frame.decode(sample(flags=0x8001)).flags == 0x8001


def test_every_proper_prefix_is_truncated():
    data = sample(b"x" * 40)
    for end in range(len(data)):
        with pytest.raises(FrameError) as failure:
            frame.decode(data[:end])
        assert failure.value.kind == frame.TRUNCATED


def test_trailing_bytes_are_not_part_of_the_frame():
    assert frame.decode(sample(b"abc") + b"next frame").payload == b"abc"


def test_rules_apply_in_order():
    data = bytearray(sample())
    data[4] = 9  # bad version ...
    data[0] = 0  # ... but bad magic is checked first
    with pytest.raises(FrameError) as failure:
        frame.decode(bytes(data))
    assert failure.value.kind == frame.BAD_MAGIC

    data = bytearray(sample())
    data[4] = 9
    data[8:12] = struct.pack("<I", 10**9)  # too large, but the version is checked first
    with pytest.raises(FrameError) as failure:
        frame.decode(bytes(data))
    assert failure.value.kind == frame.UNSUPPORTED_VERSION


def test_too_large_is_reported_before_truncated_and_before_reading():
    header = bytearray(sample(b""))
    header[8:12] = struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(FrameError) as failure:
        frame.decode(bytes(header))
    assert failure.value.kind == frame.TOO_LARGE


def test_limit_is_inclusive():
    data = sample(b"x" * 64)
    assert frame.decode(data, max_payload=64).payload == b"x" * 64
    with pytest.raises(FrameError) as failure:
        frame.decode(data, max_payload=63)
    assert failure.value.kind == frame.TOO_LARGE


def test_header_bit_flip_is_a_checksum_mismatch():
    data = bytearray(sample())
    data[20] ^= 0x01  # timestamp
    with pytest.raises(FrameError) as failure:
        frame.decode(bytes(data))
    assert failure.value.kind == frame.CHECKSUM_MISMATCH


def test_random_bytes_only_ever_raise_frame_error():
    rng = random.Random(1234)
    valid = sample(b"0123456789")
    for _ in range(2000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randint(0, len(data) + 2)]
        try:
            frame.decode(bytes(data))
        except FrameError as error:
            assert error.kind in frame.ERROR_KINDS


@pytest.mark.parametrize("fields", [
    {"sequence": -1}, {"sequence": 2**64}, {"timestamp_us": 2**64}, {"flags": 0x10000},
])
def test_encode_rejects_out_of_range_fields(fields):
    with pytest.raises(ValueError):
        sample(**fields)


def test_encode_rejects_out_of_range_type():
    with pytest.raises(ValueError):
        frame.encode(256, b"", sequence=1)


def test_error_kind_must_be_known():
    with pytest.raises(ValueError):
        FrameError("nonsense", "detail")
