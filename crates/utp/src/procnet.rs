//! What `/proc` tells about sockets and the processes that hold them: used
//! to name the holder of an endpoint that is "in use", and by `utp ls`.
//!
//! Everything here is best effort: a process of another user hides its
//! file descriptors from a non-root reader, so a holder may be unknown.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A Unix socket from `/proc/net/unix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixSocket {
    /// Socket inode.
    pub inode: u64,
    /// Whether it is listening (`SO_ACCEPTCON`).
    pub listening: bool,
    /// Whether it is a connected stream (state 3).
    pub connected: bool,
    /// Bound path, or `@name` for an abstract name.
    pub path: String,
}

/// Every Unix socket with a bound path or abstract name.
pub fn unix_sockets() -> Vec<UnixSocket> {
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            // Num RefCount Protocol Flags Type St Inode Path
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields.get(7)?;
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let state = u32::from_str_radix(fields.get(5)?, 16).ok()?;
            Some(UnixSocket {
                inode: fields.get(6)?.parse().ok()?,
                listening: flags & 0x1_0000 != 0,
                connected: state == 3,
                path: path.to_string(),
            })
        })
        .collect()
}

/// An IP socket from `/proc/net/{tcp,tcp6,udp,udp6}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InetSocket {
    /// Socket inode.
    pub inode: u64,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (unspecified for listeners and unconnected UDP).
    pub remote: SocketAddr,
    /// The kernel's state number (TCP: 0x0A listen, 0x01 established; UDP: 0x07).
    pub state: u8,
    /// Owner uid.
    pub uid: u32,
}

/// TCP state LISTEN.
pub const TCP_LISTEN: u8 = 0x0A;
/// TCP state ESTABLISHED.
pub const TCP_ESTABLISHED: u8 = 0x01;

/// Every socket of `proto` (`"tcp"` or `"udp"`), IPv4 and IPv6.
pub fn inet_sockets(proto: &str) -> Vec<InetSocket> {
    let mut all = Vec::new();
    for file in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = (|| {
                Some(InetSocket {
                    local: parse_addr(f.get(1)?)?,
                    remote: parse_addr(f.get(2)?)?,
                    state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                    uid: f.get(7)?.parse().ok()?,
                    inode: f.get(9)?.parse().ok()?,
                })
            })();
            all.extend(parsed);
        }
    }
    all
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), in the kernel's word order.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Socket inode → pids holding it, from `/proc/*/fd` (the processes this
/// user may look into).
pub fn socket_holders() -> HashMap<u64, Vec<u32>> {
    let mut map: HashMap<u64, Vec<u32>> = HashMap::new();
    for (pid, target) in fd_targets() {
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse().ok())
        {
            let pids = map.entry(inode).or_default();
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    map
}

/// `(pid, link target)` of every open file descriptor this user may see.
pub fn fd_targets() -> Vec<(u32, String)> {
    let mut all = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return all;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                all.push((pid, target.to_string_lossy().into_owned()));
            }
        }
    }
    all
}

/// The command name of `pid` (`/proc/PID/comm`).
pub fn command(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
}

/// "pid 1234 (utp)" for each holder, or `None` when none is visible.
pub fn describe_holders(pids: &[u32]) -> Option<String> {
    if pids.is_empty() {
        return None;
    }
    let names: Vec<String> = pids
        .iter()
        .map(|&pid| match command(pid) {
            Some(comm) => format!("pid {pid} ({comm})"),
            None => format!("pid {pid}"),
        })
        .collect();
    Some(names.join(", "))
}

/// Who listens on the Unix socket `path` (`@name` for an abstract name).
pub fn unix_listener_holders(path: &str) -> Vec<u32> {
    let holders = socket_holders();
    unix_sockets()
        .iter()
        .filter(|s| s.listening && s.path == path)
        .flat_map(|s| holders.get(&s.inode).cloned().unwrap_or_default())
        .collect()
}

/// Who has a socket of `proto` bound to `port` (TCP: listening).
pub fn inet_port_holders(proto: &str, port: u16) -> Vec<u32> {
    let holders = socket_holders();
    let mut pids: Vec<u32> = inet_sockets(proto)
        .iter()
        .filter(|s| s.local.port() == port && (proto != "tcp" || s.state == TCP_LISTEN))
        .flat_map(|s| holders.get(&s.inode).cloned().unwrap_or_default())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The hint of an "in use" error: `base`, then who holds it when `/proc` says.
pub(crate) fn in_use_hint(base: &str, holders: &[u32]) -> String {
    match describe_holders(holders) {
        Some(who) => format!("{base}: {who}"),
        None => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_parse() {
        assert_eq!(
            parse_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
    }

    #[test]
    fn a_listening_tcp_port_names_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(inet_port_holders("tcp", port).contains(&std::process::id()));
    }
}
