//! The parent/child channel used while a container is being created: a
//! SOCK_SEQPACKET pair, one message per send, so a message is never split
//! and the death of either side shows up as end-of-file. A message may
//! carry one file descriptor (SCM_RIGHTS): the seccomp listener, or an
//! idmapped mount made by the parent.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → child: the parent's setup of the child (cgroups, ...) is
    /// done; go on with the container's setup.
    Continue,
    /// child → parent: the container is set up and waits for `start`.
    Ready,
    /// parent → child: the state is on disk; the child may outlive us.
    Commit,
    /// child → parent: setup failed with this message.
    Fail(String),
    /// child → parent: the namespaces and mounts exist; run the prestart
    /// and createRuntime hooks now (before pivot_root).
    Hooks,
    /// parent → child: those hooks ran.
    HooksDone,
    /// child → parent, with the seccomp user-notification listener fd: the
    /// filter is in; hand the listener to `linux.seccomp.listenerPath`.
    Seccomp,
    /// parent → child: the listener was delivered.
    SeccompDone,
    /// capsa's exec stub → parent: the program's exec failed (see
    /// crate::exec_stub; the stub writes it, not capsa).
    ExecFailed(nix::errno::Errno),
    /// child → parent: `mounts[N]` is idmapped; make it (the kernel lets
    /// only the host's root do that) and send it.
    IdmapMount(u32),
    /// parent → child, with the detached idmapped mount asked for: attach
    /// it at its destination.
    IdmapMountFd,
}

/// The largest message, a failure's text included (cut to fit): received
/// into a buffer on the stack.
const MAX_MSG: usize = 4096;

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl std::os::fd::AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with_fd(msg, None)
    }

    /// Sends `msg` with `fd` attached (SCM_RIGHTS); the receiver gets its
    /// own copy, so the sender may close its one right after.
    pub fn send_with_fd(&self, msg: &Msg, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let buf: Vec<u8> = match msg {
            Msg::Continue => b"C".to_vec(),
            Msg::Ready => b"R".to_vec(),
            Msg::Commit => b"G".to_vec(),
            Msg::Hooks => b"H".to_vec(),
            Msg::HooksDone => b"D".to_vec(),
            Msg::Seccomp => b"S".to_vec(),
            Msg::SeccompDone => b"s".to_vec(),
            Msg::ExecFailed(e) => {
                let mut v = vec![0];
                v.extend_from_slice(&(*e as u16).to_le_bytes());
                v
            }
            Msg::IdmapMount(i) => format!("I{i}").into_bytes(),
            Msg::IdmapMountFd => b"i".to_vec(),
            Msg::Fail(m) => {
                let mut v = b"E".to_vec();
                // Within one datagram of MAX_MSG bytes, cut at a character.
                let mut end = m.len().min(MAX_MSG - 1);
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                v.extend_from_slice(&m.as_bytes()[..end]);
                v
            }
        };
        match fd {
            None => nix::sys::socket::send(self.fd.as_raw_fd(), &buf, MsgFlags::empty()),
            Some(fd) => {
                let fds = [fd.as_raw_fd()];
                let cmsg = [ControlMessage::ScmRights(&fds)];
                let iov = [IoSlice::new(&buf)];
                sendmsg::<()>(self.fd.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            }
        }
        .ctx(|| "send to sync socket")
        .map(drop)
    }

    /// Receives one message; `None` at end-of-file (the peer is gone). A
    /// file descriptor sent with it is closed.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// Receives one message and the file descriptor sent with it, if any
    /// (close-on-exec in this process).
    pub fn recv_with_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = [0u8; MAX_MSG];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => {
                    let msg = r.ctx(|| "receive from sync socket")?;
                    let mut fd = None;
                    for c in msg.cmsgs().ctx(|| "receive from sync socket")? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: the kernel installed these fds in
                                // our table for this message; nothing else
                                // owns them. Extra ones are closed on drop.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = match buf[0] {
            b'C' => Msg::Continue,
            b'R' => Msg::Ready,
            b'G' => Msg::Commit,
            b'H' => Msg::Hooks,
            b'D' => Msg::HooksDone,
            b'S' => Msg::Seccomp,
            b's' => Msg::SeccompDone,
            b'I' => match std::str::from_utf8(&buf[1..n])
                .ok()
                .and_then(|s| s.parse().ok())
            {
                Some(i) => Msg::IdmapMount(i),
                None => return Err(Error::msg("sync socket: malformed idmapped mount request")),
            },
            b'i' => Msg::IdmapMountFd,
            b'E' => Msg::Fail(String::from_utf8_lossy(&buf[1..n]).into_owned()),
            0 => match crate::exec_stub::exec_error(&buf[..n]) {
                Some(e) => Msg::ExecFailed(e),
                None => return Err(Error::msg("sync socket: malformed exec report")),
            },
            other => {
                return Err(Error::msg(format!(
                    "sync socket: unexpected message {other:#x}"
                )));
            }
        };
        Ok(Some((msg, fd)))
    }

    /// A failure the peer reported before it went away, if one is waiting
    /// (never blocks): the cause to show when talking to it failed.
    pub fn pending_fail(&self) -> Option<String> {
        let mut buf = [0u8; MAX_MSG];
        loop {
            match nix::sys::socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(n) if n > 0 && buf[0] == b'E' => {
                    return Some(String::from_utf8_lossy(&buf[1..n]).into_owned());
                }
                // Skip anything sent before the failure.
                Ok(n) if n > 0 => continue,
                _ => return None,
            }
        }
    }

    /// Receives and insists on `want`; a failure message becomes the error.
    pub fn expect(&self, want: Msg, peer_gone: &str) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Fail(m)) => Err(Error::Msg(m)),
            Some(m) => Err(Error::msg(format!(
                "sync socket: expected {want:?}, got {m:?}"
            ))),
            None => Err(Error::msg(peer_gone.to_string())),
        }
    }
}
