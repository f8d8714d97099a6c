//! Where pub/sub rendezvous sockets live: the per-user directories of
//! [`crate::runtime_dir`] (shared with the shm link), as `pubsub.NAME.sock`.
//! The private one (`$XDG_RUNTIME_DIR/utp/` or `/tmp/utp-UID/`, 0700) holds
//! publishers only their user reaches; the shared one (`/tmp/utp-UID.shared/`,
//! 0711) publishers that admit other users (`?allow_uid=`): others may reach
//! a socket whose name they know but neither list nor create entries.

use crate::error::Result;
use crate::runtime_dir::{self, Kind};
use std::path::PathBuf;

/// The private directory, created if missing, checked either way.
pub fn private_dir() -> Result<PathBuf> {
    runtime_dir::private_dir()
}

/// The rendezvous socket of publisher `name`.
pub fn socket_path(name: &str) -> Result<PathBuf> {
    runtime_dir::socket_path(&private_dir()?, &format!("pubsub.{name}.sock"))
}

/// The shared directory of uid `owner`: created (only by its owner) when
/// `create`, checked either way.
pub fn shared_dir(owner: u32, create: bool) -> Result<PathBuf> {
    if create {
        return runtime_dir::shared_dir();
    }
    let dir = runtime_dir::path_of(owner, Kind::Shared);
    runtime_dir::check(&dir, owner, Kind::Shared)?;
    Ok(dir)
}

/// The rendezvous socket of a publisher of uid `owner` that admits other users.
pub fn shared_socket_path(name: &str, owner: u32, create: bool) -> Result<PathBuf> {
    runtime_dir::socket_path(&shared_dir(owner, create)?, &format!("pubsub.{name}.sock"))
}
