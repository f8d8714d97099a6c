//! [`ZenohChannel`]: one end of a link, with the client's handshake and
//! its reconnection after the server goes away.

use super::link::{Link, Role};
use super::{keys, session, zenoh_error};
use crate::channel::{Channel, Deadline, Options, PeerInfo};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::frame::{Frame, Stamper};
use crate::halves::{RecvHalf, SendHalf};
use crate::transport::message;
use crate::wake::{Doorbell, PollSet, Ticker};
use crate::{GoneReason, ProtocolReason};
use std::sync::Arc;
use std::time::Duration;
use zenoh::{Session, Wait};

/// Longest a single server lookup may take before it is asked again.
const LOOKUP_ROUND: Duration = Duration::from_secs(1);
/// Pause between lookups that found no server.
const LOOKUP_PAUSE: Duration = Duration::from_millis(50);
/// Longest text of a refusal taken from a remote server.
const MAX_REFUSAL: usize = 512;

/// A channel over zenoh; see the [module docs](super).
#[derive(Debug)]
pub struct ZenohChannel {
    session: Session,
    service: String,
    endpoint: String,
    options: Options,
    role: Role,
    link: Option<Link>,
    reconnect: bool,
    closed: bool,
    stamper: Stamper,
    encoded: Vec<u8>,
    peer: PeerInfo,
    /// What event loops wait on; it outlives links (a client's next link
    /// rings the same doorbell). `None` if the descriptors could not be made.
    ready: Option<Ready>,
}

/// A channel's readiness: a doorbell the link's callbacks ring once the
/// channel armed it, and a ticker (a peer counts as gone some time after its
/// token vanished, which no callback announces), as one descriptor.
#[derive(Debug)]
pub(super) struct Ready {
    pub(super) bell: Arc<Doorbell>,
    ticker: Ticker,
    set: PollSet,
}

/// How often an event loop waiting on a channel comes back to check whether
/// the peer's grace period ran out.
const READY_TICK: Duration = Duration::from_millis(100);

impl Ready {
    pub(super) fn new() -> Option<Ready> {
        let bell = Arc::new(Doorbell::new().ok()?);
        let ticker = Ticker::new(READY_TICK).ok()?;
        let set = PollSet::new(&[bell.fd(), ticker.fd()]).ok()?;
        Some(Ready { bell, ticker, set })
    }
}

impl ZenohChannel {
    /// Finds a server of `service` and opens a link to it.
    pub(super) fn connect(endpoint: &Endpoint, service: &str, options: &Options) -> Result<Self> {
        let reconnect = match endpoint.param("reconnect") {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(Error::BadUrl {
                    url: endpoint.to_string(),
                    reason: format!("reconnect={other:?}: expected on or off"),
                });
            }
        };
        let session = session::for_endpoint(endpoint, options)?;
        let mut channel = ZenohChannel::new(
            session,
            service,
            endpoint,
            options,
            Role::Client,
            Ready::new(),
        );
        channel.reconnect = reconnect;
        channel.attach(Deadline::after(Some(options.connect_timeout)))?;
        Ok(channel)
    }

    /// The server's end of a link a listener accepted.
    pub(super) fn accepted(
        session: Session,
        service: &str,
        endpoint: &Endpoint,
        options: &Options,
        link: Link,
        ready: Option<Ready>,
    ) -> Self {
        let mut channel =
            ZenohChannel::new(session, service, endpoint, options, Role::Server, ready);
        channel.peer.address = Some(link.name.clone());
        channel.link = Some(link);
        channel
    }

    fn new(
        session: Session,
        service: &str,
        endpoint: &Endpoint,
        options: &Options,
        role: Role,
        ready: Option<Ready>,
    ) -> Self {
        ZenohChannel {
            ready,
            session,
            service: service.to_string(),
            endpoint: endpoint.to_string(),
            options: options.clone(),
            role,
            link: None,
            reconnect: false,
            closed: false,
            stamper: Stamper::default(),
            encoded: Vec::new(),
            peer: PeerInfo::default(),
        }
    }

    /// Client handshake: declare our end, pick a server, ask it for the link.
    fn attach(&mut self, deadline: Deadline) -> Result<()> {
        let link_id = session::unique_id(&self.session, 'l');
        let link = Link::open(
            &self.session,
            &self.service,
            &link_id,
            Role::Client,
            self.options.connect_timeout,
            self.options.max_payload,
            self.ready.as_ref().map(|r| r.bell.clone()),
        )?;
        let server = self.find_server(deadline)?;
        self.ask_for_link(&server, &link_id, deadline)?;
        link.wait_for_peer(deadline)?;
        log::debug!(
            "{}: linked to server {server} as {}",
            self.endpoint,
            link.name
        );
        self.peer.address = Some(format!("zenoh server {server}"));
        self.link = Some(link);
        Ok(())
    }

    /// The id of the first server of the key to answer a liveliness query.
    fn find_server(&self, deadline: Deadline) -> Result<String> {
        loop {
            let round = deadline
                .remaining()
                .map_or(LOOKUP_ROUND, |l| l.min(LOOKUP_ROUND));
            let replies = self
                .session
                .liveliness()
                .get(keys::servers(&self.service))
                .timeout(round.max(Duration::from_millis(1)))
                .wait()
                .map_err(|e| zenoh_error("ask zenoh for the servers", e))?;
            while let Ok(reply) = replies.recv() {
                if let Ok(sample) = reply.result() {
                    if let Some(id) = keys::last_id(sample.key_expr().as_str()) {
                        return Ok(id.to_string());
                    }
                }
            }
            if deadline.remaining().is_some_and(|l| l.is_zero()) {
                return Err(Error::NotFound {
                    endpoint: self.endpoint.clone(),
                    reason: format!(
                        "no zenoh server declared this key within {:?} (is it running, and \
                         reachable? without multicast scouting, give ?connect=tcp/HOST:PORT)",
                        self.options.connect_timeout
                    ),
                });
            }
            std::thread::sleep(LOOKUP_PAUSE);
        }
    }

    /// One query to the chosen server's connect queryable, one reply.
    fn ask_for_link(&self, server: &str, link_id: &str, deadline: Deadline) -> Result<()> {
        let left = deadline.remaining().unwrap_or(self.options.connect_timeout);
        let replies = self
            .session
            .get(keys::connect(&self.service, server))
            .payload(link_id.as_bytes().to_vec())
            .timeout(left.max(Duration::from_millis(1)))
            .wait()
            .map_err(|e| zenoh_error("ask the zenoh server for a link", e))?;
        match replies.recv() {
            Ok(reply) => match reply.into_result() {
                Ok(_) => Ok(()),
                Err(refusal) => {
                    let text = refusal.payload().to_bytes();
                    let text = String::from_utf8_lossy(&text[..text.len().min(MAX_REFUSAL)]);
                    Err(Error::protocol(
                        ProtocolReason::Refused,
                        format!("the server refused the request: {text}"),
                    ))
                }
            },
            Err(_) => Err(Error::NotFound {
                endpoint: self.endpoint.clone(),
                reason: format!("server {server} did not answer the connect query in time"),
            }),
        }
    }

    fn link_mut(&mut self) -> Result<&mut Link> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.link.as_mut().ok_or_else(|| {
            Error::peer_gone(
                GoneReason::Unreachable,
                format!(
                    "{}: the server went away; the next send looks for one again",
                    self.endpoint
                ),
            )
        })
    }
}

impl ZenohChannel {
    /// Sends one frame; with `answers`, a reply naming that request.
    fn send_frame(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        // The sender checks the limit it knows (its own max_payload), so an
        // oversized frame fails at once here instead of at the receiver.
        message::encode(
            &mut self.stamper,
            message_type,
            flags,
            payload,
            answers,
            self.options.max_payload.min(u32::MAX as usize),
            "this zenoh channel; raise the max_payload option (?max_payload=N) on both ends",
            &mut self.encoded,
        )?;
        let lost = self.link.as_ref().is_none_or(Link::is_gone);
        if self.role == Role::Client && self.reconnect && lost {
            self.link = None;
            let budget = timeout.map_or(self.options.connect_timeout, |t| {
                t.min(self.options.connect_timeout)
            });
            self.attach(Deadline::after(Some(budget)))?;
        }
        let encoded = std::mem::take(&mut self.encoded);
        let result = self
            .link_mut()
            .and_then(|link| link.send(&encoded, timeout));
        self.encoded = encoded;
        result
    }
}

impl Channel for ZenohChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_frame(message_type, flags, payload, None, timeout)
    }

    fn reply_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        answers: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.send_frame(message_type, flags, payload, Some(answers), timeout)
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.stamper.last_sent()
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        let reconnect = self.role == Role::Client && self.reconnect;
        let link = self.link_mut()?;
        let result = link.recv(frame, timeout);
        if reconnect && link.reported_gone() {
            // Reported once; the next send looks for a server again.
            self.link = None;
            if let Some(ready) = &self.ready {
                ready.bell.ring_always();
            }
        }
        result
    }

    fn close(&mut self) -> Result<()> {
        self.closed = true;
        self.link = None;
        Ok(())
    }

    fn peer(&self) -> PeerInfo {
        self.peer.clone()
    }

    /// The doorbell the link's callbacks ring and a 100 ms ticker, as one
    /// descriptor. A client between links (its server went away; the next
    /// send looks for one again) is readable: its receive reports that.
    /// The doorbell is armed from the first call on: until then `try_recv`
    /// does not ask the link's callbacks to ring it (an eventfd write per
    /// frame) for a caller that polls and never waits on the descriptor.
    fn readiness(&self) -> Option<crate::channel::Readiness<'_>> {
        let ready = self.ready.as_ref()?;
        ready.bell.hand_out();
        ready.ticker.hand_out();
        Some(crate::channel::Readiness {
            fd: ready.set.fd(),
            frame_deadline: None,
            idle_timeout: None,
        })
    }

    fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        let nothing = |r: Result<()>| match r {
            Ok(()) => Ok(true),
            Err(Error::Timeout { .. }) => Ok(false),
            Err(e) => Err(e),
        };
        if nothing(self.recv_timeout(frame, Some(Duration::ZERO)))? {
            return Ok(true);
        }
        // Armed, then one more look: a frame delivered in between either
        // shows now or rings the doorbell. Only for a caller that waits on
        // the descriptor (see `readiness`).
        match &self.ready {
            Some(ready) if ready.bell.handed_out() => {
                ready.ticker.reset();
                ready.bell.arm();
            }
            _ => return Ok(false),
        }
        nothing(self.recv_timeout(frame, Some(Duration::ZERO)))
    }

    // The link's publisher of frames to the send half, its subscription
    // and credit to the receive half. Split channels do not look for a new
    // server when theirs goes away: both halves then report `PeerGone`.
    fn split(mut self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let link = self.link_mut()?;
        let sender_link = link.split_off_sender();
        self.reconnect = false;
        let sender = ZenohChannel {
            session: self.session.clone(),
            service: self.service.clone(),
            endpoint: self.endpoint.clone(),
            options: self.options.clone(),
            role: self.role,
            link: Some(sender_link),
            reconnect: false,
            closed: self.closed,
            stamper: std::mem::take(&mut self.stamper),
            encoded: std::mem::take(&mut self.encoded),
            peer: self.peer.clone(),
            // The receive half keeps the readiness (its doorbell is the link's).
            ready: None,
        };
        Ok(crate::halves::halves(sender, *self))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{flags, message_type};
    use crate::wake::{readable, readable_within};

    /// The doorbell of `channel`, without handing its descriptor out.
    fn bell_of(channel: &dyn Channel) -> std::os::fd::BorrowedFd<'_> {
        let zenoh = channel.as_any().unwrap().downcast_ref::<ZenohChannel>();
        zenoh.unwrap().ready.as_ref().unwrap().bell.fd()
    }

    #[test]
    fn a_polled_channel_is_rung_only_once_its_descriptor_is_out() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let key = format!("unit-zpoll-{}", std::process::id());
        let mut listener =
            crate::listen(&format!("zenoh://{key}?listen=tcp/127.0.0.1:{port}")).unwrap();
        let url = format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}");
        let client = std::thread::spawn(move || crate::connect(&url).unwrap());
        let mut server = listener
            .accept_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut client = client.join().unwrap();
        let mut frame = Frame::default();
        let take = |server: &mut Box<dyn Channel>, frame: &mut Frame| {
            let started = std::time::Instant::now();
            while !server.try_recv(frame).unwrap() {
                assert!(started.elapsed() < Duration::from_secs(20), "never arrived");
            }
        };

        for i in 0..20u8 {
            assert!(!server.try_recv(&mut frame).unwrap());
            client
                .send(message_type::DATA, flags::CHECKSUM, &[i])
                .unwrap();
            take(&mut server, &mut frame);
            assert_eq!(frame.payload(), [i]);
        }
        assert!(!readable(bell_of(&*server)), "a poller's bell was rung");

        let fd = server.readiness().unwrap().fd;
        assert!(readable(fd), "the first hand-out brings the loop back once");
        assert!(!server.try_recv(&mut frame).unwrap());
        assert!(!readable(bell_of(&*server)), "armed: drained");
        client
            .send(message_type::DATA, flags::CHECKSUM, b"x")
            .unwrap();
        assert!(
            readable_within(bell_of(&*server), Duration::from_secs(20)),
            "an event loop's bell is rung"
        );
        take(&mut server, &mut frame);
        assert_eq!(frame.payload(), b"x");
    }
}
