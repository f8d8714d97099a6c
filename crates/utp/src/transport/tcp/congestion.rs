//! Which congestion control a `tcp://` connection sends with.
//!
//! A connection between two sockets of this machine crosses no link: there
//! is no bandwidth to share and no queue to keep short, yet the kernel's
//! default algorithm may pace. BBR (the default on some distributions and
//! cloud images, and on the hosts this project is measured on) spaces a
//! connection's packets with a timer, armed again for almost every packet;
//! in a virtual machine each arming is an exit to the hypervisor. Streaming
//! 64 KiB messages over loopback, two pinned processes: 1.4–1.6 GB/s with
//! BBR, 7.1–8.2 GB/s with Reno or CUBIC (docs/benchmarks/journal.md, 2026-12-04,
//! night).
//!
//! So by default ([`Congestion::Auto`]) a connection whose two ends are on
//! this machine sends with Reno: built into every Linux kernel, always in
//! `net.ipv4.tcp_allowed_congestion_control` (so any user may choose it),
//! and without loss it paces nothing. Connections to other machines keep the
//! system's choice. `?congestion=system` keeps the system's choice
//! everywhere; `?congestion=NAME` asks for NAME on every connection, and a
//! kernel that refuses it fails `connect` or `listen` with the reason.

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use rustix::io::Errno;
use rustix::net::sockopt;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

/// What local connections send with by default (see the module comment).
pub const LOCAL_DEFAULT: &str = "reno";

/// The kernel's limit on an algorithm's name, less its terminating zero
/// (`TCP_CA_NAME_MAX` is 16).
const NAME_MAX: usize = 15;

/// The `?congestion=` option of a `tcp://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Congestion {
    /// Reno between two sockets of this machine, the system's choice
    /// otherwise (no option, or `?congestion=auto`).
    Auto,
    /// The system's choice everywhere (`?congestion=system`).
    System,
    /// This algorithm on every connection (`?congestion=cubic`, ...).
    Named(String),
}

impl Congestion {
    /// The option of `endpoint`; a name the kernel could never accept is a
    /// [`Error::BadUrl`].
    pub(crate) fn of(endpoint: &Endpoint) -> Result<Self> {
        match endpoint.param("congestion") {
            None | Some("auto") => Ok(Congestion::Auto),
            Some("system") => Ok(Congestion::System),
            Some(name)
                if !name.is_empty()
                    && name.len() <= NAME_MAX
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Ok(Congestion::Named(name.to_owned()))
            }
            Some(name) => Err(Error::BadUrl {
                url: endpoint.to_string(),
                reason: format!(
                    "congestion={name:?} is not an algorithm name (auto, system, or up to \
                     {NAME_MAX} letters, digits and underscores, such as reno or cubic)"
                ),
            }),
        }
    }

    /// The algorithm a listening socket should hand down to the connections
    /// it accepts (they inherit it): only a name asked for by the URL, so
    /// that `listen` fails at once when the kernel refuses it.
    pub(crate) fn for_listener(&self) -> Option<&str> {
        match self {
            Congestion::Named(name) => Some(name),
            Congestion::Auto | Congestion::System => None,
        }
    }

    /// Sets the algorithm of the connected socket `fd`, from `local` (when
    /// known) to `peer`. [`Congestion::Auto`] is best effort (the
    /// connection works either way); a name the URL asked for is an error
    /// when refused.
    pub(crate) fn apply(
        &self,
        fd: BorrowedFd<'_>,
        local: Option<SocketAddr>,
        peer: SocketAddr,
    ) -> Result<()> {
        match self {
            Congestion::Auto if local.is_some_and(|local| is_local(local, peer)) => {
                let _ = sockopt::set_tcp_congestion(fd, LOCAL_DEFAULT);
                Ok(())
            }
            Congestion::Auto | Congestion::System => Ok(()),
            Congestion::Named(name) => set(fd, name),
        }
    }
}

/// Sets `name` on `fd`, with an error that says why the kernel refused.
pub(crate) fn set(fd: BorrowedFd<'_>, name: &str) -> Result<()> {
    sockopt::set_tcp_congestion(fd, name).map_err(|errno| {
        let why = match errno {
            Errno::NOENT => "this kernel does not have it (see \
                             /proc/sys/net/ipv4/tcp_available_congestion_control)"
                .to_owned(),
            Errno::PERM => format!(
                "only {} may be chosen without CAP_NET_ADMIN here \
                 (/proc/sys/net/ipv4/tcp_allowed_congestion_control)",
                allowed().unwrap_or_else(|| "the allowed algorithms".to_owned())
            ),
            other => other.to_string(),
        };
        Error::io(
            format!("use TCP congestion control {name:?}: {why}"),
            std::io::Error::from(errno),
        )
    })
}

/// The algorithms an unprivileged process may choose, as the kernel lists them.
fn allowed() -> Option<String> {
    let list = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control").ok()?;
    let list = list.trim();
    (!list.is_empty()).then(|| list.replace(' ', ", "))
}

/// Whether a connection from `local` to `peer` stays on this machine: the
/// peer is a loopback address, or the connection leads to the address it
/// comes from (a machine reaching itself by one of its own addresses is
/// routed through the loopback interface too).
fn is_local(local: SocketAddr, peer: SocketAddr) -> bool {
    let peer = peer.ip().to_canonical();
    peer.is_loopback() || peer == local.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(url: &str) -> Result<Congestion> {
        Congestion::of(&Endpoint::parse(url)?)
    }

    #[test]
    fn the_option_reads_auto_system_or_a_name() {
        assert_eq!(option("tcp://127.0.0.1:1").unwrap(), Congestion::Auto);
        assert_eq!(
            option("tcp://127.0.0.1:1?congestion=auto").unwrap(),
            Congestion::Auto
        );
        assert_eq!(
            option("tcp://127.0.0.1:1?congestion=system").unwrap(),
            Congestion::System
        );
        assert_eq!(
            option("tcp://127.0.0.1:1?congestion=cubic").unwrap(),
            Congestion::Named("cubic".into())
        );
        for bad in ["", "a/b", "reno%20x", "sixteen_letters_"] {
            let error = option(&format!("tcp://127.0.0.1:1?congestion={bad}")).unwrap_err();
            assert!(
                matches!(error, Error::BadUrl { .. }),
                "congestion={bad:?}: {error}"
            );
        }
    }

    #[test]
    fn local_means_loopback_or_the_address_it_comes_from() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(is_local(at("127.0.0.1:5000"), at("127.0.0.1:40000")));
        assert!(is_local(at("127.0.0.1:5000"), at("127.0.0.2:40000")));
        assert!(is_local(at("[::1]:5000"), at("[::1]:40000")));
        assert!(is_local(
            at("[::ffff:127.0.0.1]:5000"),
            at("[::ffff:127.0.0.1]:1")
        ));
        assert!(is_local(at("10.1.2.3:5000"), at("10.1.2.3:40000")));
        assert!(!is_local(at("10.1.2.3:5000"), at("10.1.2.4:40000")));
        assert!(!is_local(at("[2001:db8::1]:5000"), at("[2001:db8::2]:1")));
    }
}
