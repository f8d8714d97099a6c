//! `pipe:` and `pipe:COMMAND ARGS...`: anonymous pipes to a child process.
//!
//! **Client side** ([`connect`]): spawns a child with its stdin and stdout
//! connected to two pipes and speaks UTP frames over them. `pipe:` alone
//! spawns the calculator server, `utp serve calc --on pipe:`, finding the
//! `utp` binary in this order:
//!
//! 1. the `UTP_BIN` environment variable, if set and not empty;
//! 2. the current executable, if its file name is `utp` (so `utp call pipe:`
//!    spawns itself);
//! 3. `utp` on `PATH`.
//!
//! `pipe:/usr/bin/foo --bar` spawns that command instead (split on
//! whitespace; no shell). The child's stderr is inherited. Closing or
//! dropping the channel closes the child's stdin, waits up to two seconds for
//! it to exit, then kills it; either way it is reaped, never left a zombie.
//!
//! **Server side** ([`listen`]): serves exactly one client, the parent, on
//! this process's own stdin/stdout. The first `accept` returns that channel;
//! later ones return [`Error::Closed`], so a [`Server`](crate::service::Server)
//! finishes the one conversation and returns when stdin reaches end-of-file.
//! While listening, file descriptor 1 is pointed at stderr, so a stray
//! `println!` cannot corrupt the frame stream.
//!
//! **Capacity**: a Linux pipe holds 64 KiB by default. [`PipeChannel::pipe_size`]
//! reads it (`F_GETPIPE_SZ`) and [`PipeChannel::set_pipe_size`] changes it
//! (`F_SETPIPE_SZ`; the kernel rounds up to a power-of-two number of pages and
//! caps unprivileged users at `/proc/sys/fs/pipe-max-size`, 1 MiB by
//! default). The URL option `?pipe_size=N` (suffixes k, M allowed) sets it at
//! connect or listen time; without it utp raises both pipes to
//! [`DEFAULT_PIPE_SIZE`] (256 KiB) where the kernel allows.

use super::stream::{Framing, StreamChannel, StreamIo};
use crate::channel::{Channel, Listener, Options, PeerInfo};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::frame::{Frame, FrameRef};
use crate::halves::{Guarded, RecvHalf, SendHalf};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long `close` waits for a child to exit after its stdin closed.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// The capacity of the pipe behind `fd`, in bytes (`F_GETPIPE_SZ`).
pub fn pipe_size(fd: BorrowedFd<'_>) -> Result<usize> {
    rustix::pipe::fcntl_getpipe_size(fd)
        .map_err(|e| Error::io("read the pipe size (F_GETPIPE_SZ)", e))
}

/// Sets the capacity of the pipe behind `fd` (`F_SETPIPE_SZ`); returns the
/// size the kernel actually chose (at least `size`, rounded up).
pub fn set_pipe_size(fd: BorrowedFd<'_>, size: usize) -> Result<usize> {
    rustix::pipe::fcntl_setpipe_size(fd, size).map_err(|e| {
        Error::io(
            format!(
                "set the pipe size to {size} bytes (F_SETPIPE_SZ; unprivileged processes may \
                 not exceed /proc/sys/fs/pipe-max-size)"
            ),
            e,
        )
    })
}

/// The command `pipe:` spawns when none is given: `utp serve calc --on pipe:`.
pub fn default_command() -> Vec<String> {
    let bin = std::env::var_os("UTP_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .filter(|exe| exe.file_name().is_some_and(|n| n == "utp"))
        })
        .unwrap_or_else(|| PathBuf::from("utp"));
    vec![
        bin.to_string_lossy().into_owned(),
        "serve".into(),
        "calc".into(),
        "--on".into(),
        "pipe:".into(),
    ]
}

/// The client end: pipes to and from a child process.
#[derive(Debug)]
pub struct PipeChannel {
    inner: StreamChannel,
    child: Option<Child>,
    command: String,
}

impl PipeChannel {
    /// The child's process id.
    pub fn child_id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Capacities of the pipe to the child and the pipe from it, in bytes.
    pub fn pipe_size(&self) -> Result<(usize, usize)> {
        let (read, write) = self.fds()?;
        Ok((pipe_size(write)?, pipe_size(read)?))
    }

    /// Sets both pipes' capacity; returns what the kernel chose for each
    /// (to the child, from the child).
    pub fn set_pipe_size(&self, size: usize) -> Result<(usize, usize)> {
        let (read, write) = self.fds()?;
        Ok((set_pipe_size(write, size)?, set_pipe_size(read, size)?))
    }

    fn fds(&self) -> Result<(BorrowedFd<'_>, BorrowedFd<'_>)> {
        match self.inner.io() {
            StreamIo::Pair { read, write } => {
                Ok((read.as_fd(), write.as_ref().ok_or(Error::Closed)?.as_fd()))
            }
            StreamIo::Socket { .. } => unreachable!("pipe channels are built on pairs"),
        }
    }

    /// Waits for the child to exit (killing it after a grace period) and reaps it.
    fn reap(&mut self) {
        if let Some(child) = self.child.take() {
            reap(child, &self.command);
        }
    }
}

/// Waits for `child` to exit (killing it after a grace period) and reaps it.
fn reap(mut child: Child, command: &str) {
    let until = Instant::now() + REAP_GRACE;
    // Children usually exit within a millisecond of end-of-input: look
    // often at first, then back off.
    let mut pause = Duration::from_micros(100);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                log::debug!("pipe child `{command}` exited: {status}");
                return;
            }
            Ok(None) if Instant::now() < until => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            _ => break,
        }
    }
    log::warn!(
        "pipe child `{command}` (pid {}) did not exit within {REAP_GRACE:?} of its stdin closing; killing it",
        child.id()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The child of a split pipe channel: reaped when both halves are gone.
#[derive(Debug)]
struct SharedChild {
    child: Option<Child>,
    command: String,
}

impl Drop for SharedChild {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            reap(child, &self.command);
        }
    }
}

impl Channel for PipeChannel {
    fn send_timeout(
        &mut self,
        message_type: u8,
        flags: u16,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.inner
            .send_timeout(message_type, flags, payload, timeout)
    }

    fn send_batch(&mut self, message_type: u8, flags: u16, payloads: &[&[u8]]) -> Result<()> {
        self.inner.send_batch(message_type, flags, payloads)
    }

    fn recv_timeout(&mut self, frame: &mut Frame, timeout: Option<Duration>) -> Result<()> {
        self.inner.recv_timeout(frame, timeout)
    }

    fn recv_ref<'a>(
        &'a mut self,
        spare: &'a mut Frame,
        timeout: Option<Duration>,
    ) -> Result<FrameRef<'a>> {
        self.inner.recv_ref(spare, timeout)
    }

    fn try_recv_ref<'a>(&'a mut self, spare: &'a mut Frame) -> Result<Option<FrameRef<'a>>> {
        self.inner.try_recv_ref(spare)
    }

    fn close(&mut self) -> Result<()> {
        let closed = self.inner.close();
        self.reap();
        closed
    }

    fn peer(&self) -> PeerInfo {
        self.inner.peer()
    }

    fn sent_sequence(&self) -> Option<u64> {
        self.inner.sent_sequence()
    }

    /// The pipe from the child: readable on data, hung up when it exits.
    fn readiness(&self) -> Option<crate::channel::Readiness<'_>> {
        self.inner.readiness()
    }

    fn try_recv(&mut self, frame: &mut Frame) -> Result<bool> {
        self.inner.try_recv(frame)
    }

    fn try_send(&mut self, message_type: u8, flags: u16, payload: &[u8]) -> Result<bool> {
        self.inner.try_send(message_type, flags, payload)
    }

    fn try_send_batch(
        &mut self,
        message_type: u8,
        flags: u16,
        payloads: &[&[u8]],
    ) -> Result<usize> {
        self.inner.try_send_batch(message_type, flags, payloads)
    }

    fn try_flush(&mut self) -> Result<bool> {
        self.inner.try_flush()
    }

    // The send half writes the child's stdin, the receive half reads its
    // stdout; the child is reaped when both are gone.
    fn split(mut self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        let sender = self.inner.split_off_sender()?;
        let guard = Arc::new(SharedChild {
            child: self.child.take(),
            command: self.command.clone(),
        });
        Ok(crate::halves::halves(
            Guarded {
                inner: sender,
                _guard: guard.clone(),
            },
            Guarded {
                inner: *self,
                _guard: guard,
            },
        ))
    }

    fn into_any(self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        Some(self)
    }

    fn as_any(&self) -> Option<&(dyn std::any::Any + Send)> {
        Some(self)
    }
}

impl Drop for PipeChannel {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::io::ioctl_fionbio(fd, true).map_err(|e| Error::io("make a pipe non-blocking", e))
}

/// Capacity utp gives the pipes of `pipe:` and `fifo://` when the URL does
/// not say (`?pipe_size=`): 256 KiB, so that a 64 KiB payload and its 32-byte
/// header fit in the pipe at once. With the kernel's 64 KiB default such a
/// frame fills the pipe and the writer must sleep until the reader has
/// drained it, then wake it again for the last 32 bytes: two more wake-ups
/// per frame. Best effort: a user over `/proc/sys/fs/pipe-user-pages-soft`
/// keeps the kernel's size.
pub const DEFAULT_PIPE_SIZE: usize = 256 * 1024;

/// The most one read from a pipe or FIFO moves, and, with a frame
/// header's 32 bytes, one write: frames larger than that go in pieces
/// (a frame of a 64 KiB payload goes whole). The reader and the writer of a
/// pipe take one lock in the kernel, held for a whole copy; writing a large
/// frame in 64 KiB pieces lets the reader empty the pipe between them
/// (1 MiB messages through a 256 KiB pipe, read 64 KiB at a time: 1.3–1.6
/// GB/s written whole, 2.6–2.9 GB/s in 16–64 KiB pieces).
pub const PIPE_PIECE: usize = 64 * 1024;

/// Gives each pipe of `fds` the size `?pipe_size=` asks for (an error if the
/// kernel refuses), or at least [`DEFAULT_PIPE_SIZE`] (never shrinking one,
/// silently keeping the size if the kernel refuses).
pub(crate) fn apply_pipe_size(endpoint: &Endpoint, fds: &[BorrowedFd<'_>]) -> Result<()> {
    if let Some(size) = endpoint.param_number("pipe_size")? {
        for fd in fds {
            set_pipe_size(*fd, size as usize)?;
        }
        return Ok(());
    }
    for fd in fds {
        grow_pipe(*fd);
    }
    Ok(())
}

/// Raises the pipe behind `fd` to [`DEFAULT_PIPE_SIZE`] if it is smaller;
/// anything that fails (not a pipe, over the user's limit) leaves it as is.
pub(crate) fn grow_pipe(fd: BorrowedFd<'_>) {
    if pipe_size(fd).is_ok_and(|size| size < DEFAULT_PIPE_SIZE) {
        if let Err(e) = set_pipe_size(fd, DEFAULT_PIPE_SIZE) {
            log::debug!("keeping the pipe's size: {e}");
        }
    }
}

/// Whether bytes wait in the pipe behind `fd` (so a read returns at once).
///
/// Asked with `FIONREAD`, never with poll where that can be helped: the
/// first poll or epoll of a pipe, ever, makes the kernel wake its reader
/// on every later write for the rest of the pipe's life (for epoll's
/// edge-triggered users), which costs a stream of small frames a third of
/// its rate. A C stream of 64-byte writes between two pinned processes ran
/// at 2.3–3.5 M writes/s into a FIFO never polled and 1.7–1.9 M after one
/// poll with a zero timeout. `FIONREAD` takes the pipe's lock, so it waits
/// out a writer's copy in progress: ask it before small reads only. A
/// descriptor that does not answer `FIONREAD` counts as empty (the caller
/// then polls).
pub(crate) fn holds_bytes(fd: BorrowedFd<'_>) -> bool {
    rustix::io::ioctl_fionread(fd).is_ok_and(|bytes| bytes > 0)
}

/// Spawns the endpoint's command (or [`default_command`]) and connects to it.
pub fn connect(endpoint: &Endpoint, options: &Options) -> Result<PipeChannel> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["pipe"])?;
    let Address::Pipe(args) = &endpoint.address else {
        unreachable!(
            "pipe::connect called with a {} endpoint",
            endpoint.address.scheme()
        );
    };
    let default = args.is_empty();
    let argv = if default {
        default_command()
    } else {
        args.clone()
    };
    let command_line = argv.join(" ");
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if default && std::env::var_os("RUST_LOG").is_none() {
        // The spawned server's "serving on pipe:" is noise on the caller's stderr.
        command.env("RUST_LOG", "warn");
    }
    let mut child = command.spawn().map_err(|e| Error::NotFound {
        endpoint: endpoint.to_string(),
        reason: if default {
            format!("cannot start `{command_line}`: {e}; set UTP_BIN to the path of the utp binary")
        } else {
            format!("cannot start `{command_line}`: {e}")
        },
    })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        unreachable!("stdin and stdout were requested as pipes");
    };
    let write = OwnedFd::from(stdin);
    let read = OwnedFd::from(stdout);
    let setup = set_nonblocking(read.as_fd())
        .and_then(|()| set_nonblocking(write.as_fd()))
        .and_then(|()| apply_pipe_size(endpoint, &[read.as_fd(), write.as_fd()]));
    let inner = StreamChannel::new(
        StreamIo::Pair {
            read,
            write: Some(write),
        },
        super::stream::client_framing(endpoint),
        options.max_payload,
        format!("pipe:{command_line}"),
        PeerInfo {
            pid: Some(child.id()),
            address: Some(format!("pipe:{command_line}")),
            ..PeerInfo::default()
        },
    );
    let channel = PipeChannel {
        inner,
        child: Some(child),
        command: command_line,
    };
    setup.map(|()| channel)
}

/// Whether some `pipe:` listener already owns this process's stdin/stdout.
static STDIO_TAKEN: AtomicBool = AtomicBool::new(false);

/// Serves the one client on the other end of this process's stdin/stdout.
#[derive(Debug)]
pub struct PipeListener {
    stdio: Option<(OwnedFd, OwnedFd)>,
    max_payload: usize,
    /// Readable until the one client (the parent) is accepted.
    ready: crate::wake::Doorbell,
}

impl PipeListener {
    /// Capacities of stdin's and stdout's pipes, while not yet accepted.
    pub fn pipe_size(&self) -> Result<(usize, usize)> {
        let (read, write) = self.stdio.as_ref().ok_or(Error::Closed)?;
        Ok((pipe_size(read.as_fd())?, pipe_size(write.as_fd())?))
    }
}

fn is_pipe_or_socket(fd: BorrowedFd<'_>) -> bool {
    use rustix::fs::FileType;
    rustix::fs::fstat(fd).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::Socket
        )
    })
}

/// Takes over stdin/stdout to serve the parent (see the module docs).
pub fn listen(endpoint: &Endpoint, options: &Options) -> Result<PipeListener> {
    // A URL of this transport (else an error, not a panic), with the common
    // URL options (?max_payload=, ...) applied as utp::connect_with does.
    let options = &crate::transport::transport_options(endpoint, options, &["pipe"])?;
    if let Address::Pipe(args) = &endpoint.address {
        if !args.is_empty() {
            return Err(Error::BadUrl {
                url: endpoint.to_string(),
                reason: "listening on pipe: takes no command: it serves on this process's \
                         stdin/stdout"
                    .into(),
            });
        }
    }
    if STDIO_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(Error::InUse {
            endpoint: "pipe:".into(),
            hint: Some("this process's stdin/stdout already serve a pipe: listener".into()),
        });
    }
    let taken = (|| {
        let dup = |fd: BorrowedFd<'_>, what: &str| {
            rustix::io::fcntl_dupfd_cloexec(fd, 3)
                .map_err(|e| Error::io(format!("take over {what}"), e))
        };
        let read = dup(std::io::stdin().as_fd(), "stdin")?;
        let write = dup(std::io::stdout().as_fd(), "stdout")?;
        // From now on fd 1 is stderr and fd 0 is /dev/null: only the channel
        // writes to the parent.
        rustix::stdio::dup2_stdout(std::io::stderr().as_fd())
            .map_err(|e| Error::io("point stdout at stderr", e))?;
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = rustix::stdio::dup2_stdin(null.as_fd());
        }
        for fd in [read.as_fd(), write.as_fd()] {
            // Only pipes and sockets: a terminal's flags are shared with the shell.
            if is_pipe_or_socket(fd) {
                set_nonblocking(fd)?;
            }
        }
        apply_pipe_size(endpoint, &[read.as_fd(), write.as_fd()])?;
        Ok((read, write))
    })();
    match taken {
        Ok(stdio) => {
            let ready = crate::wake::Doorbell::new()?;
            ready.ring_always();
            Ok(PipeListener {
                stdio: Some(stdio),
                max_payload: options.max_payload,
                ready,
            })
        }
        Err(e) => {
            STDIO_TAKEN.store(false, Ordering::SeqCst);
            Err(e)
        }
    }
}

impl Listener for PipeListener {
    fn accept_timeout(&mut self, _timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        let (read, write) = self.stdio.take().ok_or(Error::Closed)?;
        self.ready.arm();
        Ok(Box::new(StreamChannel::new(
            StreamIo::Pair {
                read,
                write: Some(write),
            },
            Framing::Detect,
            self.max_payload,
            "pipe: (stdin/stdout)".into(),
            PeerInfo {
                pid: Some(
                    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32),
                ),
                address: Some("pipe: (parent process)".into()),
                ..PeerInfo::default()
            },
        )))
    }

    /// Readable while the one client (the parent, on stdin/stdout) has
    /// not been accepted: `try_accept` returns it at once.
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.ready.fd())
    }

    fn endpoint(&self) -> String {
        "pipe:".into()
    }

    fn close(&mut self) -> Result<()> {
        self.stdio = None;
        Ok(())
    }
}
