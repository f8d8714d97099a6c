//! One module per subcommand.

pub mod bench;
pub mod bench_seqlock;
pub mod bridge;
pub mod bridge_pubsub;
pub mod bridge_pump;
pub mod call;
pub mod completions;
pub mod demo;
pub mod doctor;
pub mod frame;
pub mod frames;
pub mod inspect;
pub mod inspect_cell;
pub mod inspect_pubsub;
pub mod listen;
pub mod ls;
pub mod man;
pub mod r#pub;
pub mod ready_file;
pub mod recv;
pub mod send;
pub mod serve;
pub mod stat;
pub mod sub;
pub mod wait;
