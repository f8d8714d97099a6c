/* A server run by another user is refused through the C ABI, with an error
 * that names its uid and the option that would trust it; trusting it
 * explicitly (?allow_uid=UID) works.
 *
 *   ./test_foreign_server UID URL...
 *
 * Each URL must be served (calc) by uid UID, which is not ours (run-tests starts
 * them as uid 65534: unix://, fifo://, mq:// and shm://). Exits 0 when
 * every check passes, 1 with a message otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "utp.h"

static int failures = 0;

static void fail(const char *url, const char *what) {
    fprintf(stderr, "FAIL %s: %s\n", url, what);
    failures++;
}

static void check_refused(const char *url, const char *uid) {
    UtpChannel *channel = NULL;
    UtpStatus status = utp_connect(url, &channel);
    if (status == UTP_OK) {
        fail(url, "a server of another user was trusted");
        utp_channel_close(channel);
        return;
    }
    const char *error = utp_last_error();
    char served_by[64];
    char allow[64];
    snprintf(served_by, sizeof served_by, "is served by uid %s, not by you", uid);
    snprintf(allow, sizeof allow, "?allow_uid=%s", uid);
    if (status != UTP_ERR_DENIED) {
        fprintf(stderr, "  got %s: %s\n", utp_status_name(status), error);
        fail(url, "expected UTP_ERR_DENIED");
    } else if (strstr(error, served_by) == NULL || strstr(error, allow) == NULL) {
        fprintf(stderr, "  utp_last_error(): %s\n", error);
        fail(url, "the error does not name the server's uid and ?allow_uid");
    } else if (utp_last_error_reason() != UTP_REASON_UNTRUSTED) {
        fprintf(stderr, "  reason: %s\n", utp_reason_name(utp_last_error_reason()));
        fail(url, "expected UTP_REASON_UNTRUSTED");
    } else {
        printf("ok   %s refused: %s\n", url, error);
    }
}

static void check_trusted(const char *url, const char *uid) {
    char trusting[1024];
    snprintf(trusting, sizeof trusting, "%s%sallow_uid=%s", url, strchr(url, '?') ? "&" : "?", uid);
    UtpChannel *channel = NULL;
    UtpStatus status = utp_connect(trusting, &channel);
    if (status != UTP_OK) {
        fprintf(stderr, "  %s: %s\n", utp_status_name(status), utp_last_error());
        fail(trusting, "could not connect while trusting the server's uid");
        return;
    }
    int64_t result = 0;
    status = utp_calc_call(channel, "ADD", 10, 20, &result, 5000);
    if (status != UTP_OK || result != 30) {
        fail(trusting, "ADD 10 20 did not give 30");
    } else {
        printf("ok   %s served: 30\n", trusting);
    }
    utp_channel_close(channel);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s UID URL...\n", argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        check_refused(argv[i], argv[1]);
        /* An mq:// server of another (non-root) user cannot open the
         * client's private 0600 queues even when trusted; sockets and
         * FIFOs work once trusted. */
        if (strncmp(argv[i], "mq://", 5) != 0) {
            check_trusted(argv[i], argv[1]);
        }
    }
    return failures == 0 ? 0 : 1;
}
