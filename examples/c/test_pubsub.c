/* Tests of the utp pub/sub C ABI.
 *
 *   ./test_pubsub NAME [RUST_PUBLISHER_URL]
 *
 * In-process: a C publisher and subscriber on shm://NAME (delivery, exact
 * loss, a too-small buffer, publisher gone). With a second URL: subscribes
 * to a Rust `utp pub` that publishes the lines "line 0" .. "line 99".
 * Ends with "N passed, M failed"; exits non-zero if any failed. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <time.h>
#include "utp.h"
#include "check.h"

static void test_in_process(const char *name) {
    char url[256];
    snprintf(url, sizeof url, "shm://%s?slots=64&slot=128", name);
    UtpPublisher *pub = NULL;
    UtpStatus st = utp_pub_create(url, &pub);
    CHECK(st == UTP_OK, "pub_create %s: %s", url, utp_status_name(st));
    if (st != UTP_OK) return;
    UtpSubscriber *sub = NULL;
    st = utp_sub_connect(url, &sub);
    CHECK(st == UTP_OK, "sub_connect: %s", utp_status_name(st));
    if (st != UTP_OK) { utp_pub_close(pub); return; }

    char msg[64], buf[128];
    UtpMessageInfo info;
    for (int i = 0; i < 10; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        uint64_t seq = 99;
        st = utp_pub_send(pub, 0x05, (const uint8_t *)msg, (size_t)n, &seq);
        CHECK(st == UTP_OK && seq == (uint64_t)i, "send %d: %s seq %llu", i, utp_status_name(st), (unsigned long long)seq);
    }
    for (int i = 0; i < 10; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 5000);
        CHECK(st == UTP_OK && info.sequence == (uint64_t)i && info.lost_before == 0 &&
                  info.payload_length == (uint32_t)n && memcmp(buf, msg, (size_t)n) == 0 &&
                  info.message_type == 0x05,
              "recv %d: %s seq %llu", i, utp_status_name(st), (unsigned long long)info.sequence);
    }

    /* A buffer too small keeps the message for the next call. */
    utp_pub_send(pub, 0x01, (const uint8_t *)"0123456789", 10, NULL);
    st = utp_sub_recv(sub, &info, (uint8_t *)buf, 4, 5000);
    CHECK(st == UTP_ERR_BUFFER_TOO_SMALL && info.payload_length == 10, "small buffer: %s", utp_status_name(st));
    st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 5000);
    CHECK(st == UTP_OK && info.sequence == 10 && memcmp(buf, "0123456789", 10) == 0, "kept message: %s", utp_status_name(st));

    /* 200 messages into a 64-slot ring without reading: exact loss. */
    for (int i = 0; i < 200; i++) utp_pub_send(pub, 0x01, (const uint8_t *)&i, sizeof i, NULL);
    uint64_t got = 0, lost_seen = 0, last = 0;
    while (last != 210) {
        st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 5000);
        if (st != UTP_OK) break;
        got++;
        lost_seen += info.lost_before;
        last = info.sequence;
    }
    uint64_t received = 0, lost = 0;
    utp_sub_counts(sub, &received, &lost);
    CHECK(st == UTP_OK && lost > 0 && lost == lost_seen && got + lost == 200 && received == 11 + got,
          "loss: got %llu lost %llu (seen %llu) received %llu", (unsigned long long)got,
          (unsigned long long)lost, (unsigned long long)lost_seen, (unsigned long long)received);

    st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 20);
    CHECK(st == UTP_ERR_TIMEOUT, "nothing published: %s", utp_status_name(st));
    utp_pub_close(pub);
    st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 5000);
    CHECK(st == UTP_ERR_PEER_GONE, "publisher closed: %s", utp_status_name(st));
    utp_sub_close(sub);
    CHECK(utp_sub_close(NULL) == UTP_OK && utp_pub_close(NULL) == UTP_OK, "close NULL");
}

/* An event loop: arm, poll the eventfd, receive. */
static void test_notify(const char *name) {
    char url[256];
    snprintf(url, sizeof url, "shm://%s-notify?wait=spin&notify=eventfd", name);
    UtpPublisher *pub = NULL;
    UtpSubscriber *sub = NULL;
    UtpStatus st = utp_pub_create(url, &pub);
    CHECK(st == UTP_OK, "pub_create: %s", utp_status_name(st));
    if (st != UTP_OK) return;
    st = utp_sub_connect(url, &sub);
    CHECK(st == UTP_OK, "sub_connect: %s", utp_status_name(st));
    if (st != UTP_OK) { utp_pub_close(pub); return; }
    int fd = -1, ready = -1;
    CHECK(utp_sub_notify_fd(sub, &fd) == UTP_OK && fd >= 0, "notify fd %d", fd);
    CHECK(utp_sub_arm(sub, &ready) == UTP_OK && ready == 0, "arm: ready %d", ready);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 20) == 0, "quiet before any message");
    utp_pub_send(pub, 0x05, (const uint8_t *)"tick", 4, NULL);
    CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "readable after a message");
    UtpMessageInfo info;
    char buf[16];
    st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 0);
    CHECK(st == UTP_OK && info.payload_length == 4 && memcmp(buf, "tick", 4) == 0, "recv: %s", utp_status_name(st));
    utp_pub_send(pub, 0x05, (const uint8_t *)"tock", 4, NULL);
    CHECK(utp_sub_arm(sub, &ready) == UTP_OK && ready == 1, "arm with a message waiting: ready %d", ready);
    utp_sub_close(sub);
    utp_pub_close(pub);
}

static void test_rust_publisher(const char *url) {
    UtpSubscriber *sub = NULL;
    UtpStatus st = UTP_ERR_NOT_FOUND;
    for (int tries = 0; tries < 200 && st != UTP_OK; tries++) {
        st = utp_sub_connect(url, &sub);
        if (st != UTP_OK) nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    CHECK(st == UTP_OK, "subscribe to the Rust publisher %s: %s", url, utp_status_name(st));
    if (st != UTP_OK) return;
    char want[32], buf[64];
    UtpMessageInfo info;
    for (int i = 0; i < 100; i++) {
        int n = snprintf(want, sizeof want, "line %d", i);
        st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 10000);
        CHECK(st == UTP_OK && info.sequence == (uint64_t)i && info.payload_length == (uint32_t)n &&
                  memcmp(buf, want, (size_t)n) == 0,
              "line %d: %s", i, utp_status_name(st));
    }
    st = utp_sub_recv(sub, &info, (uint8_t *)buf, sizeof buf, 10000);
    CHECK(st == UTP_ERR_PEER_GONE, "after the last line: %s", utp_status_name(st));
    utp_sub_close(sub);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s NAME [RUST_PUBLISHER_URL]\n", argv[0]);
        return 2;
    }
    test_in_process(argv[1]);
    test_notify(argv[1]);
    if (argc > 2) test_rust_publisher(argv[2]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
