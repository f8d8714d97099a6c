"""Calculator semantics, including every example of docs/protocol.md."""

import pytest

from utp.calculator import I64_MAX, I64_MIN, evaluate, parse_reply

PROTOCOL_EXAMPLES = [
    (b"ADD 10 20", "OK 30"),
    (b"DIV 7 2", "OK 3"),
    (b"DIV 1 0", "ERR Division by zero"),
    (b"ADD 9223372036854775807 1",
     "ERR Overflow: 9223372036854775807 + 1 does not fit in a signed 64-bit integer"),
    (b"POW 2 3", "ERR Unknown operation: POW (expected ADD, SUB, MUL or DIV)"),
    (b"ADD 1", "ERR Expected 3 fields `OP A B`, got 2"),
    (b"ADD x 2", "ERR Not a 64-bit integer: x"),
    (b"\xff\xfe", "ERR Request is not valid UTF-8"),
]


@pytest.mark.parametrize("request_bytes, reply", PROTOCOL_EXAMPLES)
def test_protocol_examples(request_bytes, reply):
    assert evaluate(request_bytes) == reply


@pytest.mark.parametrize("request_bytes, reply", [
    (b"sub 5 7", "OK -2"),
    (b"Mul -3 4", "OK -12"),
    (b"DIV -7 2", "OK -3"),
    (b"DIV 7 -2", "OK -3"),
    (b"DIV -7 -2", "OK 3"),
    (b"\tADD\r\n1 \x0c 2\x0b ", "OK 3"),
    (b"ADD +1 2", "OK 3"),
    (b"ADD 0000000000000000000000000000001 1", "OK 2"),
    (f"ADD {I64_MIN} {I64_MAX}".encode(), "OK -1"),
    (f"SUB {I64_MIN} 1".encode(), f"ERR Overflow: {I64_MIN} - 1 does not fit in a signed 64-bit integer"),
    (b"MUL 4611686018427387904 2",
     "ERR Overflow: 4611686018427387904 * 2 does not fit in a signed 64-bit integer"),
    (f"DIV {I64_MIN} -1".encode(), f"ERR Overflow: {I64_MIN} / -1 does not fit in a signed 64-bit integer"),
    (b"ADD 9223372036854775808 0", "ERR Not a 64-bit integer: 9223372036854775808"),
    (b"ADD 1_0 1", "ERR Not a 64-bit integer: 1_0"),
    (b"ADD 1.5 1", "ERR Not a 64-bit integer: 1.5"),
    ("ADD \u0661 1".encode(), "ERR Not a 64-bit integer: \u0661"),
    (b"ADD 1 2 3", "ERR Expected 3 fields `OP A B`, got 4"),
    (b"", "ERR Expected 3 fields `OP A B`, got 0"),
    (b"POW x", "ERR Expected 3 fields `OP A B`, got 2"),
    (b"POW x 2", "ERR Unknown operation: POW (expected ADD, SUB, MUL or DIV)"),
    (b"ADD x y", "ERR Not a 64-bit integer: x"),
    (b"ADD 1 y", "ERR Not a 64-bit integer: y"),
    (b"DIV x 0", "ERR Not a 64-bit integer: x"),
    ("\u0130DD 1 1".encode(), "ERR Unknown operation: \u0130DD (expected ADD, SUB, MUL or DIV)"),
])
def test_edge_cases(request_bytes, reply):
    assert evaluate(request_bytes) == reply


def test_huge_number_is_refused_quickly():
    assert evaluate(b"ADD " + b"9" * 100_000 + b" 1").startswith("ERR Not a 64-bit integer: 999")


def test_parse_reply():
    assert parse_reply(b"OK -42") == -42
    assert parse_reply(b"ERR Division by zero") == "Division by zero"
    with pytest.raises(ValueError):
        parse_reply(b"MAYBE 3")
    with pytest.raises(ValueError):
        parse_reply(b"OK three")
