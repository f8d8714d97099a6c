//! Transports: one module per IPC mechanism, each implementing
//! [`Channel`] and [`Listener`].
//!
//! # Entry points
//!
//! There is one way in for every transport, in two strengths:
//!
//! - [`connect`] / [`listen`] (and [`connect_with`] / [`listen_with`] with
//!   [`Options`]) take a URL string and return a `Box<dyn Channel>` /
//!   `Box<dyn Listener>`: the transport is chosen by the URL's scheme. This
//!   is what most programs use.
//! - Where a transport has more to offer than the traits (zero-copy on
//!   [`shm`](crate::shm), priorities on [`mq`], descriptor passing on
//!   [`unix`], child processes on [`pipe`]), its module has
//!   `connect(&Endpoint, &Options)` and `listen(&Endpoint, &Options)` with
//!   the same meaning that return the concrete type. An [`Endpoint`] is the
//!   parsed URL (`"shm://calc".parse()?`); URL options are applied exactly as
//!   by [`connect_with`].
//!
//! `inproc://` has nothing beyond the traits and no functions of its own.

pub mod fifo;
mod in_use;
pub mod inproc;
mod message;
pub mod mq;
pub mod pipe;
pub(crate) mod queue;
pub mod stream;
pub mod tcp;
pub mod udp;
pub mod unix;
pub(crate) mod url_options;
pub(crate) mod wait;
#[cfg(feature = "zenoh")]
pub mod zenoh;

use crate::channel::{Channel, Listener, Options};
use crate::endpoint::{Address, Endpoint};
use crate::error::Result;

/// Connects to `url` with default [`Options`].
///
/// ```no_run
/// let mut channel = utp::connect("unix:///tmp/calc.sock")?;
/// # Ok::<(), utp::Error>(())
/// ```
pub fn connect(url: &str) -> Result<Box<dyn Channel>> {
    connect_with(url, &Options::default())
}

/// Connects to `url` with the given options.
pub fn connect_with(url: &str, options: &Options) -> Result<Box<dyn Channel>> {
    let endpoint = Endpoint::parse(url)?;
    let options = options_from_url(&endpoint, options)?;
    let channel: Box<dyn Channel> = match &endpoint.address {
        Address::Inproc(name) => Box::new(inproc::connect(name, &options)?),
        Address::Unix(_) | Address::UnixAbstract(_) => {
            Box::new(unix::connect(&endpoint, &options)?)
        }
        Address::Tcp(_) => Box::new(tcp::connect(&endpoint, &options)?),
        Address::Udp(_) => Box::new(udp::connect(&endpoint, &options)?),
        Address::Pipe(_) => Box::new(pipe::connect(&endpoint, &options)?),
        Address::Fifo(_) => Box::new(fifo::connect(&endpoint, &options)?),
        Address::Mq(_) => Box::new(mq::connect(&endpoint, &options)?),
        #[cfg(feature = "zenoh")]
        Address::Zenoh(_) => Box::new(zenoh::connect(&endpoint, &options)?),
        #[cfg(not(loom))]
        Address::Shm(_) | Address::SysV(_) | Address::File(_) => {
            Box::new(crate::shm::connect(&endpoint, &options)?)
        }
        // Reachable only in builds that leave a transport out (cfg(loom): shm;
        // no feature `zenoh`: zenoh://).
        #[allow(unreachable_patterns)]
        _ => return Err(unsupported(&endpoint)),
    };
    // Counted for `utp stat` (crate::stats); labelled without the options.
    let label = endpoint.address.to_string();
    Ok(crate::stats::count_channel(
        channel,
        crate::stats::Kind::Client,
        &label,
        None,
    ))
}

/// Listens at `url` with default [`Options`].
pub fn listen(url: &str) -> Result<Box<dyn Listener>> {
    listen_with(url, &Options::default())
}

/// Listens at `url` with the given options.
pub fn listen_with(url: &str, options: &Options) -> Result<Box<dyn Listener>> {
    let endpoint = Endpoint::parse(url)?;
    let options = options_from_url(&endpoint, options)?;
    #[cfg(loom)]
    let _ = &options;
    let listener: Box<dyn Listener> = match &endpoint.address {
        Address::Inproc(name) => Box::new(inproc::listen(name)?),
        Address::Unix(_) | Address::UnixAbstract(_) => Box::new(unix::listen(&endpoint, &options)?),
        Address::Tcp(_) => Box::new(tcp::listen(&endpoint, &options)?),
        Address::Udp(_) => Box::new(udp::listen(&endpoint, &options)?),
        Address::Pipe(_) => Box::new(pipe::listen(&endpoint, &options)?),
        Address::Fifo(_) => Box::new(
            fifo::listen(&endpoint, &options).map_err(|e| in_use::name_holder(&endpoint, e))?,
        ),
        Address::Mq(_) => Box::new(
            mq::listen(&endpoint, &options).map_err(|e| in_use::name_holder(&endpoint, e))?,
        ),
        #[cfg(feature = "zenoh")]
        Address::Zenoh(_) => Box::new(zenoh::listen(&endpoint, &options)?),
        #[cfg(not(loom))]
        Address::Shm(_) | Address::SysV(_) | Address::File(_) => Box::new(
            crate::shm::listen(&endpoint, &options)
                .map_err(|e| in_use::name_holder(&endpoint, e))?,
        ),
        // Reachable only in builds that leave a transport out (cfg(loom): shm;
        // no feature `zenoh`: zenoh://).
        #[allow(unreachable_patterns)]
        _ => return Err(unsupported(&endpoint)),
    };
    // Counted for `utp stat` (crate::stats), accepted channels too.
    Ok(crate::stats::count_listener(listener))
}

/// URL options override programmatic ones: `?max_payload=N`,
/// `?connect_timeout_ms=N`, `?frame_timeout_ms=N`, `?idle_timeout_ms=N` (0: never).
/// An option the transport does not know is an error.
pub(crate) fn options_from_url(endpoint: &Endpoint, base: &Options) -> Result<Options> {
    url_options::check(endpoint)?;
    let mut options = base.clone();
    if let Some(max) = endpoint.param_number("max_payload")? {
        options.max_payload = max.min(u32::MAX as u64) as usize;
    }
    if let Some(ms) = endpoint.param_number("connect_timeout_ms")? {
        options.connect_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = endpoint.param_number("frame_timeout_ms")? {
        options.frame_timeout = std::time::Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = endpoint.param_number("idle_timeout_ms")? {
        options.idle_timeout = (ms > 0).then(|| std::time::Duration::from_millis(ms));
    }
    Ok(options)
}

fn unsupported(endpoint: &Endpoint) -> crate::Error {
    crate::Error::BadUrl {
        url: endpoint.to_string(),
        reason: format!(
            "the {} transport is not available in this build{}",
            endpoint.address.scheme(),
            match endpoint.address {
                Address::Zenoh(_) => " (build utp with the cargo feature `zenoh`)",
                _ => "",
            }
        ),
    }
}
