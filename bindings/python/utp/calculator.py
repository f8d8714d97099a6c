"""The calculator service of docs/protocol.md.

Request ``OP A B`` (ASCII whitespace between fields, OP one of ADD, SUB, MUL,
DIV in any case, A and B signed 64-bit decimal integers); reply ``OK <n>`` or
``ERR <message>``. Results must fit in a signed 64-bit integer; ``DIV``
truncates toward zero.
"""

from __future__ import annotations

import re

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

OPERATIONS = ("ADD", "SUB", "MUL", "DIV")
_SYMBOLS = {"ADD": "+", "SUB": "-", "MUL": "*", "DIV": "/"}
# ASCII whitespace as C's isspace() defines it: space, tab, LF, VT, FF, CR.
# (Non-ASCII Unicode spaces such as U+00A0 are not separators: see SPEC-NOTES.md.)
_ASCII_WHITESPACE = re.compile(rb"[ \t\n\x0b\x0c\r]+")
_DECIMAL = re.compile(r"[+-]?[0-9]+")


def evaluate(request: bytes) -> str:
    """Answer one calculator request with ``"OK <n>"`` or ``"ERR <message>"``."""
    try:
        return f"OK {_evaluate(bytes(request))}"
    except _Refused as refusal:
        return f"ERR {refusal}"


def handle_request(request: bytes) -> bytes:
    """The calculator as a server handler: request payload in, reply payload out."""
    return evaluate(request).encode()


def format_request(op: str, a: int, b: int) -> bytes:
    """The request payload for ``op a b``, e.g. ``b"ADD 10 20"``."""
    return f"{op} {a} {b}".encode()


def parse_reply(reply: bytes) -> int | str:
    """Turn a reply payload into the result (int) or the error message (str).

    Raises ``ValueError`` for a reply that is neither ``OK <int>`` nor ``ERR ...``.
    """
    text = reply.decode("utf-8", errors="replace")
    if text.startswith("ERR"):
        return text[3:].strip() or "error without a message"
    if text.startswith("OK "):
        number = text[3:].strip()
        if _DECIMAL.fullmatch(number):
            return int(number)
    raise ValueError(f"not a calculator reply: {text!r}")


class _Refused(Exception):
    pass


def _evaluate(request: bytes) -> int:
    try:
        request.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused("Request is not valid UTF-8") from None
    fields = [field.decode() for field in _ASCII_WHITESPACE.split(request) if field]
    if len(fields) != 3:
        raise _Refused(f"Expected 3 fields `OP A B`, got {len(fields)}")
    op_text, a_text, b_text = fields
    op = op_text.upper() if op_text.isascii() else op_text
    if op not in OPERATIONS:
        raise _Refused(f"Unknown operation: {op_text} (expected ADD, SUB, MUL or DIV)")
    a, b = _parse_i64(a_text), _parse_i64(b_text)
    if op == "DIV" and b == 0:
        raise _Refused("Division by zero")
    if op == "ADD":
        result = a + b
    elif op == "SUB":
        result = a - b
    elif op == "MUL":
        result = a * b
    else:
        quotient = abs(a) // abs(b)
        result = quotient if (a < 0) == (b < 0) else -quotient
    if not I64_MIN <= result <= I64_MAX:
        raise _Refused(f"Overflow: {a} {_SYMBOLS[op]} {b} does not fit in a signed 64-bit integer")
    return result


def _parse_i64(text: str) -> int:
    if _DECIMAL.fullmatch(text):
        significant = text.lstrip("+-").lstrip("0")
        if len(significant) <= 19:  # int() of a huge digit string is slow, and never fits
            value = int(text)
            if I64_MIN <= value <= I64_MAX:
                return value
    raise _Refused(f"Not a 64-bit integer: {text}")
