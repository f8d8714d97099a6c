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
pub(crate) mod spares;
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
fn options_from_url(endpoint: &Endpoint, base: &Options) -> Result<Options> {
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

/// What a transport's own `connect`/`listen` does first: refuses a URL of
/// another transport (an error, never a panic) and applies the common URL
/// options exactly as [`connect_with`] does.
pub(crate) fn transport_options(
    endpoint: &Endpoint,
    options: &Options,
    schemes: &[&str],
) -> Result<Options> {
    let scheme = endpoint.address.scheme();
    if !schemes.contains(&scheme) {
        return Err(crate::Error::BadUrl {
            url: endpoint.to_string(),
            reason: format!(
                "this function serves {} URLs, not {scheme}:// (utp::connect and utp::listen take any URL)",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    options_from_url(endpoint, options)
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

#[cfg(all(test, not(loom)))]
mod entry_point_tests {
    use super::*;
    use crate::Error;

    /// Every transport's own `connect`/`listen` refuses another transport's
    /// URL with `BadUrl` (it used to panic in some of them).
    #[test]
    fn a_transport_function_given_another_scheme_says_so() {
        let url: Endpoint = "inproc://not-mine".parse().unwrap();
        let options = Options::default();
        let results: Vec<(&str, Result<()>)> = vec![
            ("unix::connect", unix::connect(&url, &options).map(drop)),
            ("unix::listen", unix::listen(&url, &options).map(drop)),
            ("tcp::connect", tcp::connect(&url, &options).map(drop)),
            ("tcp::listen", tcp::listen(&url, &options).map(drop)),
            ("udp::connect", udp::connect(&url, &options).map(drop)),
            ("udp::listen", udp::listen(&url, &options).map(drop)),
            ("pipe::connect", pipe::connect(&url, &options).map(drop)),
            ("pipe::listen", pipe::listen(&url, &options).map(drop)),
            ("fifo::connect", fifo::connect(&url, &options).map(drop)),
            ("fifo::listen", fifo::listen(&url, &options).map(drop)),
            ("mq::connect", mq::connect(&url, &options).map(drop)),
            ("mq::listen", mq::listen(&url, &options).map(drop)),
            (
                "shm::connect",
                crate::shm::connect(&url, &options).map(drop),
            ),
            ("shm::listen", crate::shm::listen(&url, &options).map(drop)),
        ];
        for (what, result) in results {
            match result {
                Err(Error::BadUrl { reason, .. }) => {
                    assert!(reason.contains("not inproc://"), "{what}: {reason}")
                }
                other => panic!("{what}: expected BadUrl, got {other:?}"),
            }
        }
    }

    /// The common URL options apply to a transport's own functions too:
    /// an unknown one is refused, `?max_payload=` limits what is received.
    #[test]
    fn a_transport_function_applies_the_common_url_options() {
        use crate::frame::{Frame, flags, message_type};
        let url: Endpoint = "tcp://127.0.0.1:0?bogus=1".parse().unwrap();
        assert!(matches!(
            tcp::listen(&url, &Options::default()),
            Err(Error::BadUrl { .. })
        ));
        let url = format!("shm://entry-{}", std::process::id());
        let mut listener = crate::shm::listen(&url.parse().unwrap(), &Options::default()).unwrap();
        let client = std::thread::spawn(move || {
            let small = format!("{url}?max_payload=100").parse().unwrap();
            crate::shm::connect(&small, &Options::default())
        });
        let mut server = listener
            .accept_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut client = client.join().unwrap().unwrap();
        let long = std::time::Duration::from_secs(5);
        server
            .send_timeout(message_type::DATA, flags::CHECKSUM, &[7; 100], Some(long))
            .unwrap();
        server
            .send_timeout(message_type::DATA, flags::CHECKSUM, &[7; 101], Some(long))
            .unwrap();
        let mut frame = Frame::default();
        client.recv_timeout(&mut frame, Some(long)).unwrap();
        assert_eq!(frame.payload().len(), 100);
        let refused = client.recv_timeout(&mut frame, Some(long)).unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Frame(crate::frame::DecodeError::TooLarge { .. })
            ),
            "{refused}"
        );
    }
}
