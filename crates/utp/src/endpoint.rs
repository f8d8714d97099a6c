//! Endpoint URLs: one string names a place to listen on or connect to.
//!
//! ```
//! use utp::endpoint::{Endpoint, Address};
//! let e: Endpoint = "unix:///tmp/calc.sock".parse().unwrap();
//! assert_eq!(e.address, Address::Unix("/tmp/calc.sock".into()));
//! let e: Endpoint = "shm://calc?wait=spin".parse().unwrap();
//! assert_eq!(e.param("wait"), Some("spin"));
//! assert!("carrier-pigeon://coop".parse::<Endpoint>().is_err());
//! ```

use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The URL forms utp accepts; shown when a URL has no scheme or an unknown one
/// (a precise error about a known scheme is not buried under it).
pub const ACCEPTED_FORMS: &str = "\
accepted forms:
  shm://NAME          POSIX shared memory link (NAME: letters, digits, . _ -)
  sysv://KEY          System V shared memory link (KEY: decimal or 0x-hex, not 0)
  file:///PATH        shared memory link in an mmap'd file
  unix:///PATH        Unix stream socket on a path
  unix://@NAME        Linux abstract-namespace Unix socket
  tcp://HOST:PORT     TCP
  udp://HOST:PORT     UDP, one frame per datagram
  pipe:[COMMAND]      anonymous pipes to a spawned child (listen: stdin/stdout)
  fifo:///PATH        named pipes PATH.req and PATH.resp
  mq://NAME           POSIX message queues
  inproc://NAME       in-process channel
  zenoh://KEY         across hosts over zenoh (KEY: NAME or NAME/NAME..., build feature `zenoh`)
  any of them may end in ?key=value&key=value options";

/// Where an endpoint is: the mechanism and its address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// `shm://NAME`: POSIX shared memory.
    Shm(String),
    /// `sysv://KEY`: System V shared memory.
    SysV(i32),
    /// `file:///PATH`: an mmap'd file.
    File(PathBuf),
    /// `unix:///PATH`: a Unix socket file.
    Unix(PathBuf),
    /// `unix://@NAME`: a Linux abstract-namespace Unix socket.
    UnixAbstract(String),
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `udp://HOST:PORT`.
    Udp(String),
    /// `pipe:` or `pipe:COMMAND ARGS...`: anonymous pipes to a child process.
    Pipe(Vec<String>),
    /// `fifo:///PATH`: the FIFO pair `PATH.req` / `PATH.resp`.
    Fifo(PathBuf),
    /// `mq://NAME`: POSIX message queues.
    Mq(String),
    /// `inproc://NAME`: in the same process.
    Inproc(String),
    /// `zenoh://KEY`: a service key on a zenoh network (feature `zenoh`).
    Zenoh(String),
}

impl Address {
    /// The URL scheme of this address, e.g. `"shm"`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Address::Shm(_) => "shm",
            Address::SysV(_) => "sysv",
            Address::File(_) => "file",
            Address::Unix(_) | Address::UnixAbstract(_) => "unix",
            Address::Tcp(_) => "tcp",
            Address::Udp(_) => "udp",
            Address::Pipe(_) => "pipe",
            Address::Fifo(_) => "fifo",
            Address::Mq(_) => "mq",
            Address::Inproc(_) => "inproc",
            Address::Zenoh(_) => "zenoh",
        }
    }
}

/// A parsed endpoint URL: an [`Address`] and its `?key=value` options.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Mechanism and address.
    pub address: Address,
    /// Options from the query string, in order.
    pub params: Vec<(String, String)>,
}

impl Endpoint {
    /// Parses an endpoint URL; see [`ACCEPTED_FORMS`].
    pub fn parse(url: &str) -> Result<Self> {
        url.parse()
    }

    /// The value of option `key`, if given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of option `key` parsed as a number, with a clear error if it is not one.
    pub fn param_number(&self, key: &str) -> Result<Option<u64>> {
        let Some(raw) = self.param(key) else {
            return Ok(None);
        };
        parse_size(raw).map(Some).ok_or_else(|| Error::BadUrl {
            url: self.to_string(),
            reason: format!("option {key}={raw:?} is not a number (suffixes k, K, M, G allowed)"),
        })
    }
}

/// Parses `123`, `0x40`, `64k`, `1M`, `1G` (binary multiples).
pub fn parse_size(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if let Some(hex) = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    let (digits, shift) = match raw.char_indices().last()? {
        (i, 'k' | 'K') => (&raw[..i], 10),
        (i, 'm' | 'M') => (&raw[..i], 20),
        (i, 'g' | 'G') => (&raw[..i], 30),
        _ => (raw, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            bad(&format!(
                "missing scheme (such as shm:// or unix://)\n{ACCEPTED_FORMS}"
            ))
        })?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let params = parse_query(query).map_err(|r| bad(&r))?;
        let address = if scheme == "pipe" {
            Address::Pipe(rest.split_whitespace().map(str::to_string).collect())
        } else {
            let body = rest
                .strip_prefix("//")
                .ok_or_else(|| bad(&format!("expected {scheme}://...")))?;
            parse_address(scheme, body).map_err(|r| bad(&r))?
        };
        Ok(Endpoint { address, params })
    }
}

fn parse_query(query: Option<&str>) -> std::result::Result<Vec<(String, String)>, String> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("option {part:?} is not key=value")),
        })
        .collect()
}

fn parse_address(scheme: &str, body: &str) -> std::result::Result<Address, String> {
    Ok(match scheme {
        "shm" => Address::Shm(name(body)?),
        "mq" => Address::Mq(name(body)?),
        "inproc" => Address::Inproc(name(body)?),
        "sysv" => Address::SysV(sysv_key(body)?),
        "file" => Address::File(absolute_path(body)?),
        "fifo" => Address::Fifo(absolute_path(body)?),
        "unix" => match body.strip_prefix('@') {
            Some(abstract_name) => Address::UnixAbstract(name(abstract_name)?),
            None => Address::Unix(absolute_path(body)?),
        },
        "tcp" => Address::Tcp(host_port(body)?),
        "udp" => Address::Udp(host_port(body)?),
        "zenoh" => Address::Zenoh(zenoh_key(body)?),
        other => return Err(format!("unknown scheme {other:?}\n{ACCEPTED_FORMS}")),
    })
}

/// Object names: 1..=200 bytes of `[A-Za-z0-9._-]`, not starting with a dot.
fn name(body: &str) -> std::result::Result<String, String> {
    let ok = !body.is_empty()
        && body.len() <= 200
        && !body.starts_with('.')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(body.to_string())
    } else {
        Err(format!(
            "name {body:?} must be 1-200 characters of letters, digits, '.', '_' or '-', not starting with '.'"
        ))
    }
}

/// zenoh service keys: 1..=8 `/`-separated [`name`]s (no wildcards, no `@`).
fn zenoh_key(body: &str) -> std::result::Result<String, String> {
    let chunks: Vec<&str> = body.split('/').collect();
    if chunks.len() > 8 {
        return Err(format!("zenoh key {body:?} has more than 8 parts"));
    }
    for chunk in chunks {
        name(chunk).map_err(|e| format!("in zenoh key {body:?}: {e}"))?;
    }
    Ok(body.to_string())
}

fn sysv_key(body: &str) -> std::result::Result<i32, String> {
    let value = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok().map(|v| v as i32),
        None => body.parse::<i32>().ok(),
    };
    match value {
        Some(0) => Err("key 0 is IPC_PRIVATE and cannot name a segment".into()),
        Some(key) => Ok(key),
        None => Err(format!(
            "key {body:?} is not a decimal or 0x-hex 32-bit number"
        )),
    }
}

fn absolute_path(body: &str) -> std::result::Result<PathBuf, String> {
    if body.starts_with('/') && body.len() > 1 && !body.contains('\0') {
        Ok(PathBuf::from(body))
    } else {
        Err(format!(
            "path {body:?} must be absolute: write three slashes, as in unix:///tmp/x.sock"
        ))
    }
}

fn host_port(body: &str) -> std::result::Result<String, String> {
    if let Some(inside) = body.strip_prefix('[') {
        // An IPv6 literal: [ADDR]:PORT, with the address checked here so a
        // typo is reported as a typo, not as a failed DNS lookup.
        let Some((addr, after)) = inside.split_once(']') else {
            return Err(format!(
                "{body:?} opens an IPv6 address with '[' but never closes it: write [ADDR]:PORT, as in [::1]:7000"
            ));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{addr:?} inside [...] is not an IPv6 address"));
        }
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("{body:?} has no :PORT after the IPv6 address"))?;
        if port.parse::<u16>().is_err() {
            return Err(format!("port {port:?} is not a number 0-65535"));
        }
        return Ok(body.to_string());
    }
    let (host, port) = body
        .rsplit_once(':')
        .ok_or_else(|| format!("{body:?} is not HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{body:?} is not HOST:PORT with a port 0-65535"));
    }
    if host.contains(':') {
        return Err(format!(
            "{host:?} looks like an IPv6 address: put it in brackets, as in [{host}]:{port}"
        ));
    }
    Ok(body.to_string())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Shm(n) => write!(f, "shm://{n}"),
            Address::SysV(k) => write!(f, "sysv://0x{:x}", *k as u32),
            Address::File(p) => write!(f, "file://{}", p.display()),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::UnixAbstract(n) => write!(f, "unix://@{n}"),
            Address::Tcp(a) => write!(f, "tcp://{a}"),
            Address::Udp(a) => write!(f, "udp://{a}"),
            Address::Pipe(cmd) => write!(f, "pipe:{}", cmd.join(" ")),
            Address::Fifo(p) => write!(f, "fifo://{}", p.display()),
            Address::Mq(n) => write!(f, "mq://{n}"),
            Address::Inproc(n) => write!(f, "inproc://{n}"),
            Address::Zenoh(k) => write!(f, "zenoh://{k}"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        for (i, (k, v)) in self.params.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for url in [
            "shm://calc",
            "sysv://0x1234",
            "file:///tmp/x.region",
            "unix:///tmp/x.sock",
            "unix://@calc",
            "tcp://127.0.0.1:7000",
            "udp://localhost:7001",
            "pipe:",
            "pipe:/bin/cat -u",
            "fifo:///tmp/calc",
            "mq://calc",
            "inproc://t1?wait=spin&ring=64k",
            "zenoh://calc",
            "zenoh://site1/calc?connect=tcp/10.0.0.1:7447",
        ] {
            let e: Endpoint = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(e.to_string(), url);
        }
    }

    #[test]
    fn sysv_keys_in_decimal_and_hex() {
        let e: Endpoint = "sysv://4660".parse().unwrap();
        assert_eq!(e.address, Address::SysV(0x1234));
        assert!("sysv://0".parse::<Endpoint>().is_err());
        assert!("sysv://banana".parse::<Endpoint>().is_err());
    }

    #[test]
    fn zenoh_keys_refuse_wildcards_and_empty_parts() {
        for bad in [
            "zenoh://",
            "zenoh://a/*",
            "zenoh://a/**",
            "zenoh://a//b",
            "zenoh://@x",
            "zenoh://a/$b",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_or_missing_schemes_list_the_forms() {
        for (url, needle) in [
            ("calc", "missing scheme"),
            ("gopher://x", "unknown scheme \"gopher\""),
        ] {
            let msg = url.parse::<Endpoint>().unwrap_err().to_string();
            assert!(msg.contains(needle), "{url}: {msg}");
            assert!(msg.ends_with(ACCEPTED_FORMS), "{url}: {msg}");
        }
    }

    #[test]
    fn precise_errors_do_not_bury_themselves_under_the_forms() {
        assert_eq!(
            "unix://tmp/x.sock"
                .parse::<Endpoint>()
                .unwrap_err()
                .to_string(),
            "invalid endpoint URL \"unix://tmp/x.sock\": path \"tmp/x.sock\" must be absolute: \
             write three slashes, as in unix:///tmp/x.sock"
        );
        assert_eq!(
            "udp://[::1".parse::<Endpoint>().unwrap_err().to_string(),
            "invalid endpoint URL \"udp://[::1\": \"[::1\" opens an IPv6 address with '[' but never \
             closes it: write [ADDR]:PORT, as in [::1]:7000"
        );
        assert_eq!(
            "tcp://::1:80".parse::<Endpoint>().unwrap_err().to_string(),
            "invalid endpoint URL \"tcp://::1:80\": \"::1\" looks like an IPv6 address: put it in \
             brackets, as in [::1]:80"
        );
        assert!("udp://[::1]:7000".parse::<Endpoint>().is_ok());
        assert!("tcp://[fe80::zz]:1".parse::<Endpoint>().is_err());
    }

    #[test]
    fn errors_name_the_problem() {
        for (url, needle) in [
            ("unix://tmp/x.sock", "three slashes"),
            ("shm://", "must be 1-200"),
            ("shm://a/b", "must be 1-200"),
            ("tcp://localhost", "HOST:PORT"),
            ("tcp://localhost:99999", "HOST:PORT"),
            ("shm://x?wait", "key=value"),
        ] {
            let msg = url.parse::<Endpoint>().unwrap_err().to_string();
            assert!(msg.contains(needle), "{url}: {msg}");
            assert!(!msg.contains("accepted forms"), "{url}: {msg}");
        }
    }

    #[test]
    fn sizes_with_suffixes() {
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("0x10"), Some(16));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("99999999999G"), None);
    }
}
