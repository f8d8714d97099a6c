/* Tests of the utp C ABI against running Rust `utp serve calc` servers.
 *
 *   ./test_calc URL [URL...]
 *
 * Ends with the line "N passed, M failed"; exits non-zero if any failed. */
#include <stdio.h>
#include <string.h>
#include "utp.h"
#include "check.h"

static void test_endpoint(const char *url) {
    printf("-- %s\n", url);
    UtpChannel *ch = NULL;
    UtpStatus st = utp_connect(url, &ch);
    CHECK(st == UTP_OK && ch != NULL, "connect %s: %s", url, utp_status_name(st));
    if (st != UTP_OK) return;

    int64_t r = 0;
    st = utp_calc_call(ch, "ADD", 10, 20, &r, 5000);
    CHECK(st == UTP_OK && r == 30, "ADD 10 20 gave %s / %lld", utp_status_name(st), (long long)r);
    st = utp_calc_call(ch, "MUL", -6, 7, &r, 5000);
    CHECK(st == UTP_OK && r == -42, "MUL -6 7 gave %lld", (long long)r);
    for (int i = 0; i < 200; i++) {
        st = utp_calc_call(ch, "SUB", i, 1, &r, 5000);
        CHECK(st == UTP_OK && r == i - 1, "SUB %d 1 gave %lld", i, (long long)r);
    }

    st = utp_calc_call(ch, "DIV", 1, 0, &r, 5000);
    CHECK(st == UTP_ERR_CALC, "DIV 1 0 should be UTP_ERR_CALC, was %s", utp_status_name(st));
    CHECK(strcmp(utp_last_error(), "Division by zero") == 0, "message was '%s'", utp_last_error());
    st = utp_calc_call(ch, "MUL", INT64_MAX, 2, &r, 5000);
    CHECK(st == UTP_ERR_CALC && strstr(utp_last_error(), "Overflow"), "overflow: %s", utp_status_name(st));
    st = utp_calc_call(ch, "POW", 2, 3, &r, 5000);
    CHECK(st == UTP_ERR_CALC && strstr(utp_last_error(), "Unknown operation"), "POW: %s", utp_status_name(st));

    /* Raw frames: a REQUEST, then a too-small buffer keeps the frame for the next call. */
    const char *req = "ADD 40 2";
    st = utp_send(ch, 0x10, 1, (const uint8_t *)req, strlen(req), 5000);
    CHECK(st == UTP_OK, "send: %s", utp_status_name(st));
    UtpFrameInfo info;
    uint8_t tiny[2];
    st = utp_recv(ch, &info, tiny, sizeof tiny, 5000);
    CHECK(st == UTP_ERR_BUFFER_TOO_SMALL && info.payload_length == 5, "small buffer: %s len %u",
          utp_status_name(st), info.payload_length);
    uint8_t buf[64];
    st = utp_recv(ch, &info, buf, sizeof buf, 5000);
    CHECK(st == UTP_OK && info.message_type == 0x11 && info.payload_length == 5 &&
              memcmp(buf, "OK 42", 5) == 0,
          "recv: %s type 0x%x", utp_status_name(st), info.message_type);
    CHECK(info.sequence > 0, "sequence %llu", (unsigned long long)info.sequence);

    /* A batch: three requests in one call, three replies in order. */
    const char *reqs[3] = {"ADD 1 1", "SUB 9 4", "MUL 3 3"};
    const char *replies[3] = {"OK 2", "OK 5", "OK 9"};
    UtpBytes batch[3];
    for (int i = 0; i < 3; i++) batch[i] = (UtpBytes){(const uint8_t *)reqs[i], strlen(reqs[i])};
    st = utp_send_batch(ch, 0x10, 1, batch, 3);
    CHECK(st == UTP_OK, "send_batch: %s", utp_status_name(st));
    uint64_t previous = 0;
    for (int i = 0; i < 3; i++) {
        st = utp_recv(ch, &info, buf, sizeof buf, 5000);
        CHECK(st == UTP_OK && info.payload_length == strlen(replies[i]) &&
                  memcmp(buf, replies[i], strlen(replies[i])) == 0,
              "batch reply %d: %s", i, utp_status_name(st));
        CHECK(info.sequence > previous, "replies in order");
        previous = info.sequence;
    }
    /* A bad entry anywhere refuses the whole batch: nothing is sent. */
    batch[2] = (UtpBytes){NULL, 4};
    CHECK(utp_send_batch(ch, 0x10, 1, batch, 3) == UTP_ERR_INVALID_ARGUMENT, "NULL entry");
    CHECK(utp_send_batch(ch, 0x10, 1, NULL, 2) == UTP_ERR_INVALID_ARGUMENT, "NULL frames");
    CHECK(utp_send_batch(ch, 0x10, 1, NULL, 0) == UTP_OK, "an empty batch");

    /* Nothing more is coming: a short timeout is a timeout, not a hang. */
    st = utp_recv(ch, &info, buf, sizeof buf, 50);
    CHECK(st == UTP_ERR_TIMEOUT, "idle recv: %s", utp_status_name(st));

    /* Zero-copy, on shared-memory links: write the request in place, read the reply in place. */
    uint8_t *room = NULL;
    st = utp_reserve(ch, 7, 5000, &room);
    if (strncmp(url, "shm://", 6) == 0 || strncmp(url, "sysv://", 7) == 0 || strncmp(url, "file://", 7) == 0) {
        CHECK(st == UTP_OK && room != NULL, "reserve: %s", utp_status_name(st));
        memcpy(room, "ADD 2 3", 7);
        CHECK(utp_send(ch, 0x10, 1, (const uint8_t *)"x", 1, 100) == UTP_ERR_INVALID_ARGUMENT,
              "send while a reservation is open must be refused");
        CHECK(utp_commit(ch, 0x10, 1) == UTP_OK, "commit");
        CHECK(utp_commit(ch, 0x10, 1) == UTP_ERR_INVALID_ARGUMENT, "second commit must be refused");
        const uint8_t *view = NULL;
        st = utp_recv_view(ch, &info, &view, 5000);
        CHECK(st == UTP_OK && info.message_type == 0x11 && info.payload_length == 4 &&
                  memcmp(view, "OK 5", 4) == 0,
              "recv_view: %s", utp_status_name(st));
        size_t copied = 0;
        CHECK(utp_view_copy(ch, buf, sizeof buf, &copied) == UTP_OK && copied == 4 &&
                  memcmp(buf, "OK 5", 4) == 0,
              "view_copy: %s", utp_last_error());
        CHECK(utp_view_copy(ch, buf, 2, &copied) != UTP_OK, "view_copy into 2 bytes must fail");
        CHECK(utp_recv(ch, &info, buf, sizeof buf, 10) == UTP_ERR_INVALID_ARGUMENT,
              "recv while a view is open must be refused");
        CHECK(utp_release(ch) == UTP_OK, "release");
        CHECK(utp_release(ch) == UTP_ERR_INVALID_ARGUMENT, "second release must be refused");
    } else {
        CHECK(st == UTP_ERR_INVALID_ARGUMENT && strstr(utp_last_error(), "zero-copy"),
              "zero-copy on %s must be refused: %s", url, utp_status_name(st));
    }

    /* Bad arguments are errors, not crashes. */
    CHECK(utp_calc_call(ch, NULL, 1, 2, &r, 100) == UTP_ERR_INVALID_ARGUMENT, "NULL op");
    CHECK(utp_calc_call(ch, "ADD", 1, 2, NULL, 100) == UTP_ERR_INVALID_ARGUMENT, "NULL result");
    CHECK(utp_send(ch, 0x10, 1, NULL, 5, 100) == UTP_ERR_INVALID_ARGUMENT, "NULL payload");
    utp_channel_close(ch);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) test_endpoint(argv[i]);

    UtpChannel *ch = NULL;
    UtpStatus st = utp_connect("unix:///tmp/utp-c-test-no-such-server.sock", &ch);
    CHECK(st == UTP_ERR_NOT_FOUND && ch == NULL, "missing endpoint: %s", utp_status_name(st));
    CHECK(strstr(utp_last_error(), "no server at") != NULL, "message: %s", utp_last_error());
    st = utp_connect("bogus://x", &ch);
    CHECK(st == UTP_ERR_BAD_URL && strstr(utp_last_error(), "accepted forms"), "bad url: %s",
          utp_status_name(st));
    CHECK(utp_connect(NULL, &ch) == UTP_ERR_INVALID_ARGUMENT, "NULL url");
    utp_channel_close(NULL); /* allowed */

    /* Any int has a name: C lets a caller pass any value as a status. */
    CHECK(strcmp(utp_status_name(12345), "UTP_UNKNOWN_STATUS") == 0, "unknown status: %s",
          utp_status_name(12345));
    CHECK(strcmp(utp_status_name(UTP_ERR_TIMEOUT), "UTP_ERR_TIMEOUT") == 0, "known status");
    /* Reasons: finer than the status; none for a missing server. */
    st = utp_connect("unix:///tmp/utp-c-test-no-such-server.sock", &ch);
    CHECK(st == UTP_ERR_NOT_FOUND && utp_last_error_reason() == UTP_REASON_NONE &&
              utp_last_os_error() == 0,
          "reason of a missing server: %s", utp_reason_name(utp_last_error_reason()));
    CHECK(strcmp(utp_reason_name(UTP_REASON_PEER_DIED), "UTP_REASON_PEER_DIED") == 0, "reason name");
    CHECK(strcmp(utp_reason_name(-3), "UTP_REASON_UNKNOWN") == 0, "unknown reason");

    /* Double close and use after close are errors, not undefined behaviour. */
    if (argc > 1) {
        UtpChannel *closed = NULL;
        if (utp_connect(argv[1], &closed) == UTP_OK) {
            utp_channel_close(closed);
            utp_channel_close(closed);
            CHECK(strstr(utp_last_error(), "already closed") != NULL, "double close: %s",
                  utp_last_error());
            st = utp_send(closed, 0x10, 1, (const uint8_t *)"ADD 1 1", 7, 100);
            CHECK(st == UTP_ERR_CLOSED, "use after close: %s", utp_status_name(st));
        }
    }

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
