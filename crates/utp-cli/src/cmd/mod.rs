//! One module per subcommand.

pub mod bench;
pub mod bench_seqlock;
pub mod call;
pub mod demo;
pub mod frame;
pub mod inspect;
pub mod inspect_cell;
pub mod inspect_pubsub;
pub mod ls;
pub mod r#pub;
pub mod serve;
pub mod sub;
