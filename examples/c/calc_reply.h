/* The calculator's answer, for the C servers of the tests: "OP A B" (ADD,
 * SUB, MUL) -> "OK R", anything else -> "ERR ..." (docs/protocol.md). */
#ifndef UTP_EXAMPLES_CALC_REPLY_H
#define UTP_EXAMPLES_CALC_REPLY_H

#include <stdio.h>
#include <string.h>

/* Writes the answer to the `len`-byte request into `reply` (`room` bytes,
 * NUL-terminated) and returns its length, as snprintf does. */
static int calc_reply(const char *request, size_t len, char *reply, size_t room) {
    char text[128], op[8];
    long long a = 0, b = 0;
    if (len >= sizeof text) len = sizeof text - 1;
    memcpy(text, request, len);
    text[len] = '\0';
    if (sscanf(text, "%7s %lld %lld", op, &a, &b) != 3) return snprintf(reply, room, "ERR bad request");
    if (strcmp(op, "ADD") == 0) return snprintf(reply, room, "OK %lld", a + b);
    if (strcmp(op, "SUB") == 0) return snprintf(reply, room, "OK %lld", a - b);
    if (strcmp(op, "MUL") == 0) return snprintf(reply, room, "OK %lld", a * b);
    return snprintf(reply, room, "ERR unknown operation");
}

#endif
