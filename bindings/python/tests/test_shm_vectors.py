"""The shared-memory link vectors of docs/vectors/shm-link-v2.json, decoded by the Python package.

The same file is checked by the Rust side (crates/utp/tests/shm_vectors.rs),
which also generates it from a real link. Here each region image is put in
a private bytearray and read with the package's own layout constants and
control-header check (utp.shm_layout) and its ring reader (utp.shm_ring),
the code the Python client uses on a live mapping.
"""

from __future__ import annotations

import ctypes
import json
import struct

import pytest
from support import REPO_ROOT

from utp import shm_layout as layout
from utp.errors import ProtocolError
from utp.shm_ring import RingCorrupt, RingReader, RingWords

VECTOR_FILE = REPO_ROOT / "docs" / "vectors" / "shm-link-v2.json"
if not VECTOR_FILE.exists():
    pytest.skip(f"{VECTOR_FILE.relative_to(REPO_ROOT)} is not generated yet "
                "(UTP_BLESS=1 cargo test -p utp --test shm_vectors)", allow_module_level=True)
VECTORS = json.loads(VECTOR_FILE.read_text())
# The package's reader never agrees to keyed stamps (docs/shm-layout.md 4.1),
# so it reads the rings of the images whose control header holds no keys.
UNKEYED_IMAGES = [entry for entry in VECTORS["images"] if not any(entry["expected"]["stamp_keys"])]
COUNTER_OFFSETS = (layout.SERVER_COUNTERS, layout.CLIENT_COUNTERS)
STATE_NAMES = {layout.STATE_EMPTY: "EMPTY", layout.STATE_READY: "READY", layout.STATE_CLOSED: "CLOSED"}
SIDE_OFFSETS = (layout.SERVER_SIDE, layout.CLIENT_SIDE)
RING_INDEX = (layout.RING0_INDEX, layout.RING1_INDEX)

# What the Python reader says for each error category of the vector file.
ERROR_MESSAGES = {
    "bad_magic": (ProtocolError, r"control header is invalid: .*magic 0x"),
    "bad_layout_version": (ProtocolError, r"control header is invalid: .*layout version"),
    "bad_stamp": (RingCorrupt, r"bad stamp 0x"),
    "stamp_out_of_range": (RingCorrupt, r"gives a \d+-byte record; records are 64\.\.=\d+ bytes here"),
    "length_mismatch": (RingCorrupt, r"a header declaring \d+ payload bytes in a \d+-byte record"),
    "bad_padding": (RingCorrupt, r"padding of \d+ bytes at ring offset \d+, expected \d+"),
}


class Image:
    """A region image in private memory, viewed the way the package views a mapping."""

    def __init__(self, hex_text: str):
        self.data = bytearray.fromhex(hex_text)
        self.view = memoryview(self.data)
        self.u64 = self.view.cast("Q")
        self.u32 = self.view.cast("I")
        self._anchor = (ctypes.c_char * len(self.data)).from_buffer(self.data)
        self.address = ctypes.addressof(self._anchor)

    def attach(self, region_len: int, capacity: int, link_id: int) -> layout.Attach:
        """The LINK_ATTACH a server would have sent for this region (a file region)."""
        return layout.Attach(layout.LAYOUT_VERSION, layout.KIND_FILE, region_len, capacity, -1, link_id, "")

    def reader(self, ring: int, capacity: int) -> RingReader:
        """The package's consumer end of ring 0 or 1, starting at the image's head."""
        words = RingWords(self.view, self.u64, self.u32, self.address, RING_INDEX[ring],
                          layout.DATA_OFFSET + ring * capacity, capacity)
        return RingReader(words, max_payload=layout.max_payload_for(capacity))

    def close(self) -> None:
        del self._anchor
        self.u64.release()
        self.u32.release()
        self.view.release()


@pytest.fixture
def image_of():
    images = []

    def make(entry) -> Image:
        images.append(Image(entry["region_hex"]))
        return images[-1]

    yield make
    for image in images:
        image.close()


def test_vector_file_covers_the_cases():
    assert VECTORS["layout_version"] == layout.LAYOUT_VERSION
    assert UNKEYED_IMAGES and len(UNKEYED_IMAGES) < len(VECTORS["images"])
    assert VECTORS["images"] and len(VECTORS["invalid_images"]) >= 2
    assert any(ring["padding"] for entry in VECTORS["images"] for ring in entry["expected"]["rings"])


@pytest.mark.parametrize("entry", VECTORS["images"], ids=lambda e: e["name"])
def test_control_header_and_sides(entry, image_of):
    expected = entry["expected"]
    image = image_of(entry)
    assert len(image.data) == expected["region_len"] == layout.region_length(expected["capacity"])
    magic, version, region_len, capacity, data_offset, link_id = struct.unpack_from("<IIQQQI", image.data, 0)
    assert (magic, version) == (expected["magic"], expected["layout_version"]) == (layout.CONTROL_MAGIC, 2)
    assert (region_len, capacity, data_offset, link_id) == (
        expected["region_len"], expected["capacity"], expected["data_offset"], expected["link_id"])
    assert data_offset == layout.DATA_OFFSET
    layout.check_control_header(image.data, image.attach(region_len, capacity, link_id))

    for block, counters, side in zip(SIDE_OFFSETS, COUNTER_OFFSETS, expected["sides"], strict=True):
        state = image.u32[(block + layout.SIDE_STATE) // 4]
        assert STATE_NAMES.get(state, f"state {state}") == side["state"]
        assert image.u32[(block + layout.SIDE_PID) // 4] == side["pid"]
        assert image.u32[(block + layout.SIDE_SLEEPS) // 4] == side["sleeps"]
        assert image.u64[(counters + layout.COUNTER_HEARTBEATS) // 8] == side["heartbeats"]
        assert image.u64[(counters + layout.COUNTER_HEARTBEAT_TIME) // 8] == side["heartbeat_time_us"]
        assert image.u64[(counters + layout.COUNTER_FRAMES_SENT) // 8] == side["messages"]
        assert image.u64[(counters + layout.COUNTER_BYTES_SENT) // 8] == side["bytes"]


@pytest.mark.parametrize("entry", UNKEYED_IMAGES, ids=lambda e: e["name"])
def test_rings_give_the_expected_frames(entry, image_of):
    expected = entry["expected"]
    capacity = expected["capacity"]
    image = image_of(entry)
    for ring in expected["rings"]:
        r = ring["ring"]
        index = RING_INDEX[r]
        assert (ring["index_offset"], ring["data_offset"]) == (index, layout.DATA_OFFSET + r * capacity)
        tail = image.u64[(index + layout.INDEX_TAIL) // 8]
        head = image.u64[(index + layout.INDEX_HEAD) // 8]
        assert (head, tail) == (ring["head"], ring["tail"])
        assert min((tail - head) % 2**64, capacity) == ring["used"]

        # The padding the vector names is where it says: a stamp with bit 0 set reaching the lap's end (4.1).
        for pad in ring["padding"]:
            assert pad["offset"] == pad["position"] % capacity
            assert pad["length"] == capacity - pad["offset"]
            stamp = image.u64[(ring["data_offset"] + pad["offset"]) // 8]
            assert stamp == (pad["position"] + pad["length"]) | 1

        reader = image.reader(r, capacity)
        got = []
        while (frame := reader.try_read()) is not None:
            length = layout.record_length(len(frame.payload))
            got.append({
                "position": (reader.head - length) % 2**64,
                "offset": (reader.head - length) % capacity,
                "record_len": length,
                "message_type": frame.message_type,
                "flags": frame.flags,
                "sequence": frame.sequence,
                "payload_hex": frame.payload.hex(),
            })
        assert got == ring["frames"]
        assert reader.head == tail  # the consumer never read tail: it followed the stamps there
        # The reader released everything: head now equals tail in the image.
        assert image.u64[(index + layout.INDEX_HEAD) // 8] == tail


@pytest.mark.parametrize("entry", VECTORS["invalid_images"], ids=lambda e: e["name"])
def test_invalid_images_are_refused(entry, image_of):
    error = entry["expected_error"]
    exception, message = ERROR_MESSAGES[error["category"]]
    image = image_of(entry)
    capacity = struct.unpack_from("<Q", image.data, 16)[0]
    if error["reported_by"] == "control_header":
        attach = image.attach(len(image.data), capacity, 0)
        with pytest.raises(exception, match=message):
            layout.check_control_header(image.data, attach)
        return
    assert error["reported_by"] == "ring"
    layout.check_control_header(image.data, image.attach(len(image.data), capacity, 0))
    reader = image.reader(error["ring"], capacity)
    with pytest.raises(exception, match=message):
        while reader.try_read() is not None:
            pass
    # The other ring is still readable to its end.
    other = image.reader(1 - error["ring"], capacity)
    while other.try_read() is not None:
        pass
