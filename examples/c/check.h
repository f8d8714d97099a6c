/* The C tests' one assertion: CHECK(cond, printf-style message) counts a
 * pass or prints the failure with utp_last_error() and counts it. Each test
 * ends by printing "N passed, M failed" and exits non-zero if any failed. */
#ifndef UTP_EXAMPLES_CHECK_H
#define UTP_EXAMPLES_CHECK_H

#include <stdio.h>
#include "utp.h"

static int passed, failed;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (cond) {                                        \
            passed++;                                      \
        } else {                                           \
            failed++;                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, " [last error: %s]\n", utp_last_error()); \
        }                                                  \
    } while (0)

#endif
