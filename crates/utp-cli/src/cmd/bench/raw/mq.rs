//! Raw POSIX message queue baseline (libc `mq_*`): a queue per direction,
//! `mq_timedsend` / `mq_timedreceive` (the call is the same system call as
//! `mq_send`). Each call waits at most [`LIVENESS_CHECK`] and is repeated
//! until the idle limit, as utp's channel waits in slices of that length
//! to check on its peer. The length of the timeout moves the results:
//! waiting up to its whole idle limit (30 s) in one call, this baseline
//! was slower than utp in 17 of the 18 round trips of the six stored full
//! runs from run 33 (utp at 0.91–1.00x), and utp's streams and calculator
//! ran at 1.00–1.08x it. In three alternated `utp bench --only mq` pairs,
//! waits of 100 ms moved utp's round trips from 0.91–0.96x this baseline
//! to 0.95–1.04x, its streams from 1.01–1.12x to 0.95–1.03x and its
//! calculator from 1.03–1.10x to 0.95–1.04x. (The kernel arms one timer
//! per wait either way; why its distance matters is not traced.)
//!
//! Each end keeps its receive queue in an epoll set, as a utp channel does
//! for its readiness descriptor, though nothing waits on the set: the
//! kernel then runs an epoll callback on every send to that queue, and that
//! changes how the two sides meet. Measured in C on this machine, 96-byte
//! messages through a 4-deep queue stream 1.2–1.5x faster with the watch
//! than without, so a baseline without it lost to utp by that much.

use crate::cmd::bench::link::{Fallible, Link};
use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};
use utp::transport::mq::LIVENESS_CHECK;

/// One open queue descriptor, closed on drop.
///
/// Invariants: `fd` is an open message queue descriptor owned by this value.
#[derive(Debug)]
struct Queue {
    fd: libc::mqd_t,
    name: CString,
    msg_size: usize,
}

impl Queue {
    fn open(name: &str, create: Option<(usize, usize)>) -> Fallible<Queue> {
        let c_name = CString::new(name)?;
        let fd = match create {
            Some((depth, msg_size)) => {
                // SAFETY: an all-zero mq_attr is a valid value of this plain C struct.
                let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
                attr.mq_maxmsg = depth as libc::c_long;
                attr.mq_msgsize = msg_size as libc::c_long;
                // SAFETY: `c_name` is a NUL-terminated string and `attr` a valid
                // mq_attr, both live for the call; the variadic mode and attr
                // arguments are the ones O_CREAT requires.
                unsafe {
                    libc::mq_open(
                        c_name.as_ptr(),
                        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                        0o600 as libc::mode_t,
                        &mut attr as *mut libc::mq_attr,
                    )
                }
            }
            // SAFETY: `c_name` is a NUL-terminated string live for the call.
            None => unsafe { libc::mq_open(c_name.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) },
        };
        if fd < 0 {
            return Err(format!("mq_open {name}: {}", std::io::Error::last_os_error()).into());
        }
        // SAFETY: an all-zero mq_attr is a valid value to be filled in.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` was just opened and `attr` is a valid, writable mq_attr.
        if unsafe { libc::mq_getattr(fd, &mut attr) } != 0 {
            let error = std::io::Error::last_os_error();
            // SAFETY: `fd` is open and not used after this.
            unsafe { libc::mq_close(fd) };
            return Err(format!("mq_getattr {name}: {error}").into());
        }
        Ok(Queue {
            fd,
            name: c_name,
            msg_size: attr.mq_msgsize as usize,
        })
    }

    fn unlink(&self) {
        // SAFETY: `name` is a NUL-terminated string; unlinking a missing queue is harmless.
        unsafe { libc::mq_unlink(self.name.as_ptr()) };
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `fd` is open (type invariant) and never used after drop.
        unsafe { libc::mq_close(self.fd) };
    }
}

/// The absolute `CLOCK_REALTIME` time `after` from now, as the timed calls want.
fn deadline(after: Duration) -> libc::timespec {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + after;
    libc::timespec {
        tv_sec: now.as_secs() as libc::time_t,
        tv_nsec: now.subsec_nanos() as libc::c_long,
    }
}

/// Repeats `call` (a timed queue call given its absolute timeout) in waits
/// of at most [`LIVENESS_CHECK`] until it succeeds or `idle` has passed
/// without it (see the module docs). Returns what the call returned.
///
/// The idle clock starts at the first timeout, a wait after the call
/// began: a call that succeeds at once reads no clock but the timeout's,
/// as utp's untimed calls read none of their own.
fn in_slices(
    idle: Duration,
    what: &str,
    mut call: impl FnMut(&libc::timespec) -> isize,
) -> Fallible<usize> {
    let mut first_timeout: Option<Instant> = None;
    loop {
        let rc = call(&deadline(LIVENESS_CHECK));
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::ETIMEDOUT) => {
                let since = *first_timeout.get_or_insert_with(Instant::now);
                // The first wait, before `since`, lasted LIVENESS_CHECK.
                if since.elapsed() + LIVENESS_CHECK >= idle {
                    return Err(format!("{what}: {error}").into());
                }
            }
            _ => return Err(format!("{what}: {error}").into()),
        }
    }
}

/// Two queues: one to send on, one to receive from.
#[derive(Debug)]
pub struct MqLink {
    outgoing: Queue,
    incoming: Queue,
    idle: Duration,
    buf: Vec<u8>,
    /// An epoll set watching `incoming` (see the module docs); waited on
    /// only by `try_recv`, with a zero timeout.
    watch: OwnedFd,
}

/// An epoll set watching `queue` for input, as utp's readiness set does.
fn watch(queue: &Queue) -> Fallible<OwnedFd> {
    use rustix::event::epoll;
    let set = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    // SAFETY: `queue.fd` is an open message queue descriptor (a file
    // descriptor on Linux) for as long as `queue` lives, which outlasts this call.
    let fd = unsafe { BorrowedFd::borrow_raw(queue.fd) };
    epoll::add(
        &set,
        fd,
        epoll::EventData::new_u64(0),
        epoll::EventFlags::IN,
    )?;
    Ok(set)
}

impl Drop for MqLink {
    fn drop(&mut self) {
        // Either side may be the last to know the names: both remove them.
        self.outgoing.unlink();
        self.incoming.unlink();
    }
}

impl Link for MqLink {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let fd = self.outgoing.fd;
        in_slices(self.idle, "mq_send", |until| {
            // SAFETY: `fd` is open (the queue outlives this call); `msg` is
            // valid for `msg.len()` bytes and `until` a valid timespec, both
            // live for the call.
            unsafe { libc::mq_timedsend(fd, msg.as_ptr().cast(), msg.len(), 0, until) as isize }
        })?;
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
        let fd = self.incoming.fd;
        let buf = &mut self.buf;
        let n = in_slices(self.idle, "mq_receive", |until| {
            // SAFETY: `fd` is open (the queue outlives this call); `buf` is
            // writable for its whole length, which is the queue's message
            // size as mq_receive requires; `until` is a valid timespec.
            unsafe {
                libc::mq_timedreceive(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                    until,
                )
            }
        })?;
        Ok(&self.buf[..n])
    }

    fn try_recv(&mut self, len: usize) -> Fallible<Option<&[u8]>> {
        if !super::readable_now(&self.watch)? {
            return Ok(None);
        }
        self.recv(len).map(Some)
    }
}

/// Peer side: creates `NAME-req` and `NAME-resp` (0600) for messages of up to
/// `size` bytes, announces, and keeps them until the client has opened them.
pub fn serve(
    name: &str,
    size: usize,
    idle: Duration,
    announce: &mut dyn FnMut(&str),
) -> Fallible<MqLink> {
    let (depth, msg_size) = queue_shape();
    if size > msg_size {
        return Err(format!("{size} bytes do not fit in a {msg_size}-byte queue message").into());
    }
    let incoming = Queue::open(&format!("{name}-req"), Some((depth, msg_size)))?;
    let outgoing = match Queue::open(&format!("{name}-resp"), Some((depth, msg_size))) {
        Ok(q) => q,
        Err(e) => {
            incoming.unlink();
            return Err(e);
        }
    };
    let watch = watch(&incoming).inspect_err(|_| {
        incoming.unlink();
        outgoing.unlink();
    })?;
    announce(name);
    Ok(MqLink {
        buf: vec![0; incoming.msg_size],
        outgoing,
        incoming,
        idle,
        watch,
    })
}

/// Depth and message size of the baseline's queues: exactly those of a utp
/// client's queues with default options, so both run at equal settings.
pub fn queue_shape() -> (usize, usize) {
    use utp::transport::mq;
    let limits = mq::limits();
    let message_size = mq::message_size(utp::frame::DEFAULT_MAX_PAYLOAD, &limits);
    (mq::default_depth(message_size, &limits), message_size)
}

/// Client side: opens the two queues and removes their names.
pub fn connect(name: &str, idle: Duration) -> Fallible<MqLink> {
    let outgoing = Queue::open(&format!("{name}-req"), None)?;
    let incoming = Queue::open(&format!("{name}-resp"), None)?;
    Ok(MqLink {
        watch: watch(&incoming)?,
        buf: vec![0; incoming.msg_size],
        outgoing,
        incoming,
        idle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue pair under a name no other test uses; both ends remove it.
    fn pair(tag: &str, idle: Duration) -> (MqLink, MqLink) {
        let name = format!("/utp-bench-test-{}-mq-{tag}", std::process::id());
        let peer = serve(&name, 64, idle, &mut |_| {}).unwrap();
        let client = connect(&name, idle).unwrap();
        (peer, client)
    }

    #[test]
    fn a_message_later_than_one_wait_still_arrives() {
        let (mut peer, mut client) = pair("late", Duration::from_secs(10));
        let sender = std::thread::spawn(move || {
            // Longer than two waits of LIVENESS_CHECK.
            std::thread::sleep(LIVENESS_CHECK * 5 / 2);
            client.send(b"late").unwrap();
            client
        });
        assert_eq!(peer.recv(4).unwrap(), b"late");
        drop(sender.join().unwrap());
    }

    #[test]
    fn a_wait_ends_at_the_idle_limit_not_at_the_first_timeout() {
        let idle = LIVENESS_CHECK * 3;
        let (mut peer, _client) = pair("idle", idle);
        let started = Instant::now();
        let error = peer.recv(4).unwrap_err().to_string();
        let waited = started.elapsed();
        assert!(error.contains("mq_receive"), "{error}");
        assert!(waited >= idle, "gave up after {waited:?}, before {idle:?}");
        assert!(waited < idle + Duration::from_secs(2), "waited {waited:?}");
    }
}
