/* A C host, SIGPIPE at its default action (which ends the process): a peer
 * that goes away must end its link with UTP_ERR_PEER_GONE, not the host.
 *
 *   ./test_sigpipe
 *
 * Over pipe: to `head -c 100`, which reads a frame and a bit and exits,
 * first with SIGPIPE at its default (utp blocks the signal around its
 * writes and leaves the disposition as it found it), then with a handler
 * of the host's own (called as before; utp does not hide the signal).
 * Ends with "N passed, M failed"; exits non-zero if any failed. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "utp.h"
#include "check.h"

static volatile sig_atomic_t handled;

static void on_sigpipe(int signal) {
    (void)signal;
    handled++;
}

/* Sends 64-byte frames every 10 ms until one fails (at most 5 s); returns
 * the failing status and the number of frames sent before it. */
static UtpStatus send_until_refused(UtpChannel *ch, int *sent) {
    uint8_t payload[64];
    memset(payload, 'x', sizeof payload);
    struct timespec pause = {0, 10 * 1000 * 1000};
    for (*sent = 0; *sent < 500; (*sent)++) {
        UtpStatus st = utp_send(ch, 0x01, 1, payload, sizeof payload, 1000);
        if (st != UTP_OK) return st;
        nanosleep(&pause, NULL);
    }
    return UTP_OK;
}

static void test_reader_leaves(const char *what) {
    printf("-- pipe:head -c 100, SIGPIPE %s\n", what);
    UtpChannel *ch = NULL;
    UtpStatus st = utp_connect("pipe:head -c 100", &ch);
    CHECK(st == UTP_OK, "connect: %s", utp_status_name(st));
    if (st != UTP_OK) return;
    int sent = 0;
    st = send_until_refused(ch, &sent);
    CHECK(st == UTP_ERR_PEER_GONE, "a send after the reader left gave %s", utp_status_name(st));
    CHECK(sent >= 1, "the first frame went before head left (%d sent)", sent);
    /* A second send on the ended link fails too, and still without a signal. */
    uint8_t byte = 0;
    st = utp_send(ch, 0x01, 1, &byte, 1, 1000);
    CHECK(st != UTP_OK, "a second send gave %s", utp_status_name(st));
    utp_channel_close(ch);
}

static void check_left_alone(void (*expected)(int)) {
    struct sigaction now;
    sigaction(SIGPIPE, NULL, &now);
    CHECK(now.sa_handler == expected, "SIGPIPE's disposition was changed");
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    CHECK(!sigismember(&mask, SIGPIPE), "SIGPIPE was left blocked");
    sigset_t pending;
    sigpending(&pending);
    CHECK(!sigismember(&pending, SIGPIPE), "a SIGPIPE was left pending");
}

int main(void) {
    signal(SIGPIPE, SIG_DFL);
    test_reader_leaves("at its default");
    check_left_alone(SIG_DFL);

    struct sigaction handler;
    memset(&handler, 0, sizeof handler);
    handler.sa_handler = on_sigpipe;
    sigemptyset(&handler.sa_mask);
    sigaction(SIGPIPE, &handler, NULL);
    test_reader_leaves("handled by the host");
    CHECK(handled >= 1, "the host's handler was not called (%d)", (int)handled);
    check_left_alone(on_sigpipe);

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
