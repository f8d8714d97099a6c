//! The raw baseline of the async rows (`unix (async)`): one Unix stream
//! socket driven by tokio, as a tokio program would drive it
//! (`tokio::net::UnixStream`, registered for reading and writing, on a
//! current-thread runtime, `block_on` per send and receive as utp's async
//! side), read as the blocking baseline reads (whatever has arrived into a
//! buffer of utp's size, a large message straight into place), so the row
//! compares utp's async path with tokio's own rather than with a thread
//! blocked in `read`.

use crate::cmd::bench::link::{Fallible, Link};

#[cfg(feature = "tokio")]
mod imp {
    use super::*;
    use crate::cmd::bench::raw::fd::ReadAhead;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::runtime::Runtime;

    /// One end of a run over a tokio-driven Unix socket.
    #[derive(Debug)]
    pub struct TokioUnixLink {
        runtime: Runtime,
        stream: tokio::net::UnixStream,
        ahead: ReadAhead,
        place: Vec<u8>,
    }

    /// The socket as a blocking reader: each read is one tokio `read` run to
    /// completion on the runtime (which waits in its epoll when the socket
    /// is empty, and knows a short read emptied it).
    struct OnRuntime<'a> {
        runtime: &'a Runtime,
        stream: &'a mut tokio::net::UnixStream,
    }

    impl std::io::Read for OnRuntime<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.runtime.block_on(self.stream.read(buf))
        }
    }

    impl TokioUnixLink {
        fn new(stream: std::os::unix::net::UnixStream) -> Fallible<Self> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            stream.set_nonblocking(true)?;
            let stream = {
                let _inside = runtime.enter();
                tokio::net::UnixStream::from_std(stream)?
            };
            Ok(TokioUnixLink {
                runtime,
                stream,
                ahead: ReadAhead::new(usize::MAX, false),
                place: Vec::new(),
            })
        }
    }

    /// Peer side: binds `address`, announces it, accepts one client.
    pub fn serve(address: &str, announce: &mut dyn FnMut(&str)) -> Fallible<Box<dyn Link>> {
        let stream = crate::cmd::bench::raw::fd::unix_accept(address, announce)?;
        Ok(Box::new(TokioUnixLink::new(stream)?))
    }

    /// Client side.
    pub fn connect(address: &str) -> Fallible<Box<dyn Link>> {
        let stream = crate::cmd::bench::raw::fd::unix_stream_to(address)?;
        Ok(Box::new(TokioUnixLink::new(stream)?))
    }

    impl Link for TokioUnixLink {
        fn send(&mut self, msg: &[u8]) -> Fallible<()> {
            Ok(self.runtime.block_on(self.stream.write_all(msg))?)
        }

        fn recv(&mut self, len: usize) -> Fallible<&[u8]> {
            let mut reader = OnRuntime {
                runtime: &self.runtime,
                stream: &mut self.stream,
            };
            self.ahead.next(&mut reader, len, &mut self.place)
        }

        fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>> {
            if self.ahead.held() == 0 && !crate::cmd::bench::raw::readable_now(&self.stream)? {
                return Ok(None);
            }
            self.recv(len).map(Some)
        }
    }
}

#[cfg(not(feature = "tokio"))]
mod imp {
    use super::*;

    use crate::cmd::bench::runner::not_in_build;

    pub fn serve(_address: &str, _announce: &mut dyn FnMut(&str)) -> Fallible<Box<dyn Link>> {
        Err(not_in_build("the tokio baseline", "tokio"))
    }

    pub fn connect(_address: &str) -> Fallible<Box<dyn Link>> {
        Err(not_in_build("the tokio baseline", "tokio"))
    }
}

pub use imp::{connect, serve};
