//! One module per subcommand.

pub mod bench;
pub mod call;
pub mod demo;
pub mod frame;
pub mod inspect;
pub mod ls;
pub mod serve;
