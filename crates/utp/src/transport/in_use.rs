//! Names the process holding an endpoint in an "already in use" error,
//! for the transports whose own check cannot tell (shared memory, message
//! queues, FIFOs): from `/proc`, where this user may look.

use crate::endpoint::{Address, Endpoint};
use crate::error::Error;
use crate::procnet;

/// `error` with the holder's pid added to its hint, when it is an
/// [`Error::InUse`] that does not name one yet and `/proc` tells.
pub(crate) fn name_holder(endpoint: &Endpoint, error: Error) -> Error {
    let Error::InUse {
        endpoint: url,
        hint,
    } = error
    else {
        return error;
    };
    if hint.as_deref().is_some_and(|h| h.contains("pid ")) {
        return Error::InUse {
            endpoint: url,
            hint,
        };
    }
    let fd_holders = |target: String| -> Vec<u32> {
        let mut pids: Vec<u32> = procnet::fd_targets()
            .into_iter()
            .filter(|(_, t)| *t == target)
            .map(|(pid, _)| pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    let holders = match &endpoint.address {
        #[cfg(not(loom))]
        Address::Shm(_) | Address::SysV(_) | Address::File(_) => {
            // The listener's socket in our private and shared directories.
            let uid = rustix::process::geteuid().as_raw();
            crate::shm::rendezvous::socket_file(&endpoint.address)
                .map(|file| {
                    [
                        crate::runtime_dir::Kind::Private,
                        crate::runtime_dir::Kind::Shared,
                    ]
                    .into_iter()
                    .flat_map(|kind| {
                        let path = crate::runtime_dir::path_of(uid, kind).join(&file);
                        procnet::unix_listener_holders(&path.to_string_lossy())
                    })
                    .collect()
                })
                .unwrap_or_default()
        }
        Address::Mq(name) => fd_holders(format!("/utp.{name}")),
        Address::Fifo(path) => fd_holders(format!("{}.req", path.display())),
        _ => Vec::new(),
    };
    let hint = match (hint, procnet::describe_holders(&holders)) {
        (Some(hint), Some(who)) => Some(format!("{hint}: {who}")),
        (None, Some(who)) => Some(format!("held by {who}")),
        (hint, None) => hint,
    };
    Error::InUse {
        endpoint: url,
        hint,
    }
}
