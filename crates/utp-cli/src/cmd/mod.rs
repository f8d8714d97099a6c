//! One module per subcommand.

pub mod bench;
pub mod bench_seqlock;
pub mod bridge;
pub mod bridge_pump;
pub mod call;
pub mod demo;
pub mod frame;
pub mod inspect;
pub mod inspect_cell;
pub mod ls;
pub mod serve;
