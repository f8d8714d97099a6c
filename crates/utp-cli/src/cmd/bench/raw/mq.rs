//! Raw POSIX message queue baseline (libc `mq_*`): a queue per direction,
//! `mq_timedsend` / `mq_timedreceive` (the timeout only bounds a wait for a
//! dead peer; the call is the same system call as `mq_send`).
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
use std::time::Duration;

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

fn deadline(idle: Duration) -> libc::timespec {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + idle;
    libc::timespec {
        tv_sec: now.as_secs() as libc::time_t,
        tv_nsec: now.subsec_nanos() as libc::c_long,
    }
}

/// Two queues: one to send on, one to receive from.
#[derive(Debug)]
pub struct MqLink {
    outgoing: Queue,
    incoming: Queue,
    idle: Duration,
    buf: Vec<u8>,
    /// An epoll set watching `incoming` (see the module docs); never waited on.
    _watch: OwnedFd,
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
        let until = deadline(self.idle);
        // SAFETY: `outgoing.fd` is open; `msg` is valid for `msg.len()` bytes
        // and `until` a valid timespec, both live for the call.
        let rc = unsafe {
            libc::mq_timedsend(self.outgoing.fd, msg.as_ptr().cast(), msg.len(), 0, &until)
        };
        if rc != 0 {
            return Err(format!("mq_send: {}", std::io::Error::last_os_error()).into());
        }
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> Fallible<&[u8]> {
        let until = deadline(self.idle);
        // SAFETY: `incoming.fd` is open; `buf` is writable for its whole
        // length, which is the queue's message size as mq_receive requires.
        let n = unsafe {
            libc::mq_timedreceive(
                self.incoming.fd,
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                std::ptr::null_mut(),
                &until,
            )
        };
        if n < 0 {
            return Err(format!("mq_receive: {}", std::io::Error::last_os_error()).into());
        }
        Ok(&self.buf[..n as usize])
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
        _watch: watch,
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
        _watch: watch(&incoming)?,
        buf: vec![0; incoming.msg_size],
        outgoing,
        incoming,
        idle,
    })
}
