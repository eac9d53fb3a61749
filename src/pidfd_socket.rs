//! `--pidfd-socket PATH` of create, run and exec (runc 1.2): a pidfd of the
//! container's new process goes to the client's unix socket (SCM_RIGHTS),
//! so that the client can signal and wait for it without racing on its pid.

use crate::error::{Context, Result};
use crate::sys::PidFd;
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A connection to the client's socket, made before the process exists so
/// that a bad path fails before anything is set up.
pub struct PidfdSocket {
    sock: OwnedFd,
    path: PathBuf,
}

impl PidfdSocket {
    pub fn connect(path: &Path) -> Result<PidfdSocket> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, connect, socket};
        let sock = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .ctx(|| "socket")?;
        let addr = UnixAddr::new(path).ctx(|| format!("--pidfd-socket {}", path.display()))?;
        connect(sock.as_raw_fd(), &addr)
            .ctx(|| format!("--pidfd-socket: connect to {}", path.display()))?;
        Ok(PidfdSocket {
            sock,
            path: path.to_path_buf(),
        })
    }

    /// Sends `pidfd` (the caller checked that it is the process's).
    pub fn send(&self, pidfd: &PidFd) -> Result<()> {
        let what = || format!("--pidfd-socket {}: send the pidfd", self.path.display());
        let iov = [IoSlice::new(b"pidfd")];
        let fds = [pidfd.as_fd().as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(
            self.sock.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .ctx(what)?;
        Ok(())
    }
}
