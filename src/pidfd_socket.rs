//! `--pidfd-socket PATH` of create, run and exec (runc 1.2): a pidfd of the
//! container's new process goes to the client's unix socket (SCM_RIGHTS),
//! so that the client can signal and wait for it without racing on its pid.

use crate::error::{Context, Result};
use crate::sys::PidFd;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A connection to the client's socket. Made once the process exists, so
/// that the process does not inherit it.
pub struct PidfdSocket {
    sock: OwnedFd,
    path: PathBuf,
}

impl PidfdSocket {
    pub fn connect(path: &Path) -> Result<PidfdSocket> {
        Ok(PidfdSocket {
            sock: crate::tty::connect_socket(path, "--pidfd-socket")?,
            path: path.to_path_buf(),
        })
    }

    /// Sends `pidfd` (the caller checked that it is the process's).
    pub fn send(&self, pidfd: &PidFd) -> Result<()> {
        crate::tty::send_named_fd(self.sock.as_fd(), pidfd.as_fd(), b"pidfd")
            .ctx(|| format!("--pidfd-socket {}: send the pidfd", self.path.display()))
    }
}
