//! The key expressions of a zenoh:// service and its links.
//!
//! `@`-chunks are verbatim in zenoh: no wildcard matches them, and service
//! keys cannot contain them, so `utp/a/@link/..` never collides with a
//! service called `a/link`.

/// Liveliness tokens of every server of `service`.
pub(super) fn servers(service: &str) -> String {
    format!("utp/{service}/@srv/*")
}

/// Liveliness token of one server.
pub(super) fn server(service: &str, server_id: &str) -> String {
    format!("utp/{service}/@srv/{server_id}")
}

/// Queryable a client asks for a link.
pub(super) fn connect(service: &str, server_id: &str) -> String {
    format!("utp/{service}/@srv/{server_id}/@connect")
}

/// Prefix of every key of one link.
pub(super) fn link(service: &str, link_id: &str) -> String {
    format!("utp/{service}/@link/{link_id}")
}

/// The last chunk of a key, if it is a valid id.
pub(super) fn last_id(key: &str) -> Option<&str> {
    key.rsplit('/').next().filter(|id| valid_id(id))
}

/// Ids (server and link) are 1..=64 of `[A-Za-z0-9_-]`: zenoh ids and counters.
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_use() {
        assert_eq!(last_id("utp/calc/@srv/abc-1"), Some("abc-1"));
        assert_eq!(last_id("utp/calc/@srv/a*b"), None);
        assert!(!valid_id(""));
        assert!(!valid_id(&"x".repeat(65)));
        assert_eq!(connect("site1/calc", "s"), "utp/site1/calc/@srv/s/@connect");
    }
}
