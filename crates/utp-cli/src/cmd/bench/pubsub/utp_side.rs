//! utp's pub/sub in the bench: shm://, drop policy, subscribers polling
//! with `try_recv_view` (waiting is the bench's, `idle.rs`), the publisher
//! writing each message in place through a loan.

use super::sides::{BenchPublisher, BenchSubscriber, MESSAGE, SLOTS};
use crate::cmd::bench::link::Fallible;
use utp::pubsub::{Publisher, Subscriber};

fn url(name: &str) -> String {
    format!("shm://{name}?slots={SLOTS}&slot=128&wait=spin")
}

/// The publisher.
pub struct UtpPublisher(Publisher);

impl UtpPublisher {
    /// Creates it.
    pub fn create(name: &str) -> Fallible<UtpPublisher> {
        Ok(UtpPublisher(Publisher::create(&url(name))?))
    }
}

impl BenchPublisher for UtpPublisher {
    fn publish(&mut self, payload: &[u8]) -> Fallible<()> {
        let mut loan = self.0.loan(payload.len())?;
        loan.payload_mut().copy_from_slice(payload);
        loan.commit_typed(utp::frame::message_type::DATA, 0)?;
        Ok(())
    }
}

/// A subscriber, and messages lost to overwrites not yet reported.
pub struct UtpSubscriber(Subscriber, u64);

impl UtpSubscriber {
    /// Subscribes.
    pub fn connect(name: &str) -> Fallible<UtpSubscriber> {
        Ok(UtpSubscriber(Subscriber::connect(&url(name))?, 0))
    }
}

impl BenchSubscriber for UtpSubscriber {
    fn try_recv(&mut self, buf: &mut [u8]) -> Fallible<Option<u64>> {
        match self.0.try_recv_view()? {
            Some(view) => match view.copy_to(&mut buf[..MESSAGE]) {
                Ok(_) => Ok(Some(view.lost_before() + std::mem::take(&mut self.1))),
                Err(utp::Error::Overwritten) => {
                    self.1 += view.lost_before() + 1;
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            },
            None => Ok(None),
        }
    }
}
