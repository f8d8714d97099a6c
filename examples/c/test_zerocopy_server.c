/* A calculator server in C that answers with the zero-copy calls on the
 * shared-memory links it accepts: requests are read in place
 * (utp_recv_view + utp_view_copy, which verifies the checksum on the copy),
 * replies written in place (utp_reserve + utp_commit).
 *
 *   ./test_zerocopy_server URL CLIENTS      e.g.  shm://zc 2
 *
 * Prints READY once listening, serves CLIENTS clients one after the other
 * (ADD, SUB, MUL), then "N passed, M failed"; exits non-zero if any failed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "utp.h"
#include "check.h"
#include "calc_reply.h"

/* Answers one request ("OP A B") with "OK R" written in place in the ring. */
static void answer(UtpChannel *ch, const char *request, size_t len) {
    char reply[64];
    int n = calc_reply(request, len, reply, sizeof reply);
    CHECK(strncmp(reply, "OK ", 3) == 0, "request '%.*s' answered '%s'", (int)len, request, reply);
    uint8_t *room = NULL;
    UtpStatus st = utp_reserve(ch, (uintptr_t)n, 5000, &room);
    CHECK(st == UTP_OK && room != NULL, "reserve on an accepted link: %s", utp_status_name(st));
    if (st != UTP_OK) return;
    memcpy(room, reply, (size_t)n);
    st = utp_commit(ch, 0x11 /* RESPONSE */, 1 /* checksum */);
    CHECK(st == UTP_OK, "commit: %s", utp_status_name(st));
}

static void serve(UtpChannel *ch) {
    for (;;) {
        UtpFrameInfo info;
        const uint8_t *data = NULL;
        UtpStatus st = utp_recv_view(ch, &info, &data, 10000);
        if (st == UTP_ERR_PEER_GONE) return;
        CHECK(st == UTP_OK && data != NULL, "recv_view on an accepted link: %s", utp_status_name(st));
        if (st != UTP_OK) return;
        CHECK(info.message_type == 0x10, "a REQUEST, got 0x%02x", info.message_type);
        uint8_t copy[128];
        uintptr_t len = 0;
        st = utp_view_copy(ch, copy, sizeof copy, &len);
        CHECK(st == UTP_OK && len == info.payload_length, "view_copy: %s", utp_status_name(st));
        CHECK(utp_release(ch) == UTP_OK, "release");
        if (st == UTP_OK) answer(ch, (const char *)copy, (size_t)len);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s URL CLIENTS\n", argv[0]);
        return 2;
    }
    UtpListener *listener = NULL;
    UtpStatus st = utp_listen(argv[1], &listener);
    CHECK(st == UTP_OK, "listen %s: %s", argv[1], utp_status_name(st));
    if (st != UTP_OK) return 1;
    printf("READY\n");
    fflush(stdout);
    int clients = atoi(argv[2]);
    for (int i = 0; i < clients; i++) {
        UtpChannel *ch = NULL;
        st = utp_accept(listener, 20000, &ch);
        CHECK(st == UTP_OK && ch != NULL, "accept: %s", utp_status_name(st));
        if (st != UTP_OK) break;
        serve(ch);
        utp_channel_close(ch);
    }
    utp_listener_close(listener);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
