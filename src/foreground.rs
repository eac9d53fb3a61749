//! A container process in the foreground (`run` or `exec` without
//! `--detach`): capsa waits for it, forwards every signal it receives to
//! it, relays its pty if it has one, and returns its exit status the shell
//! way (128+N when killed by signal N).

use crate::error::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Signals a foreground capsa relays instead of acting on.
pub fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGABRT,
    ] {
        set.remove(s);
    }
    set
}

/// Blocks the forwarded signals (before the clone, so an early exit of the
/// child is never missed) and returns the previous mask for the child.
pub fn block_signals() -> Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), Some(&mut old))
        .ctx(|| "block signals")?;
    Ok(old)
}

/// Reaps children; returns the status of `pid` once it has exited.
fn reap(pid: Pid) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Waits for `pid` (a child of ours) with signals already blocked,
/// forwarding them; with `pty`, relays stdin to it and it to stdout.
pub fn wait(pid: Pid, pty: Option<OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(&forwarded(), SfdFlags::SFD_CLOEXEC).ctx(|| "signalfd")?;
    // SAFETY: fds 0 and 1 are ours for the life of the process.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    // SAFETY: as above, for fd 1.
    let stdout = unsafe { BorrowedFd::borrow_raw(1) };
    let _raw = pty.as_ref().and_then(|_| crate::tty::RawMode::enter(stdin));
    if let Some(m) = &pty {
        crate::tty::copy_size(stdin, m.as_fd());
    }
    let mut stdin_open = pty.is_some();
    let mut pty_open = pty.is_some();
    let mut status = reap(pid);
    let mut buf = vec![0u8; 32 * 1024];
    while status.is_none() || pty_open {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &pty {
            if pty_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        // Once the process is gone, drain what is left on the pty briefly.
        let timeout = if status.is_some() {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).ctx(|| "poll"),
            Ok(0) => break,
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if ready[0]
            && let Ok(Some(info)) = sfd.read_signal()
        {
            {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    if status.is_none() {
                        status = reap(pid);
                    }
                } else if sig == libc::SIGWINCH {
                    if let Some(m) = &pty {
                        crate::tty::copy_size(stdin, m.as_fd());
                    }
                } else if status.is_none() {
                    let _ = nix::sys::signal::kill(pid, Signal::try_from(sig).ok());
                }
            }
        }
        if let Some(m) = &pty {
            let mut i = 1;
            if pty_open {
                if ready[i] {
                    match nix::unistd::read(m.as_fd(), &mut buf) {
                        Ok(0) | Err(nix::errno::Errno::EIO) => pty_open = false,
                        Ok(n) => {
                            if !write_all(stdout, &buf[..n]) {
                                pty_open = false;
                            }
                        }
                        Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                        Err(_) => pty_open = false,
                    }
                }
                i += 1;
            }
            if stdin_open && ready.get(i).copied().unwrap_or(false) {
                match nix::unistd::read(stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = write_all(m.as_fd(), &buf[..n]);
                    }
                }
            }
        }
        if status.is_none() && pty.is_none() {
            status = reap(pid);
        }
    }
    loop {
        if let Some(s) = status {
            return Ok(s);
        }
        // The pty closed before the exit was seen: wait for it.
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).ctx(|| "wait for container process"),
            Ok(_) => status = None,
        }
    }
}
