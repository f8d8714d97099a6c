//! One zenoh session per process and configuration, built from the URL.

use super::zenoh_error;
use crate::channel::Options;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use zenoh::{Config, Session, Wait};

/// Room a zenoh message may take beyond one frame's payload (header, framing).
const MESSAGE_SLACK: usize = 64 * 1024;

/// The session for `endpoint`'s options: opened once, then shared by every
/// channel and listener of this process with the same options.
pub(crate) fn for_endpoint(endpoint: &Endpoint, options: &Options) -> Result<Session> {
    let config_key = session_key(endpoint, options);
    static SESSIONS: OnceLock<Mutex<HashMap<String, Session>>> = OnceLock::new();
    let sessions = SESSIONS.get_or_init(Default::default);
    let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(session) = sessions.get(&config_key) {
        if !session.is_closed() {
            return Ok(session.clone());
        }
    }
    let config = config(endpoint, options)?;
    let session = zenoh::open(config)
        .wait()
        .map_err(|e| zenoh_error(&format!("open a zenoh session for {endpoint}"), e))?;
    sessions.insert(config_key, session.clone());
    Ok(session)
}

/// The largest message a session reassembles: one frame at the larger of
/// the channel's limit and the default (each channel still checks its own).
fn message_limit(options: &Options) -> usize {
    options
        .max_payload
        .max(crate::frame::DEFAULT_MAX_PAYLOAD)
        .saturating_add(MESSAGE_SLACK)
}

/// The options that shape a session (not the key, not per-channel options).
fn session_key(endpoint: &Endpoint, options: &Options) -> String {
    let mut key = format!("message_limit={}", message_limit(options));
    for name in ["config", "mode", "connect", "listen", "scout", "lease_ms"] {
        if let Some(value) = endpoint.param(name) {
            key.push_str(&format!("&{name}={value}"));
        }
    }
    key
}

/// A zenoh configuration from the URL options.
pub(super) fn config(endpoint: &Endpoint, options: &Options) -> Result<Config> {
    let bad = |reason: String| Error::BadUrl {
        url: endpoint.to_string(),
        reason,
    };
    let mut config = match endpoint.param("config") {
        Some(path) => {
            Config::from_file(path).map_err(|e| bad(format!("zenoh config file {path:?}: {e}")))?
        }
        None => Config::default(),
    };
    let mut set = |key: &str, value: String| {
        config
            .insert_json5(key, &value)
            .map_err(|e| bad(format!("zenoh setting {key}={value}: {e}")))
    };
    if let Some(mode) = endpoint.param("mode") {
        if !matches!(mode, "peer" | "client" | "router") {
            return Err(bad(format!(
                "mode={mode:?}: expected peer, client or router"
            )));
        }
        set("mode", format!("{mode:?}"))?;
    }
    let connect = endpoint.param("connect");
    let listen = endpoint.param("listen");
    for (key, list) in [("connect/endpoints", connect), ("listen/endpoints", listen)] {
        if let Some(list) = list {
            let items: Vec<String> = list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| format!("{s:?}"))
                .collect();
            set(key, format!("[{}]", items.join(",")))?;
        }
    }
    if connect.is_some() {
        // A peer that went away is dialled again within a second, not four.
        set(
            "connect/retry",
            r#"{"period_init_ms": 250, "period_max_ms": 1000, "period_increase_factor": 2}"#.into(),
        )?;
    }
    let scout = match endpoint.param("scout") {
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(other) => return Err(bad(format!("scout={other:?}: expected on or off"))),
        // Explicit endpoints say where the peers are: do not also multicast.
        None if connect.is_some() || listen.is_some() => Some(false),
        None => None,
    };
    if let Some(on) = scout {
        set("scouting/multicast/enabled", on.to_string())?;
    }
    if let Some(lease) = endpoint.param_number("lease_ms")? {
        if !(100..=600_000).contains(&lease) {
            return Err(bad(format!("lease_ms={lease}: expected 100..=600000")));
        }
        set("transport/link/tx/lease", lease.to_string())?;
    }
    // A remote peer cannot make this process reassemble more than one frame.
    let limit = message_limit(options);
    set("transport/link/rx/max_message_size", limit.to_string())?;
    Ok(config)
}

/// A new id, unique across the zenoh network: the session's id and a counter.
pub(crate) fn unique_id(session: &Session, kind: char) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{kind}{n}", session.zid())
}
