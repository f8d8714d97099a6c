//! Peer libraries measured beside utp (cargo feature `peers`): iceoryx2,
//! which busy-polls, and ipc-channel, which blocks. Each runs the same
//! round trips between two processes and is compared with utp's shm link
//! in the same waiting mode.

#[cfg(feature = "peers")]
mod iceoryx2_rtt;
#[cfg(feature = "peers")]
mod ipc_channel_rtt;

use super::link::Fallible;
use super::mechanisms::Mechanism;
use super::plan::Plan;
use super::sample::Sample;
use super::spec::{Impl, PeerSpec, Wait};

/// The peer libraries compared on `mechanism`'s row (empty without the feature).
pub fn attached_to(mechanism: &Mechanism) -> Vec<Impl> {
    if !cfg!(feature = "peers") || mechanism.name != "shm" {
        return Vec::new();
    }
    match mechanism.wait {
        Wait::Spin => vec![Impl::Iceoryx2],
        Wait::Block => vec![Impl::IpcChannel],
        Wait::Async => Vec::new(),
    }
}

/// Peer side of a peer library's run.
pub fn serve(spec: &PeerSpec, announce: &mut dyn FnMut(&str)) -> Fallible<()> {
    match spec.implementation {
        #[cfg(feature = "peers")]
        Impl::Iceoryx2 => iceoryx2_rtt::serve(spec, announce),
        #[cfg(feature = "peers")]
        Impl::IpcChannel => ipc_channel_rtt::serve(spec, announce),
        other => {
            let _ = announce;
            Err(format!("{} is not built in (cargo feature `peers`)", other.label()).into())
        }
    }
}

/// Client side of a peer library's run, against the peer that announced `announced`.
pub fn measure(spec: &PeerSpec, announced: &str, plan: &Plan) -> Fallible<Sample> {
    let warmup = plan.warmup(spec.mode, spec.size, false).min(spec.count / 5);
    match spec.implementation {
        #[cfg(feature = "peers")]
        Impl::Iceoryx2 => iceoryx2_rtt::measure(spec, announced, warmup),
        #[cfg(feature = "peers")]
        Impl::IpcChannel => ipc_channel_rtt::measure(spec, announced, warmup),
        other => {
            let _ = (announced, warmup);
            Err(format!("{} is not built in (cargo feature `peers`)", other.label()).into())
        }
    }
}

/// Removes what a peer library's run left behind (files in /dev/shm and the temp dir).
pub fn cleanup(spec: &PeerSpec) {
    #[cfg(feature = "peers")]
    if spec.implementation == Impl::Iceoryx2 {
        iceoryx2_rtt::cleanup(spec);
    }
    let _ = spec;
}
