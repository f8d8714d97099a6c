/* The one C header of utp, taken from the Rust crate so it never drifts. */
#include "../../../../crates/utp-ffi/include/utp.h"
