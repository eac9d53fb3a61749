//! The parent/child channel used while a container is being created: a
//! SOCK_SEQPACKET pair, one message per send, so a message is never split
//! and the death of either side shows up as end-of-file.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use std::os::fd::{AsRawFd, OwnedFd};

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
}

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

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let buf: Vec<u8> = match msg {
            Msg::Continue => b"C".to_vec(),
            Msg::Ready => b"R".to_vec(),
            Msg::Commit => b"G".to_vec(),
            Msg::Hooks => b"H".to_vec(),
            Msg::HooksDone => b"D".to_vec(),
            Msg::Fail(m) => {
                let mut v = b"E".to_vec();
                // Keep within one datagram.
                v.extend_from_slice(&m.as_bytes()[..m.len().min(60_000)]);
                v
            }
        };
        nix::sys::socket::send(
            self.fd.as_raw_fd(),
            &buf,
            nix::sys::socket::MsgFlags::empty(),
        )
        .ctx(|| "send to sync socket")
        .map(drop)
    }

    /// Receives one message; `None` at end-of-file (the peer is gone).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 65536];
        let n = loop {
            match nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.ctx(|| "receive from sync socket")?,
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
            b'E' => Msg::Fail(String::from_utf8_lossy(&buf[1..n]).into_owned()),
            other => {
                return Err(Error::msg(format!(
                    "sync socket: unexpected message {other:#x}"
                )));
            }
        };
        Ok(Some(msg))
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
