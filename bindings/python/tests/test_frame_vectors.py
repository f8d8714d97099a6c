"""Every vector of docs/vectors/utp-frames.json, decoded and (when valid) re-encoded."""

import pytest

from support import load_frame_vectors
from utp import frame

VECTORS = load_frame_vectors()


def test_vector_file_uses_the_default_limit():
    assert VECTORS["default_max_payload"] == frame.DEFAULT_MAX_PAYLOAD
    assert VECTORS["valid"] and VECTORS["invalid"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_decodes_to_its_fields(vector):
    decoded = frame.decode(bytes.fromhex(vector["hex"]))
    assert decoded.message_type == vector["type"]
    assert decoded.flags == vector["flags"]
    assert decoded.sequence == vector["sequence"]
    assert decoded.timestamp_us == vector["timestamp_us"]
    assert decoded.checksum == vector["checksum"]
    assert decoded.payload == bytes.fromhex(vector["payload_hex"])


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_encodes_to_its_bytes(vector):
    encoded = frame.encode(
        vector["type"],
        bytes.fromhex(vector["payload_hex"]),
        sequence=vector["sequence"],
        timestamp_us=vector["timestamp_us"],
        flags=vector["flags"],
    )
    assert encoded.hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_fails_with_its_kind(vector):
    with pytest.raises(frame.FrameError) as failure:
        frame.decode(bytes.fromhex(vector["hex"]), max_payload=vector["max_payload"])
    assert failure.value.kind == vector["error"]
