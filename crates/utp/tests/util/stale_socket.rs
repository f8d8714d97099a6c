//! A stale Unix socket file, for the tests of both crates (utp-cli's
//! include this file).

/// Leaves a socket file at `path` as a server killed before it closed
/// would: bound, then closed, nobody listening. Bound without `listen`,
/// so that a child another test forks while the socket is open (it holds
/// the descriptor until its `exec`) cannot make it look live: a socket
/// that never listened refuses connections whoever holds it.
pub fn stale_socket(path: impl AsRef<std::path::Path>) {
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .expect("a Unix socket");
    let addr = rustix::net::SocketAddrUnix::new(path.as_ref()).expect("a socket path");
    rustix::net::bind(&fd, &addr).expect("bind the stale socket");
}
