//! `INSPECT`/`REPORT`: the publisher's state as text lines of `key=value`
//! fields (one `publisher` line, one `subscriber` line per member, one
//! `departed` line per recently departed member), readable by people and
//! parsed back by `utp inspect`.

use crate::ProtocolReason;
use crate::error::{Error, Result};

/// One live subscriber as the publisher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberStatus {
    /// Publisher-assigned id.
    pub id: u32,
    /// Process id (0 over tcp).
    pub pid: u32,
    /// `drop` or `block`.
    pub policy: String,
    /// Message number it joined at.
    pub joined_at: u64,
    /// Next message it will read.
    pub cursor: u64,
    /// Messages published that it has not read yet.
    pub lag: u64,
    /// Messages it received.
    pub received: u64,
    /// Messages it lost.
    pub lost: u64,
}

/// The publisher's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Publisher process id.
    pub publisher_pid: u32,
    /// `shm` or `stream`.
    pub transport: String,
    /// Ring slots (0 for streams).
    pub slots: u64,
    /// Slot size (0 for streams; per-subscriber queue length in `slots` then).
    pub slot_size: u64,
    /// Messages published.
    pub published: u64,
    /// Live subscribers.
    pub subscribers: Vec<SubscriberStatus>,
    /// Recently departed: (id, pid, reason).
    pub departed: Vec<(u32, u32, String)>,
}

impl Report {
    /// The text form.
    pub fn encode(&self) -> String {
        let mut out = format!(
            "publisher pid={} transport={} slots={} slot_size={} published={}\n",
            self.publisher_pid, self.transport, self.slots, self.slot_size, self.published
        );
        for s in &self.subscribers {
            out.push_str(&format!(
                "subscriber id={} pid={} policy={} joined_at={} cursor={} lag={} received={} lost={}\n",
                s.id, s.pid, s.policy, s.joined_at, s.cursor, s.lag, s.received, s.lost
            ));
        }
        for (id, pid, reason) in &self.departed {
            out.push_str(&format!(
                "departed id={id} pid={pid} reason={}\n",
                reason.replace('\n', " ")
            ));
        }
        out
    }

    /// Parses the text form.
    pub fn decode(text: &str) -> Result<Report> {
        let bad = |why: String| {
            Error::protocol(
                ProtocolReason::Corrupt,
                format!("bad inspect report: {why}"),
            )
        };
        let mut report: Option<Report> = None;
        for line in text.lines() {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            let field = |key: &str| -> Option<&str> {
                if kind == "departed" && key == "reason" {
                    return rest.split_once("reason=").map(|(_, r)| r);
                }
                rest.split(' ')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            };
            let num = |key: &str| -> Result<u64> {
                field(key)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(format!("{kind} line lacks a numeric {key}: {line:?}")))
            };
            match kind {
                "publisher" => {
                    report = Some(Report {
                        publisher_pid: num("pid")? as u32,
                        transport: field("transport").unwrap_or("shm").to_string(),
                        slots: num("slots")?,
                        slot_size: num("slot_size")?,
                        published: num("published")?,
                        subscribers: Vec::new(),
                        departed: Vec::new(),
                    })
                }
                "subscriber" => {
                    let status = SubscriberStatus {
                        id: num("id")? as u32,
                        pid: num("pid")? as u32,
                        policy: field("policy").unwrap_or("drop").to_string(),
                        joined_at: num("joined_at")?,
                        cursor: num("cursor")?,
                        lag: num("lag")?,
                        received: num("received")?,
                        lost: num("lost")?,
                    };
                    report
                        .as_mut()
                        .ok_or_else(|| bad("subscriber before publisher".into()))?
                        .subscribers
                        .push(status);
                }
                "departed" => {
                    let entry = (
                        num("id")? as u32,
                        num("pid")? as u32,
                        field("reason").unwrap_or("").to_string(),
                    );
                    report
                        .as_mut()
                        .ok_or_else(|| bad("departed before publisher".into()))?
                        .departed
                        .push(entry);
                }
                "" => {}
                other => return Err(bad(format!("unknown line kind {other:?}"))),
            }
        }
        report.ok_or_else(|| bad("no publisher line".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let r = Report {
            publisher_pid: 7,
            transport: "shm".into(),
            slots: 16,
            slot_size: 128,
            published: 99,
            subscribers: vec![SubscriberStatus {
                id: 1,
                pid: 8,
                policy: "block".into(),
                joined_at: 3,
                cursor: 90,
                lag: 9,
                received: 80,
                lost: 7,
            }],
            departed: vec![(2, 9, "its process no longer exists".into())],
        };
        assert_eq!(Report::decode(&r.encode()).unwrap(), r);
        assert!(Report::decode("subscriber id=1").is_err());
        assert!(Report::decode("").is_err());
    }
}
