/* A calculator client in plain C over the utp C ABI.
 *
 *   ./calc_client URL OP A B      e.g.  ./calc_client shm://calc ADD 10 20
 *
 * Prints the result and exits 0; prints the calculator's ERR message and
 * exits 1; prints the error and exits 2 if the server cannot be reached. */
#include <stdio.h>
#include <stdlib.h>
#include "utp.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL OP A B\n", argv[0]);
        return 2;
    }
    UtpChannel *channel = NULL;
    UtpStatus status = utp_connect(argv[1], &channel);
    if (status != UTP_OK) {
        fprintf(stderr, "%s: %s\n", utp_status_name(status), utp_last_error());
        return 2;
    }
    int64_t result = 0;
    status = utp_calc_call(channel, argv[2], strtoll(argv[3], NULL, 10), strtoll(argv[4], NULL, 10),
                           &result, 5000);
    int code = 0;
    if (status == UTP_OK) {
        printf("%lld\n", (long long)result);
    } else if (status == UTP_ERR_CALC) {
        fprintf(stderr, "%s\n", utp_last_error());
        code = 1;
    } else {
        fprintf(stderr, "%s: %s\n", utp_status_name(status), utp_last_error());
        code = 2;
    }
    utp_channel_close(channel);
    return code;
}
