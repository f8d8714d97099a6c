//! Runs the library's examples as tests, so they cannot rot.

#[path = "../examples/event_loop.rs"]
mod event_loop;

#[test]
fn event_loop_serves_three_transports_from_one_mio_poll() {
    event_loop::main().expect("the event_loop example");
}
