"""CRC-32C (Castagnoli) against its published check value and known answers."""

from utp.crc32c import crc32c, crc32c_update


def test_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def test_empty_input_is_zero():
    assert crc32c(b"") == 0


def test_known_answers_from_rfc3720():
    # RFC 3720 (iSCSI) appendix B.4 test patterns.
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


def test_update_continues_a_checksum():
    data = bytes(range(256)) * 3
    for split in (0, 1, 100, len(data)):
        assert crc32c_update(crc32c(data[:split]), data[split:]) == crc32c(data)


def test_accepts_bytearray_and_memoryview():
    assert crc32c(bytearray(b"123456789")) == crc32c(memoryview(b"123456789")) == 0xE3069283
