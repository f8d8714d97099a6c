"""The shm ring and layout (v2) on an anonymous mapping: stamped records, padding, hostile stamps."""

import ctypes
import mmap
import struct

import pytest

from utp import frame
from utp import shm_layout as layout
from utp.errors import ProtocolError
from utp.frame import FrameError
from utp.shm_layout import record_length
from utp.shm_ring import RingCorrupt, RingFull, RingReader, RingWords, RingWriter

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

    def set_stamp(self, offset, value):
        self.u64[(layout.DATA_OFFSET + offset) // 8] = value

    def stamp(self, offset):
        return self.u64[(layout.DATA_OFFSET + offset) // 8]

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


def test_record_length_counts_the_stamp_and_rounds_up_to_a_cache_line():
    assert [record_length(n) for n in (0, 1, 24, 25, 88, 89)] == [64, 64, 64, 128, 128, 192]
    assert layout.max_payload_for(CAPACITY) == CAPACITY - 104


def test_frames_round_trip_through_many_wraps(region):
    sizes = [0, 1, 7, 100, 1000, 3000, 5, CAPACITY - 104, 64]
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


def test_stamps_mark_records_padding_and_the_slack_line(region):
    assert region.writer.try_write(encoded(b"a" * 3000))  # record of 3072 bytes
    assert region.stamp(0) == 3072 and region.stamp(3072) == 0  # published; the next line still free
    assert region.stamp(64) == int.from_bytes(b"a" * 8, "little")  # payload bytes at a line start ...
    assert region.reader.try_read().payload == b"a" * 3000
    assert all(region.stamp(line) == 0 for line in range(0, 3072, 64))  # ... zeroed when released
    assert region.writer.try_write(encoded(b"b" * 2000))  # 2048 > 1024 left: pad, then at offset 0
    assert region.stamp(3072) == CAPACITY | 1  # padding: the end of the lap, bit 0 set
    assert region.stamp(0) == CAPACITY + 2048
    assert region.writer.record_bytes == 3072 + 2048  # the padding is not counted
    assert region.reader.try_read().payload == b"b" * 2000
    assert region.reader.try_read() is None


def test_full_ring_refuses_until_read(region):
    assert region.writer.try_write(encoded(b"x" * 3000))
    assert not region.writer.try_write(encoded(b"y" * 3000))
    region.reader.try_read()
    # Room at the end of the lap is padded; the record waits for the reader to pass the padding.
    assert not region.writer.try_write(encoded(b"y" * 3000))
    assert region.reader.try_read() is None
    assert region.writer.try_write(encoded(b"y" * 3000))
    assert region.reader.try_read().payload == b"y" * 3000


def test_the_largest_record_leaves_the_slack_line(region):
    with pytest.raises(RingFull):
        region.writer.try_write(encoded(b"z" * (CAPACITY - 103)))
    assert region.writer.try_write(encoded(b"z" * (CAPACITY - 104)))
    assert region.reader.try_read().payload == b"z" * (CAPACITY - 104)


@pytest.mark.parametrize("stamp", [
    64 | 2,  # reserved bits set
    32,  # under 64 bytes
    CAPACITY + 64,  # past the end of the data area
    (1 << 64) - 64,  # "behind" head
], ids=["reserved_bits", "short", "past_the_end", "behind_head"])
def test_a_bad_stamp_is_corrupt_and_stays_so(region, stamp):
    region.set_stamp(0, stamp)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()
    region.set_stamp(0, 0)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_wrong_padding_length_is_corrupt(region):
    region.set_stamp(0, 64 | 1)  # padding must reach the end of the lap
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_garbage_header_is_corrupt(region):
    region.data(8, b"\xee" * 56)
    region.set_stamp(0, 64)
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_header_length_disagreeing_with_the_stamp_is_corrupt(region):
    region.data(8, encoded(b"q" * 100))  # a 192-byte record...
    region.set_stamp(0, 64)  # ...stamped as 64 bytes
    with pytest.raises(RingCorrupt):
        region.reader.try_read()


def test_a_payload_over_the_limit_skips_only_that_frame(region):
    region.reader.max_payload = 10
    region.writer.try_write(encoded(b"x" * 11))
    region.writer.try_write(encoded(b"ok", 2))
    with pytest.raises(FrameError) as failure:
        region.reader.try_read()
    assert failure.value.kind == frame.TOO_LARGE
    assert region.reader.try_read().payload == b"ok"


def test_the_consumer_never_reads_tail(region):
    region.writer.try_write(encoded(b"1"))
    region.u64[(layout.RING1_INDEX + layout.INDEX_TAIL) // 8] = 12345  # informational only
    assert region.reader.try_read().payload == b"1"


def test_checksum_mismatch_skips_only_that_frame(region):
    region.writer.try_write(encoded(b"bad"))
    region.writer.try_write(encoded(b"good", 2))
    region.map[layout.DATA_OFFSET + 8 + 32] ^= 0xFF  # the first payload byte
    with pytest.raises(FrameError) as failure:
        region.reader.try_read()
    assert failure.value.kind == frame.CHECKSUM_MISMATCH
    assert region.reader.try_read().payload == b"good"


def test_head_outside_its_range_is_corrupt_for_the_writer(region):
    region.writer.try_write(encoded(b"x" * 3000))
    region.set_head(10_000)
    with pytest.raises(RingCorrupt):
        region.writer.try_write(encoded(b"y" * 3000))


def attach_payload(kind=layout.KIND_MEMFD, capacity=CAPACITY, region_len=None, name=b"", version=2, shmid=-1):
    region_len = layout.region_length(capacity) if region_len is None else region_len
    return struct.pack("<IIQQiIHH", version, kind, region_len, capacity, shmid, 7, len(name), 0) + name


def test_attach_decodes_and_encodes():
    attach = layout.Attach.decode(attach_payload())
    assert (attach.kind, attach.capacity, attach.link_id, attach.name) == (4, CAPACITY, 7, "")
    assert attach.encode() == attach_payload()


@pytest.mark.parametrize("payload", ids=["short", "name_overrun", "version_1", "capacity_not_power",
                                         "capacity_small", "region_len", "kind", "name_not_utf8"], argvalues=[
    attach_payload()[:30],
    attach_payload(name=b"x")[:-1],
    attach_payload(version=1),
    attach_payload(capacity=5000),
    attach_payload(capacity=2048),
    attach_payload(region_len=999),
    attach_payload(kind=9),
    attach_payload(name=b"/\xff"),
])
def test_bad_attach_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        layout.Attach.decode(payload)


@pytest.mark.parametrize("kind, name, shmid, accepted", [
    (layout.KIND_MEMFD, b"", -1, True),
    (layout.KIND_MEMFD, b"/utp.calc.1.1", -1, False),  # a memfd has no name
    (layout.KIND_MEMFD, b"", 5, False),
    (1, b"/utp.calc.1.1", -1, False),  # v1's named POSIX region is gone
    (layout.KIND_FILE, b"/tmp/calc.link.1.1", -1, False),
    (layout.KIND_SYSV, b"", 3, False),
])
def test_an_shm_link_must_be_a_memfd(kind, name, shmid, accepted):
    payload = attach_payload(kind=kind, name=name, shmid=shmid)
    if kind == 1:
        with pytest.raises(ProtocolError):
            layout.Attach.decode(payload)
        return
    attach = layout.Attach.decode(payload)
    if accepted:
        attach.check_memfd("calc")
    else:
        with pytest.raises(ProtocolError):
            attach.check_memfd("calc")


def test_control_header_written_magic_last_and_checked(region):
    attach = layout.Attach.decode(attach_payload())
    with pytest.raises(Exception, match="magic"):
        layout.check_control_header(region.map, attach)
    layout.write_control_header(region.map, attach)
    assert struct.unpack_from("<IIQQQI", region.map, 0) == (layout.CONTROL_MAGIC, 2, layout.region_length(CAPACITY),
                                                           CAPACITY, layout.DATA_OFFSET, 7)
    layout.check_control_header(region.map, attach)
    struct.pack_into("<Q", region.map, 16, CAPACITY * 2)
    with pytest.raises(Exception, match="capacity"):
        layout.check_control_header(region.map, attach)


def test_socket_file_name_and_hello():
    assert layout.socket_file_name("calc") == "shm.calc"
    assert layout.hello_payload() == bytes.fromhex("02000000" "00000000" "0000000000000000")
    assert layout.hello_payload(4096, features=layout.FEATURE_WAKE_BYTES) == bytes.fromhex(
        "02000000" "01000000" "0010000000000000")


def test_attach_carries_the_features_both_ends_use():
    payload = attach_payload()[:-2] + struct.pack("<H", layout.FEATURE_WAKE_BYTES)
    attach = layout.Attach.decode(payload)
    assert attach.features == layout.FEATURE_WAKE_BYTES
    assert attach.encode() == payload


def data_event(region):
    return region.u32[(layout.RING1_INDEX + layout.INDEX_DATA_EVENT) // 4]


def test_a_publish_sends_one_wake_up_byte_only_when_the_consumer_asked(region):
    """Section 5.3 from the producer's side: look at data_event after publishing, clear it, send."""
    sent = []
    region.writer.send_wake = lambda: sent.append(1)
    assert region.writer.try_write(encoded(b"a"))
    assert sent == []  # nobody waits in an event loop
    region.u32[(layout.RING1_INDEX + layout.INDEX_DATA_EVENT) // 4] = 1  # the consumer arms
    assert region.writer.try_write(encoded(b"b", 2))
    assert sent == [1] and data_event(region) == 0  # one byte, request cleared
    assert region.writer.try_write(encoded(b"c", 3))
    assert sent == [1]  # not armed again: no more bytes


def test_a_spinning_consumer_that_starts_waiting_gets_its_wake_up(region):
    """A peer that declared it only spins is watched through its sleeps word (5.3)."""
    sent, sleeps = [], [False]
    region.writer.peer_sleeps = False
    region.writer.send_wake = lambda: sent.append(1)
    region.writer.peer_sleeps_now = lambda: sleeps[0]
    region.u32[(layout.RING1_INDEX + layout.INDEX_DATA_EVENT) // 4] = 1
    assert region.writer.try_write(encoded(b"a"))
    assert sent == []  # it said it spins: no [WAKE] step
    sleeps[0] = True  # it announced sleeps = 1 before arming
    assert region.writer.try_write(encoded(b"b", 2))
    assert sent == [1] and region.writer.peer_sleeps
