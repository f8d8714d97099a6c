//! Which `?key=value` options each transport understands.
//!
//! An option a transport does not know is an error listing the ones it does:
//! a misspelt `?allow_uids=` that silently did nothing would leave a server
//! open that its owner believed closed.

use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};

/// Options every transport takes (see [`Options`](crate::Options)).
const COMMON: &[&str] = &[
    "max_payload",
    "connect_timeout_ms",
    "frame_timeout_ms",
    "idle_timeout_ms",
];

/// The options `address`'s transport takes besides [`COMMON`].
fn specific(address: &Address) -> &'static [&'static str] {
    match address {
        Address::Shm(_) | Address::SysV(_) | Address::File(_) => {
            &["wait", "ring", "allow_uid", "allow_gid"]
        }
        Address::Unix(_) | Address::UnixAbstract(_) => &["framing", "allow_uid", "allow_gid"],
        Address::Fifo(_) => &["framing", "allow_uid", "allow_gid"],
        Address::Tcp(_) => &["framing", "congestion"],
        Address::Pipe(_) => &["framing", "pipe_size"],
        Address::Mq(_) => &["depth", "priority", "allow_uid", "allow_gid"],
        Address::Udp(_) | Address::Inproc(_) => &[],
        Address::Zenoh(_) => &[
            "connect",
            "listen",
            "mode",
            "config",
            "scout",
            "lease_ms",
            "reconnect",
        ],
    }
}

/// Checks that every option in `endpoint` is one its transport understands.
pub(crate) fn check(endpoint: &Endpoint) -> Result<()> {
    let specific = specific(&endpoint.address);
    let unknown = endpoint
        .params
        .iter()
        .map(|(key, _)| key.as_str())
        .find(|key| !COMMON.contains(key) && !specific.contains(key));
    let Some(key) = unknown else {
        return Ok(());
    };
    let valid: Vec<&str> = specific.iter().chain(COMMON).copied().collect();
    let hint = if matches!(key, "allow_uid" | "allow_gid") {
        format!(
            "; the {} transport cannot tell who the peer is, so it cannot restrict peers by id",
            endpoint.address.scheme()
        )
    } else {
        String::new()
    };
    Err(Error::BadUrl {
        url: endpoint.to_string(),
        reason: format!(
            "unknown option {key:?} for {}://; valid options: {}{hint}",
            endpoint.address.scheme(),
            valid.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_url(url: &str) -> Result<()> {
        check(&Endpoint::parse(url).unwrap())
    }

    #[test]
    fn known_options_pass() {
        check_url("shm://a?wait=spin&ring=64k&max_payload=1M").unwrap();
        check_url("sysv://0x1234?allow_uid=1&allow_gid=2").unwrap();
        check_url("file:///tmp/a?allow_uid=1").unwrap();
        check_url("unix:///tmp/a.sock?allow_uid=1&allow_gid=2&framing=length").unwrap();
        check_url("mq://a?depth=8&priority=3&connect_timeout_ms=10").unwrap();
        check_url("mq://a?allow_uid=1&allow_gid=2").unwrap();
        check_url("fifo:///tmp/a?allow_uid=1&allow_gid=2").unwrap();
    }

    #[test]
    fn a_misspelt_option_is_an_error_listing_the_valid_ones() {
        let err = check_url("unix:///tmp/a.sock?allow_uids=65534").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unknown option \"allow_uids\" for unix://"),
            "{text}"
        );
        assert!(
            text.contains("valid options: framing, allow_uid, allow_gid, max_payload"),
            "{text}"
        );
    }

    #[test]
    fn a_misspelt_shm_option_is_an_error() {
        let err = check_url("shm://a?allow_uids=65534")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("valid options: wait, ring, allow_uid, allow_gid"),
            "{err}"
        );
    }

    #[test]
    fn identity_options_on_ip_transports_say_why_they_cannot_work() {
        let err = check_url("tcp://127.0.0.1:1?allow_uid=0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot tell who the peer is"), "{err}");
        let err = check_url("udp://127.0.0.1:1?allow_gid=0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot tell who the peer is"), "{err}");
    }
}
