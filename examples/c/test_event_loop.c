/* A calculator server in C that serves all its clients from one thread and
 * one poll(): the listener's descriptor (utp_listener_fd) and each
 * channel's (utp_channel_fd), accepts and receives with a timeout of 0,
 * replies with utp_try_reply, which never waits and names the request
 * it answers.
 *
 *   ./test_event_loop URL FORKED EXTRA CALLS
 *
 * Forks FORKED client processes before it listens (so no utp thread exists
 * at the fork): client 0 makes one call and exits without closing its
 * channel; client 1 makes one and sends another, then kills itself before
 * the answer; client 2 asks for 1 KB answers and never reads them (the
 * server drops it when utp_try_reply finds no room: it never waits for one
 * client); the others make CALLS calls each (ADD, MUL) and check every
 * answer.
 * EXTRA more clients come from elsewhere (run-tests starts `utp call`
 * processes once READY is printed). The server runs until FORKED + EXTRA
 * links have ended, then checks the count of requests it received, that the
 * children ended as planned, and that poll() did not keep returning with
 * nothing to do (no busy loop). Ends with "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <poll.h>
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

enum { MAX_LINKS = 64, REQUEST = 0x10, RESPONSE = 0x11, HEARTBEAT = 0x02, GOODBYE = 0x13 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static UtpChannel *connect_retrying(const char *url) {
    for (int i = 0; i < 400; i++) {
        UtpChannel *ch = NULL;
        if (utp_connect(url, &ch) == UTP_OK) return ch;
        struct timespec pause = {0, 25 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "client %d: cannot connect to %s: %s\n", (int)getpid(), url, utp_last_error());
    return NULL;
}

/* One forked client; never returns. */
static void client(const char *url, int index, int calls) {
    UtpChannel *ch = connect_retrying(url);
    if (ch == NULL) _exit(3);
    int64_t r = 0;
    if (index == 0) {
        /* One call, then gone without a goodbye. */
        _exit(utp_calc_call(ch, "ADD", 1, 1, &r, 10000) == UTP_OK && r == 2 ? 0 : 4);
    }
    if (index == 1) {
        /* A request whose asker dies before the answer (after one call, so
         * the server has its link: a FIFO server sees a client only once
         * its session starts). */
        if (utp_calc_call(ch, "ADD", 2, 2, &r, 10000) != UTP_OK || r != 4) _exit(4);
        const char *request = "ADD 7 8";
        if (utp_send(ch, REQUEST, 1, (const uint8_t *)request, strlen(request), 10000) != UTP_OK) _exit(5);
        raise(SIGKILL);
    }
    if (index == 2) {
        /* Asks for 1 KB answers and never reads them: the server drops it
         * once they fill the channel (its utp_try_reply says UTP_ERR_FULL).
         * Its sends fail then: at once over a socket; over a FIFO, whose
         * listener still reads the request FIFO, within half of that
         * pipe's capacity (its client looks for the end as it writes). */
        if (utp_calc_call(ch, "ADD", 3, 3, &r, 10000) != UTP_OK || r != 6) _exit(4);
        const char *request = "PAD 1000";
        for (int i = 0; i < 200000; i++) {
            UtpStatus st = utp_send(ch, REQUEST, 1, (const uint8_t *)request, strlen(request), 10000);
            if (st == UTP_ERR_PEER_GONE) _exit(0);
            if (st != UTP_OK) {
                fprintf(stderr, "flooder: request %d: %s [%s]\n", i, utp_status_name(st), utp_last_error());
                _exit(7);
            }
        }
        _exit(8); /* never dropped */
    }
    int bad = 0;
    for (int i = 0; i < calls; i++) {
        int64_t a = index * 1000 + i, b = i % 7 - 3;
        const char *op = i % 2 ? "MUL" : "ADD";
        UtpStatus st = utp_calc_call(ch, op, a, b, &r, 10000);
        int64_t want = i % 2 ? a * b : a + b;
        if (st != UTP_OK || r != want) {
            fprintf(stderr, "client %d call %d: %s %" PRId64 " %" PRId64 " -> %s %" PRId64 " [%s]\n", index,
                    i, op, a, b, utp_status_name(st), r, utp_last_error());
            bad++;
        }
    }
    utp_channel_close(ch);
    _exit(bad ? 6 : 0);
}

static int live, ended, dropped, received, padded, idle_wakes, wakes, peers_known;

/* The calculator's answer (calc_reply.h); and "PAD N" -> "OK" and N - 2
 * bytes more, for the client that never reads. */
static int answer(const uint8_t *request, size_t len, char *reply, size_t room) {
    long long pad = 0;
    char text[32];
    size_t head = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, request, head);
    text[head] = '\0';
    if (sscanf(text, "PAD %lld", &pad) == 1 && pad >= 2 && (size_t)pad <= room) {
        memset(reply, 'x', (size_t)pad);
        memcpy(reply, "OK", 2);
        padded++;
        return (int)pad;
    }
    return calc_reply((const char *)request, len, reply, room);
}

typedef struct {
    UtpChannel *ch;
    int fd;
} Link;

static Link links[MAX_LINKS];

/* Closes link i, which ended with `why`: UTP_OK for a client's GOODBYE. */
static void end_link(int i, UtpStatus why) {
    CHECK(why == UTP_OK || why == UTP_ERR_PEER_GONE, "a link ended with %s", utp_status_name(why));
    utp_channel_close(links[i].ch);
    links[i] = links[--live];
    ended++;
}

/* Receives what link i has, answering requests. Returns whether anything
 * happened (a frame, or the link's end). */
static int drain(int i) {
    int progress = 0;
    for (;;) {
        UtpFrameInfo info;
        uint8_t buf[256];
        UtpStatus st = utp_recv(links[i].ch, &info, buf, sizeof buf, 0);
        if (st == UTP_ERR_TIMEOUT) return progress;
        progress = 1;
        if (st != UTP_OK) {
            end_link(i, st);
            return progress;
        }
        if (info.message_type == HEARTBEAT) continue;
        if (info.message_type == GOODBYE) {
            end_link(i, UTP_OK);
            return progress;
        }
        CHECK(info.message_type == REQUEST, "a REQUEST, got 0x%02x", info.message_type);
        received++;
        char reply[1024];
        int n = answer(buf, info.payload_length, reply, sizeof reply);
        st = utp_try_reply(links[i].ch, RESPONSE, 1, info.sequence, (const uint8_t *)reply, (uintptr_t)n);
        /* The asker killed before its answer may be gone already. */
        if (st == UTP_ERR_PEER_GONE) {
            end_link(i, st);
            return progress;
        }
        /* A client that does not read its answers is dropped; the loop
         * never waits for it. */
        if (st == UTP_ERR_FULL) {
            dropped++;
            end_link(i, UTP_OK);
            return progress;
        }
        CHECK(st == UTP_OK, "try_reply of a %d-byte reply: %s", n, utp_status_name(st));
    }
}

static void accept_all(UtpListener *listener) {
    for (;;) {
        UtpChannel *ch = NULL;
        UtpStatus st = utp_accept(listener, 0, &ch);
        if (st == UTP_ERR_TIMEOUT) return;
        CHECK(st == UTP_OK, "accept: %s", utp_status_name(st));
        if (st != UTP_OK) return;
        int fd = -1, wait_ms = 99;
        st = utp_channel_fd(ch, &fd, &wait_ms);
        CHECK(st == UTP_OK && fd >= 0 && wait_ms == -1, "channel_fd: %s fd %d wait %d", utp_status_name(st), fd,
              wait_ms);
        /* Who it is: a process of this user (utp refuses others' unless the
         * URL admits them), where the mechanism tells. */
        UtpPeer peer;
        char address[512];
        st = utp_channel_peer(ch, &peer, address, sizeof address);
        CHECK(st == UTP_OK && (peer.uid == -1 || peer.uid == (int64_t)getuid()) &&
                  strlen(address) == peer.address_length,
              "channel_peer: %s uid %" PRId64 " address '%s'", utp_status_name(st), peer.uid, address);
        if (peer.pid >= 0) peers_known++;
        if (live == MAX_LINKS || fd < 0) {
            utp_channel_close(ch);
            continue;
        }
        links[live++] = (Link){ch, fd};
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL FORKED EXTRA CALLS\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    int forked = atoi(argv[2]), extra = atoi(argv[3]), calls = atoi(argv[4]);
    if (forked < 3 || forked + extra > MAX_LINKS) {
        fprintf(stderr, "FORKED must be at least 3 and FORKED + EXTRA at most %d\n", MAX_LINKS);
        return 2;
    }
    pid_t children[MAX_LINKS];
    for (int i = 0; i < forked; i++) {
        children[i] = fork();
        if (children[i] == 0) client(url, i, calls);
    }

    UtpListener *listener = NULL;
    UtpStatus st = utp_listen(url, &listener);
    CHECK(st == UTP_OK, "listen %s: %s", url, utp_status_name(st));
    if (st != UTP_OK) {
        for (int i = 0; i < forked; i++) kill(children[i], SIGKILL);
        while (wait(NULL) > 0) {}
        return 1;
    }
    int listener_fd = -1;
    st = utp_listener_fd(listener, &listener_fd);
    CHECK(st == UTP_OK && listener_fd >= 0, "listener_fd: %s fd %d", utp_status_name(st), listener_fd);
    printf("READY\n");
    fflush(stdout);

    double started = now_s(), give_up = started + 60;
    struct pollfd fds[MAX_LINKS + 1];
    while (ended < forked + extra && now_s() < give_up) {
        accept_all(listener);
        for (int i = live - 1; i >= 0; i--) drain(i);
        /* Wait: the listener and every link, as long as the nearest frame
         * deadline allows (-1: none), at most a second a round. */
        int wait_ms = 1000;
        fds[0] = (struct pollfd){listener_fd, POLLIN, 0};
        for (int i = 0; i < live; i++) {
            int fd = -1, link_wait = -1;
            st = utp_channel_fd(links[i].ch, &fd, &link_wait);
            CHECK(st == UTP_OK && fd == links[i].fd, "the descriptor stays the same: %d, then %d", links[i].fd, fd);
            if (link_wait >= 0 && link_wait < wait_ms) wait_ms = link_wait;
            fds[i + 1] = (struct pollfd){links[i].fd, POLLIN, 0};
        }
        int n = poll(fds, (nfds_t)live + 1, wait_ms);
        if (n <= 0) continue;
        wakes++;
        /* A wake-up that finds nothing to do, counted (then the top of the loop
         * tries everything again). */
        int progress = 0, before = live;
        if (fds[0].revents) {
            accept_all(listener);
            progress |= live != before;
        }
        for (int i = before - 1; i >= 0; i--) {
            if (fds[i + 1].revents) progress |= drain(i);
        }
        if (!progress) idle_wakes++;
    }
    CHECK(ended == forked + extra, "%d of %d links ended (the rest timed out)", ended, forked + extra);
    /* Clients 0, 1 and 2 send 1, 2 and 1 requests (not counting PADs). */
    int expected = 1 + 2 + 1 + (forked - 3) * calls + extra;
    CHECK(received - padded == expected, "received %d requests, expected %d (and the flooder's %d)", received - padded,
          expected, padded);
    CHECK(dropped == 1 && padded > 0, "dropped %d clients that did not read (after %d answers)",
          dropped, padded);
    /* Some descriptors tick (mq's every 100 ms, a FIFO listener's every 20 ms
     * while a session runs: docs/event-loops.md); a busy loop would wake
     * tens of thousands of times a second. */
    double elapsed = now_s() - started;
    CHECK(idle_wakes <= 10 + (int)(100 * elapsed), "%d of %d wake-ups in %.1f s found nothing to do", idle_wakes,
          wakes, elapsed);
    for (int i = 0; i < live; i++) utp_channel_close(links[i].ch);
    utp_listener_close(listener);

    for (int i = 0; i < forked; i++) {
        int status = 0;
        CHECK(waitpid(children[i], &status, 0) == children[i], "wait for client %d", i);
        if (i == 1) {
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "client 1 killed itself: status %d", status);
        } else {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client %d: status %d", i, status);
        }
    }
    printf("%s: %d requests over %d links (%d with a known pid; %d dropped after %d answers they did not read), %d "
           "wake-ups (%d found nothing); %d passed, %d failed\n",
           url, received, forked + extra, peers_known, dropped, padded, wakes, idle_wakes, passed, failed);
    return failed != 0;
}
