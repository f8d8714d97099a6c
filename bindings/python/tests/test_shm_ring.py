"""The shm ring and layout on an anonymous mapping: records, padding, and hostile indices."""

import ctypes
import mmap
import struct

import pytest

from utp import frame, shm_layout as layout
from utp.frame import FrameError
from utp.errors import ProtocolError
from utp.shm_layout import record_length
from utp.shm_ring import RingCorrupt, RingFull, RingReader, RingWriter, RingWords

CAPACITY = 4096


class Region:
    """An anonymous region laid out like a link with one ring of CAPACITY bytes under test."""

    def __init__(self):
        self.map = mmap.mmap(-1, layout.region_length(CAPACITY))
        self.view = memoryview(self.map)
        self.u64, self.u32 = self.view.cast("Q"), self.view.cast("I")
        self.anchor = ctypes.c_char.from_buffer(self.map)
        base = ctypes.addressof(self.anchor)
        self.words = lambda: RingWords(self.view, self.u64, self.u32, base, layout.RING1_INDEX,
                                        layout.DATA_OFFSET, CAPACITY)
        self.writer = RingWriter(self.words())
        self.reader = RingReader(self.words(), frame.DEFAULT_MAX_PAYLOAD)

    def set_tail(self, value):
        self.u64[(layout.RING1_INDEX + layout.INDEX_TAIL) // 8] = value

    def set_head(self, value):
        self.u64[(layout.RING1_INDEX + layout.INDEX_HEAD) // 8] = value

    def data(self, offset, raw):
        start = layout.DATA_OFFSET + offset
        self.map[start:start + len(raw)] = raw

    def close(self):
        self.writer = self.reader = None
        self.u64.release(), self.u32.release(), self.view.release()
        self.anchor = None
        self.map.close()


@pytest.fixture
def region():
    made = Region()
    yield made
    made.close()


def encoded(payload, sequence=1):
    return frame.encode(frame.DATA, payload, sequence=sequence)


def test_record_length_rounds_up_to_a_cache_line():
    assert [record_length(n) for n in (0, 1, 32, 33, 96, 97)] == [64, 64, 64, 128, 128, 192]


def test_frames_round_trip_through_many_wraps(region):
    sizes = [0, 1, 7, 100, 1000, 3000, 5, 4064 - 32, 64]
    sent = received = 0
    for turn in range(200):
        payload = bytes([turn % 256]) * sizes[turn % len(sizes)]
        while not region.writer.try_write(encoded(payload, turn + 1)):
            got = region.reader.try_read()
            if got is None:  # it only consumed a padding marker
                continue
            assert got.payload == bytes([received % 256]) * sizes[received % len(sizes)]
            received += 1
        sent += 1
    while (got := region.reader.try_read()) is not None:
        assert got.sequence == received + 1
        received += 1
    assert sent == received == 200
    assert region.reader.try_read() is None


def test_padding_marker_fills_the_end(region):
    assert region.writer.try_write(encoded(b"a" * 3000))  # record of 3072 bytes
    assert region.reader.try_read().payload == b"a" * 3000
    assert region.writer.try_write(encoded(b"b" * 2000))  # 2048 > 1024 left: pad, then at offset 0
    marker, length = struct.unpack_from("<II", region.map, layout.DATA_OFFSET + 3072)
    assert (marker, length) == (layout.PADDING_MAGIC, CAPACITY - 3072)
    assert region.writer.record_bytes == 3072 + 2048  # the padding is not counted
    assert region.reader.try_read().payload == b"b" * 2000


def test_full_ring_refuses_until_read(region):
    assert region.writer.try_write(encoded(b"x" * 3000))
    assert not region.writer.try_write(encoded(b"y" * 3000))
    region.reader.try_read()
    assert region.writer.try_write(encoded(b"y" * 3000))


def test_record_bigger_than_the_ring_is_refused(region):
    with pytest.raises(RingFull):
        region.writer.try_write(encoded(b"z" * (CAPACITY - 31)))
    assert region.writer.try_write(encoded(b"z" * (CAPACITY - 32)))


def test_tail_too_far_ahead_is_corrupt_and_stays_so(region):
    region.set_tail(CAPACITY + 8)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()
    region.set_tail(0)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_tail_moving_back_is_corrupt(region):
    region.writer.try_write(encoded(b"1"))
    region.writer.try_write(encoded(b"2"))
    region.reader.try_read()  # the reader saw tail 128
    region.set_tail(64)
    region.reader.try_read()  # the cached tail still covers the second record
    with pytest.raises(RingCorrupt):
        region.reader.try_read()  # now it reloads the tail: 64 < 128


def test_wrong_padding_length_is_corrupt(region):
    region.data(0, struct.pack("<II", layout.PADDING_MAGIC, 64))
    region.set_tail(64)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_garbage_header_is_corrupt(region):
    region.data(0, b"\xee" * 64)
    region.set_tail(64)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_record_overrunning_the_published_bytes_is_corrupt(region):
    data = encoded(b"q" * 100)
    region.data(0, data)
    region.set_tail(64)  # publishes less than the 192-byte record
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_fewer_than_64_published_bytes_is_corrupt(region):
    region.set_tail(32)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_checksum_mismatch_skips_only_that_frame(region):
    region.writer.try_write(encoded(b"bad"))
    region.writer.try_write(encoded(b"good", 2))
    region.map[layout.DATA_OFFSET + 32] ^= 0xFF
    with pytest.raises(FrameError) as failure:
        region.reader.try_read()
    assert failure.value.kind == frame.CHECKSUM_MISMATCH
    assert region.reader.try_read().payload == b"good"


def test_head_outside_its_range_is_corrupt_for_the_writer(region):
    region.writer.try_write(encoded(b"x" * 3000))
    region.set_head(10_000)
    with pytest.raises(RingCorrupt):
        region.writer.try_write(encoded(b"y" * 3000))


def attach_payload(kind=layout.KIND_POSIX, capacity=CAPACITY, region_len=None, name=b"/utp.calc.1.1",
                   version=1):
    region_len = layout.region_length(capacity) if region_len is None else region_len
    return struct.pack("<IIQQiIHH", version, kind, region_len, capacity, -1, 7, len(name), 0) + name


def test_attach_decodes():
    attach = layout.Attach.decode(attach_payload())
    assert (attach.kind, attach.capacity, attach.link_id, attach.name) == (1, CAPACITY, 7, "/utp.calc.1.1")


@pytest.mark.parametrize("payload", ids=["short", "name_overrun", "version", "capacity_not_power",
                                         "capacity_small", "region_len", "kind", "name_not_utf8"], argvalues=[
    attach_payload()[:30],
    attach_payload()[:-1],
    attach_payload(version=2),
    attach_payload(capacity=5000),
    attach_payload(capacity=2048),
    attach_payload(region_len=999),
    attach_payload(kind=9),
    attach_payload(name=b"/\xff"),
])
def test_bad_attach_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        layout.Attach.decode(payload)


@pytest.mark.parametrize("name, kind, accepted", [
    (b"/utp.calc.4242.7", layout.KIND_POSIX, True),
    (b"/utp.calc.", layout.KIND_POSIX, False),
    (b"/utp.calculator.1.1", layout.KIND_POSIX, False),
    (b"/utp.other.1.1", layout.KIND_POSIX, False),
    (b"/etc.passwd", layout.KIND_POSIX, False),
    (b"/utp.calc./../../etc/passwd", layout.KIND_POSIX, False),
    (b"/utp.calc.5.77.1", layout.KIND_POSIX, False),  # a link of shm://calc.5, not of shm://calc
    (b"/tmp/calc.link.1.1", layout.KIND_FILE, False),
    (b"", layout.KIND_SYSV, False),
])
def test_region_must_be_named_after_the_endpoint(name, kind, accepted):
    attach = layout.Attach.decode(attach_payload(kind=kind, name=name))
    if accepted:
        attach.check_named_after("calc")
    else:
        with pytest.raises(ProtocolError):
            attach.check_named_after("calc")


def test_control_header_checks(region):
    attach = layout.Attach.decode(attach_payload())
    with pytest.raises(Exception, match="magic"):
        layout.check_control_header(region.map, attach)
    struct.pack_into("<IIQQQI", region.map, 0, layout.CONTROL_MAGIC, 1, layout.region_length(CAPACITY),
                     CAPACITY, layout.DATA_OFFSET, 7)
    layout.check_control_header(region.map, attach)
    struct.pack_into("<Q", region.map, 16, CAPACITY * 2)
    with pytest.raises(Exception, match="capacity"):
        layout.check_control_header(region.map, attach)


def test_rendezvous_name_and_hello():
    assert layout.socket_name("calc") == b"\0utp/shm/calc"
    assert layout.hello_payload() == bytes.fromhex("01000000" "00000000" "0000000000000000")
