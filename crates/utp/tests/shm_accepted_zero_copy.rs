//! A server reaches the concrete `ShmLink` of the channels it accepts
//! (`downcast` on what `utp::listen` accepts, or `ShmListener::accept_link`)
//! and serves client processes with the zero-copy calls: requests read in
//! place, replies written in place. Clients are this binary re-executed
//! (`shm_util`'s "calls" role: N calculator calls, each answer checked).

mod shm_util;

use shm_util::{Proc, unique};
use std::time::Duration;
use utp::Channel;
use utp::frame::{flags, message_type};
use utp::shm::ShmLink;

const LONG: Option<Duration> = Some(Duration::from_secs(10));

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    shm_util::child_entry(|_, _, _| false);
}

/// Answers calculator requests on `link` until the client goes, reading
/// each request in place and writing each reply in place. Returns how many.
fn serve_zero_copy(link: &mut ShmLink) -> usize {
    let mut request = Vec::new();
    let mut served = 0;
    loop {
        match link.recv_view(LONG) {
            Ok(view) => {
                assert_eq!(view.header().message_type, message_type::REQUEST);
                // The checksum is verified on the private copy.
                view.copy_payload(&mut request).unwrap();
            }
            Err(utp::Error::PeerGone { .. }) => return served,
            Err(e) => panic!("recv_view on an accepted link: {e}"),
        }
        let reply = utp::service::calc::evaluate(&request);
        let mut room = link.reserve(reply.len(), LONG).unwrap();
        assert!(room.payload_mut().copy_from(reply.as_bytes()));
        room.commit(message_type::RESPONSE, flags::CHECKSUM);
        served += 1;
    }
}

#[test]
fn a_server_downcasts_accepted_channels_and_answers_in_place() {
    let url = format!("shm://{}", unique("zc-downcast"));
    let mut listener = utp::listen(&url).unwrap();
    for round in 0..2 {
        let mut client = Proc::spawn("calls", &url, "300");
        let accepted = listener.accept_timeout(LONG).unwrap();
        // Asking for the wrong type gives the channel back, still working.
        let accepted = match accepted.downcast::<utp::transport::inproc::InprocChannel>() {
            Ok(_) => panic!("an shm link is not an inproc channel"),
            Err(channel) => channel,
        };
        assert!(
            accepted.peer().pid.is_some(),
            "the channel came back intact"
        );
        let mut link: ShmLink = accepted
            .downcast()
            .expect("an shm listener accepts ShmLinks");
        assert_eq!(link.peer().pid, Some(client.pid()), "round {round}");
        assert_eq!(serve_zero_copy(&mut link), 300, "round {round}");
        client.expect("DONE");
        client.wait_ok();
    }
    drop(listener);
}

#[test]
fn accept_link_gives_the_concrete_link() {
    let url = format!("shm://{}", unique("zc-accept-link"));
    let endpoint = utp::Endpoint::parse(&url).unwrap();
    let mut listener = utp::shm::listen(&endpoint, &utp::Options::default()).unwrap();
    let mut client = Proc::spawn("calls", &url, "100");
    let mut link = listener.accept_link(LONG).unwrap();
    assert_eq!(serve_zero_copy(&mut link), 100);
    client.expect("DONE");
    client.wait_ok();
}

#[test]
fn downcasting_to_the_wrong_type_gives_the_channel_back() {
    // Transports that are not shm, and the counted wrapper, report their
    // own concrete type; nothing panics on a mismatch.
    let name = unique("zc-inproc");
    let mut listener = utp::listen(&format!("inproc://{name}")).unwrap();
    let client = utp::connect(&format!("inproc://{name}")).unwrap();
    let server = listener.accept().unwrap();
    assert!(server.downcast::<ShmLink>().is_err());
    let inproc: utp::transport::inproc::InprocChannel =
        client.downcast().expect("an inproc channel");
    drop(inproc);
}
