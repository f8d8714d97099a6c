//! `--ready-file PATH` of `serve`, `listen` and `bridge`: the URL a command
//! listens on, written once it listens, so scripts and tests wait for the
//! file instead of racing the server (and learn the port when they asked
//! for port 0).

use crate::exit::Exit;
use std::path::{Path, PathBuf};

/// A file holding the URL a server listens on, removed when dropped.
#[derive(Debug)]
pub struct ReadyFile(PathBuf);

impl ReadyFile {
    /// Writes `url` to `path` when one was given (`--ready-file`); the
    /// file lives as long as the returned value.
    pub fn announce(path: Option<&Path>, url: &str) -> Result<Option<ReadyFile>, Exit> {
        path.map(|path| ReadyFile::write(path, url)).transpose()
    }

    /// Writes `url` and a newline to `path` at once (a temporary file
    /// renamed over it), so a reader never sees half of it.
    fn write(path: &Path, url: &str) -> Result<ReadyFile, Exit> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, format!("{url}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Exit::Error(format!("write the ready file {}: {e}", path.display()))
            })?;
        Ok(ReadyFile(path.to_path_buf()))
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
