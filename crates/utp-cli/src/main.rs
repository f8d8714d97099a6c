//! The `utp` command.

fn main() {
    println!("utp {}", env!("CARGO_PKG_VERSION"));
}
