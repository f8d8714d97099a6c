//! Who may talk to whom: the peer-identity policy every local transport applies.
//!
//! The kernel tells each side who the other is (`SO_PEERCRED` on Unix
//! sockets, the owner of a shared-memory region, FIFO or message queue). By
//! default a server accepts only clients of its own effective uid, and a
//! client talks only to a server of its own effective uid. Root is trusted in
//! both directions: a process of uid 0 can read and write every other
//! process's memory anyway, so refusing it would protect nothing.
//!
//! `?allow_uid=U1,U2` and `?allow_gid=G1,G2` on a URL widen the policy. They
//! are refused on transports where the kernel cannot tell who the peer is
//! (tcp, udp): an option that silently did nothing would be worse than none.
//!
//! ```
//! use utp::identity::PeerPolicy;
//! let policy = PeerPolicy::from_url("unix:///tmp/x.sock?allow_uid=65534").unwrap();
//! assert!(policy.allows(65534, 65534));
//! assert!(policy.allows(rustix::process::geteuid().as_raw(), 0));
//! ```

use crate::DeniedReason;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};

/// The set of peers a channel or listener trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPolicy {
    /// This process's effective uid, always trusted.
    own_uid: u32,
    /// Extra uids from `?allow_uid=`.
    uids: Vec<u32>,
    /// Extra gids from `?allow_gid=`: a peer whose primary gid is listed is trusted.
    gids: Vec<u32>,
}

impl PeerPolicy {
    /// The default policy: this process's effective uid, and root.
    pub fn same_user() -> Self {
        PeerPolicy {
            own_uid: rustix::process::geteuid().as_raw(),
            uids: Vec::new(),
            gids: Vec::new(),
        }
    }

    /// The default policy widened by the URL's `allow_uid` / `allow_gid` options.
    pub fn from_endpoint(endpoint: &Endpoint) -> Result<Self> {
        let mut policy = Self::same_user();
        policy.uids = id_list(endpoint, "allow_uid")?;
        policy.gids = id_list(endpoint, "allow_gid")?;
        Ok(policy)
    }

    /// [`from_endpoint`](Self::from_endpoint) for a URL string.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_endpoint(&Endpoint::parse(url)?)
    }

    /// Whether a peer of this uid and gid is trusted.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == self.own_uid || uid == 0 || self.uids.contains(&uid) || self.gids.contains(&gid)
    }

    /// Whether this policy trusts more than the default (own uid and root).
    pub fn is_widened(&self) -> bool {
        !self.uids.is_empty() || !self.gids.is_empty()
    }

    /// The extra uids from `?allow_uid=`, in the URL's order.
    pub fn allowed_uids(&self) -> &[u32] {
        &self.uids
    }

    /// This process's effective uid.
    pub fn own_uid(&self) -> u32 {
        self.own_uid
    }

    /// A server's check of a connecting client: `Err(Denied)` naming the
    /// client and the option that would admit it.
    pub fn check_client(&self, endpoint: &str, uid: u32, gid: u32, pid: Option<u32>) -> Result<()> {
        if self.allows(uid, gid) {
            return Ok(());
        }
        let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        Err(Error::denied(
            DeniedReason::Untrusted,
            format!(
                "refused a client of uid {uid}{pid} on {endpoint}: this server runs as uid {}; \
             add ?allow_uid={uid} to the server's URL to admit it",
                self.own_uid
            ),
        ))
    }

    /// A client's check of the server it reached (or of a region, FIFO or
    /// queue the server owns): `Err(Denied)` naming the owner and the option
    /// that would trust it.
    pub fn check_server(&self, endpoint: &str, what: &str, uid: u32, gid: u32) -> Result<()> {
        if self.allows(uid, gid) {
            return Ok(());
        }
        Err(Error::denied(
            DeniedReason::Untrusted,
            format!(
                "{endpoint} is served by uid {uid}, not by you (uid {}): {what} belongs to another \
             user, who could read or forge your messages; pass ?allow_uid={uid} to trust it",
                self.own_uid
            ),
        ))
    }
}

impl Default for PeerPolicy {
    fn default() -> Self {
        Self::same_user()
    }
}

fn id_list(endpoint: &Endpoint, key: &str) -> Result<Vec<u32>> {
    let Some(list) = endpoint.param(key) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(|id| id.trim().parse::<u32>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::BadUrl {
            url: endpoint.to_string(),
            reason: format!("{key}={list:?} is not a comma-separated list of numeric ids"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_trusts_own_uid_and_root_only() {
        let p = PeerPolicy::same_user();
        let me = p.own_uid();
        assert!(p.allows(me, 12345));
        assert!(p.allows(0, 0));
        let stranger = if me == 4242 { 4243 } else { 4242 };
        assert!(!p.allows(stranger, stranger));
        assert!(!p.is_widened());
    }

    #[test]
    fn url_options_widen_by_uid_and_gid() {
        let p =
            PeerPolicy::from_url("unix:///tmp/a.sock?allow_uid=4242,4343&allow_gid=77").unwrap();
        assert!(p.allows(4242, 1));
        assert!(p.allows(4343, 1));
        assert!(p.allows(9999, 77));
        assert!(!p.allows(9999, 78));
        assert!(p.is_widened());
    }

    #[test]
    fn a_bad_list_is_an_error_naming_the_option() {
        let err = PeerPolicy::from_url("unix:///tmp/a.sock?allow_uid=root").unwrap_err();
        assert!(err.to_string().contains("allow_uid=\"root\""), "{err}");
    }

    #[test]
    fn refusals_say_who_and_how_to_trust_them() {
        let p = PeerPolicy::same_user();
        let stranger = if p.own_uid() == 65534 { 65533 } else { 65534 };
        let err = p
            .check_server("shm://calc", "the rendezvous socket", stranger, stranger)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("shm://calc is served by uid {stranger}")),
            "{text}"
        );
        assert!(text.contains(&format!("?allow_uid={stranger}")), "{text}");
        let err = p
            .check_client("unix:///x", stranger, stranger, Some(7))
            .unwrap_err();
        assert!(err.to_string().contains("(pid 7)"), "{err}");
    }
}
