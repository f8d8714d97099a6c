/* Replies that name their request, in C (docs/protocol.md, "Correlation"):
 * a C server answers with utp_reply / utp_try_reply, and before each real
 * answer sends a stray one naming another request (as a reply meant for
 * another client sharing the medium would); C clients calling with
 * utp_call and utp_calc_call must take only their own.
 *
 *   ./test_correlation URL [URL...]
 *
 * For each URL the server is a forked child (all forked before this
 * process makes any utp object, so no utp thread exists at a fork). Ends with
 * "N passed, M failed". Transports whose channels set a reply's sequence:
 * not the shared-memory links, which carry one client's frames only. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "utp.h"
#include "check.h"
#include "calc_reply.h"

enum { REQUEST = 0x10, RESPONSE = 0x11, ERROR = 0x12, REPLY_FLAG = 0x2 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_ms(long ms) {
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&pause, NULL);
}

static int starts_with(const uint8_t *bytes, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(bytes, prefix, n) == 0;
}

/* The forked server: one client, then exits (0: served as planned). A
 * request gets a stray answer naming the next sequence number, then its
 * own; "PLAIN ..." gets an ordinary frame (an older server), "REFUSE" an
 * ERROR naming it, "SLOW" only stray answers, 50 ms apart, for 1.5 s. */
static int serve(const char *url, int ready_fd) {
    UtpListener *listener = NULL;
    if (utp_listen(url, &listener) != UTP_OK) {
        fprintf(stderr, "server: listen %s: %s\n", url, utp_last_error());
        return 2;
    }
    if (write(ready_fd, "R", 1) != 1) return 2;
    close(ready_fd);
    UtpChannel *ch = NULL;
    if (utp_accept(listener, 60000, &ch) != UTP_OK) {
        fprintf(stderr, "server: accept: %s\n", utp_last_error());
        return 3;
    }
    int answered = 0;
    for (;;) {
        UtpFrameInfo info;
        uint8_t request[256];
        UtpStatus st = utp_recv(ch, &info, request, sizeof request, 10000);
        if (st == UTP_ERR_PEER_GONE || st == UTP_ERR_CLOSED) break;
        if (st != UTP_OK) {
            fprintf(stderr, "server: recv: %s [%s]\n", utp_status_name(st), utp_last_error());
            return 4;
        }
        if (info.message_type != REQUEST) continue; /* a goodbye */
        size_t len = info.payload_length;
        const char *stray = "OK -1";
        if (starts_with(request, len, "SLOW")) {
            for (int i = 0; i < 30; i++) {
                utp_reply(ch, RESPONSE, 1, info.sequence + 1, (const uint8_t *)stray, strlen(stray), 1000);
                pause_ms(50);
            }
            continue;
        }
        if (utp_reply(ch, RESPONSE, 1, info.sequence + 1, (const uint8_t *)stray, strlen(stray), 1000) != UTP_OK)
            return 5;
        char reply[128];
        if (starts_with(request, len, "REFUSE")) {
            const char *why = "not today";
            st = utp_reply(ch, ERROR, 1, info.sequence, (const uint8_t *)why, strlen(why), 1000);
        } else if (starts_with(request, len, "PLAIN ")) {
            int n = calc_reply((const char *)request + 6, len - 6, reply, sizeof reply);
            st = utp_send(ch, RESPONSE, 1, (const uint8_t *)reply, (uintptr_t)n, 1000);
        } else {
            int n = calc_reply((const char *)request, len, reply, sizeof reply);
            /* Every other answer through the event loop's reply. */
            st = answered % 2 ? utp_try_reply(ch, RESPONSE, 1, info.sequence, (const uint8_t *)reply, (uintptr_t)n)
                              : utp_reply(ch, RESPONSE, 1, info.sequence, (const uint8_t *)reply, (uintptr_t)n, 1000);
        }
        if (st != UTP_OK) {
            fprintf(stderr, "server: reply: %s [%s]\n", utp_status_name(st), utp_last_error());
            return 6;
        }
        answered++;
    }
    /* The client has left (its channel reads as gone): nothing is unread. */
    utp_channel_close(ch);
    utp_listener_close(listener);
    return 0;
}

static UtpChannel *connect_retrying(const char *url) {
    for (int i = 0; i < 400; i++) {
        UtpChannel *ch = NULL;
        if (utp_connect(url, &ch) == UTP_OK) return ch;
        pause_ms(25);
    }
    return NULL;
}

/* Forks the server of `url`; `*ready` is read once it listens. */
static pid_t start_server(const char *url, int *ready) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t server = fork();
    if (server == 0) {
        close(fds[0]);
        _exit(serve(url, fds[1]));
    }
    close(fds[1]);
    *ready = fds[0];
    return server;
}

static void test_endpoint(const char *url, pid_t server, int ready) {
    printf("-- %s\n", url);
    char byte;
    CHECK(read(ready, &byte, 1) == 1, "the server at %s did not start", url);
    close(ready);
    UtpChannel *ch = connect_retrying(url);
    CHECK(ch != NULL, "connect %s", url);
    if (ch == NULL) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        return;
    }

    UtpFrameInfo info;
    uint8_t answer[64];
    const char *add = "ADD 10 20";
    UtpStatus st = utp_call(ch, (const uint8_t *)add, strlen(add), &info, answer, sizeof answer, 5000);
    CHECK(st == UTP_OK && info.payload_length == 5 && memcmp(answer, "OK 30", 5) == 0,
          "ADD 10 20: %s '%.*s'", utp_status_name(st), (int)info.payload_length, answer);
    CHECK(info.message_type == RESPONSE && (info.flags & REPLY_FLAG), "the answer is a RESPONSE naming "
          "its request: type 0x%x flags 0x%x", info.message_type, info.flags);

    int64_t r = 0;
    for (int i = 0; i < 20; i++) {
        st = utp_calc_call(ch, "MUL", i, 7, &r, 5000);
        CHECK(st == UTP_OK && r == i * 7, "MUL %d 7: %s %lld", i, utp_status_name(st), (long long)r);
    }

    /* Too large for the buffer: kept for utp_recv. */
    const char *sub = "SUB 1000 1";
    uint8_t tiny[2];
    st = utp_call(ch, (const uint8_t *)sub, strlen(sub), &info, tiny, sizeof tiny, 5000);
    CHECK(st == UTP_ERR_BUFFER_TOO_SMALL && info.payload_length == 6, "small buffer: %s len %u",
          utp_status_name(st), info.payload_length);
    st = utp_call(ch, (const uint8_t *)sub, strlen(sub), &info, answer, sizeof answer, 5000);
    CHECK(st == UTP_ERR_INVALID_ARGUMENT, "a call while an answer waits: %s", utp_status_name(st));
    st = utp_recv(ch, &info, answer, sizeof answer, 5000);
    CHECK(st == UTP_OK && info.payload_length == 6 && memcmp(answer, "OK 999", 6) == 0,
          "the kept answer: %s '%.*s'", utp_status_name(st), (int)info.payload_length, answer);

    /* An older server's answer names no request: taken. */
    const char *plain = "PLAIN ADD 2 3";
    st = utp_call(ch, (const uint8_t *)plain, strlen(plain), &info, answer, sizeof answer, 5000);
    /* (The stray before it names another request and is dropped.) */
    CHECK(st == UTP_OK && info.payload_length == 4 && memcmp(answer, "OK 5", 4) == 0 &&
              !(info.flags & REPLY_FLAG),
          "plain answer: %s '%.*s' flags 0x%x", utp_status_name(st), (int)info.payload_length, answer, info.flags);

    const char *refuse = "REFUSE";
    st = utp_call(ch, (const uint8_t *)refuse, strlen(refuse), &info, answer, sizeof answer, 5000);
    CHECK(st == UTP_ERR_PROTOCOL && utp_last_error_reason() == UTP_REASON_REFUSED &&
              strstr(utp_last_error(), "not today") != NULL,
          "refused: %s reason %s", utp_status_name(st), utp_reason_name(utp_last_error_reason()));

    /* Strays do not extend the call's deadline. */
    const char *slow = "SLOW";
    double started = now_s();
    st = utp_call(ch, (const uint8_t *)slow, strlen(slow), &info, answer, sizeof answer, 500);
    double took = now_s() - started;
    CHECK(st == UTP_ERR_TIMEOUT && took < 1.2, "slow: %s after %.2f s", utp_status_name(st), took);

    utp_channel_close(ch);
    int status = 0;
    waitpid(server, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server ended with status %d", status);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [URL...]\n", argv[0]);
        return 2;
    }
    pid_t servers[64];
    int ready[64];
    int count = argc - 1 < 64 ? argc - 1 : 64;
    for (int i = 0; i < count; i++) servers[i] = start_server(argv[i + 1], &ready[i]);
    for (int i = 0; i < count; i++) {
        CHECK(servers[i] > 0, "fork the server of %s", argv[i + 1]);
        if (servers[i] > 0) test_endpoint(argv[i + 1], servers[i], ready[i]);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
