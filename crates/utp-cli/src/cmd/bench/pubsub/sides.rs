//! The three broadcast implementations behind one pair of traits: utp's
//! pub/sub, the raw ring (`raw_ring.rs`) and, with feature `peers`,
//! iceoryx2 publish-subscribe.

use crate::cmd::bench::link::Fallible;

/// Which implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The hand-written broadcast ring: the floor.
    Raw,
    /// `utp::pubsub` over shm://, drop policy, polled subscribers.
    Utp,
    /// iceoryx2 publish-subscribe, safe overflow, polled subscribers.
    Iceoryx2,
}

impl Kind {
    /// Its name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Utp => "utp",
            Kind::Iceoryx2 => "iceoryx2",
        }
    }

    /// From its name.
    pub fn parse(name: &str) -> Option<Kind> {
        [Kind::Raw, Kind::Utp, Kind::Iceoryx2]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The kinds built in.
    pub fn available() -> Vec<Kind> {
        let mut kinds = vec![Kind::Raw, Kind::Utp];
        if cfg!(feature = "peers") {
            kinds.push(Kind::Iceoryx2);
        }
        kinds
    }
}

/// A publisher of fixed-size messages.
pub trait BenchPublisher {
    /// Publishes `payload` (written in place where the implementation can).
    fn publish(&mut self, payload: &[u8]) -> Fallible<()>;

    /// Called once every subscriber process has said READY.
    fn subscribers_ready(&mut self) -> Fallible<()> {
        Ok(())
    }
}

/// A subscriber.
pub trait BenchSubscriber {
    /// Copies the next message into `buf` if there is one; returns
    /// `Some(lost just before it)`, or `None` if nothing is there yet.
    fn try_recv(&mut self, buf: &mut [u8]) -> Fallible<Option<u64>>;
}

/// Slots (or buffered samples) per subscriber in every implementation.
pub const SLOTS: usize = 4096;
/// Message size (sequence, send time, padding).
pub const MESSAGE: usize = 64;

/// Creates the publisher of `kind` at `name` for `subscribers`.
pub fn publisher(kind: Kind, name: &str, subscribers: usize) -> Fallible<Box<dyn BenchPublisher>> {
    Ok(match kind {
        Kind::Raw => Box::new(super::raw_ring::RawPublisher::create(name)?),
        Kind::Utp => Box::new(super::utp_side::UtpPublisher::create(name)?),
        Kind::Iceoryx2 => iceoryx2_publisher(name, subscribers)?,
    })
}

/// Opens a subscriber of `kind` at `name`.
pub fn subscriber(
    kind: Kind,
    name: &str,
    subscribers: usize,
) -> Fallible<Box<dyn BenchSubscriber>> {
    Ok(match kind {
        Kind::Raw => Box::new(super::raw_ring::RawSubscriber::open(name)?),
        Kind::Utp => Box::new(super::utp_side::UtpSubscriber::connect(name)?),
        Kind::Iceoryx2 => iceoryx2_subscriber(name, subscribers)?,
    })
}

#[cfg(feature = "peers")]
fn iceoryx2_publisher(name: &str, subscribers: usize) -> Fallible<Box<dyn BenchPublisher>> {
    Ok(Box::new(super::iceoryx2_side::IoxPublisher::create(
        name,
        subscribers,
    )?))
}

#[cfg(feature = "peers")]
fn iceoryx2_subscriber(name: &str, subscribers: usize) -> Fallible<Box<dyn BenchSubscriber>> {
    Ok(Box::new(super::iceoryx2_side::IoxSubscriber::open(
        name,
        subscribers,
    )?))
}

#[cfg(not(feature = "peers"))]
fn iceoryx2_publisher(_: &str, _: usize) -> Fallible<Box<dyn BenchPublisher>> {
    Err("iceoryx2 is not built in (cargo feature `peers`)".into())
}

#[cfg(not(feature = "peers"))]
fn iceoryx2_subscriber(_: &str, _: usize) -> Fallible<Box<dyn BenchSubscriber>> {
    Err("iceoryx2 is not built in (cargo feature `peers`)".into())
}

/// Removes what a run of `kind` at `name` may leave behind.
pub fn cleanup(kind: Kind, name: &str) {
    match kind {
        Kind::Raw => super::raw_ring::cleanup(name),
        Kind::Utp => {}
        #[cfg(feature = "peers")]
        Kind::Iceoryx2 => super::iceoryx2_side::cleanup(name),
        #[cfg(not(feature = "peers"))]
        Kind::Iceoryx2 => {}
    }
}
