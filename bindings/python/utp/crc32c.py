"""CRC-32C (Castagnoli), the checksum of the UTP frame.

Reflected polynomial ``0x82F63B78``, initial value and final xor
``0xFFFFFFFF`` (the iSCSI/ext4 variant). Check value:
``crc32c(b"123456789") == 0xE3069283``.
"""

_POLYNOMIAL = 0x82F63B78


def _build_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLYNOMIAL if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _build_table()


def crc32c_update(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Continue a CRC-32C over ``data``.

    ``crc`` is the value returned by a previous call (or by :func:`crc32c`);
    start with ``0`` for a fresh checksum. Returns the finalised CRC, so
    ``crc32c_update(crc32c_update(0, a), b) == crc32c(a + b)``.
    """
    table = _TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """Return the CRC-32C of ``data`` as an unsigned 32-bit integer."""
    return crc32c_update(0, data)
