//! Terminals: a pty created inside the container's own devpts, its master
//! handed to the client over a unix socket with SCM_RIGHTS (what
//! containerd and conmon expect), the slave made the process's controlling
//! terminal, and the local relay `capsa run` uses at a terminal.

use crate::error::{Context, Error, Result};
use crate::rootfs::paths;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::stat::{SFlag, fstat};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Runs an ioctl that takes an int argument by value or pointer.
fn ioctl_int(fd: RawFd, req: libc::Ioctl, arg: libc::c_ulong) -> nix::Result<libc::c_int> {
    // SAFETY: the requests used here (TIOCSPTLCK with a pointer to a live
    // int, TIOCGPTPEER with flags, TIOCSCTTY with 0) read at most one int.
    let r = unsafe { libc::ioctl(fd, req, arg) };
    nix::errno::Errno::result(r)
}

/// Opens a new pty in the devpts instance mounted at `/dev/pts` inside
/// `root`. The slave is obtained from the master with TIOCGPTPEER, never by
/// path, so the container cannot substitute another file (CVE-2025-52565).
pub fn open_pty(root: BorrowedFd<'_>, size: Option<(u16, u16)>) -> Result<Pty> {
    let master = paths::open_in(
        root,
        Path::new("/dev/ptmx"),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        ResolveFlag::empty(),
    )
    .ctx(|| "open /dev/ptmx in the container")?;
    let st = fstat(master.as_fd()).ctx(|| "stat /dev/ptmx")?;
    let is_ptmx = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
        && nix::sys::stat::major(st.st_rdev) == 5
        && nix::sys::stat::minor(st.st_rdev) == 2;
    if !is_ptmx {
        return Err(Error::msg(
            "/dev/ptmx in the container is not a pty multiplexer (is /dev/pts mounted?)",
        ));
    }
    let unlock: libc::c_int = 0;
    ioctl_int(
        master.as_raw_fd(),
        libc::TIOCSPTLCK,
        &unlock as *const libc::c_int as libc::c_ulong,
    )
    .ctx(|| "unlock pty")?;
    let flags = (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as libc::c_ulong;
    let slave = ioctl_int(master.as_raw_fd(), libc::TIOCGPTPEER, flags).ctx(|| "open pty peer")?;
    // SAFETY: TIOCGPTPEER returned a new fd that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        set_size(master.as_fd(), rows, cols)?;
    }
    Ok(Pty { master, slave })
}

pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct that lives for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    nix::errno::Errno::result(r)
        .map(drop)
        .ctx(|| "set terminal size")
}

/// Copies the window size of terminal `from` to `to` (ignored if `from`
/// is not a terminal).
pub fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize struct into `ws`.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        let _ = set_size(to, ws.ws_row, ws.ws_col);
    }
}

/// Makes `slave` the controlling terminal of this (session leader)
/// process and its stdin, stdout and stderr.
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    ioctl_int(slave.as_raw_fd(), libc::TIOCSCTTY, 0).ctx(|| "set controlling terminal")?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard fds, which this process owns.
        let r = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        nix::errno::Errno::result(r).ctx(|| "dup pty onto stdio")?;
    }
    Ok(())
}

/// A connected socket pair: the init sends the pty master on one end,
/// capsa receives it on the other to relay the terminal itself.
pub fn relay_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair")
}

/// Connects to a console socket (a client's unix socket path).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    connect_socket(path, "--console-socket")
}

/// Connects to a client's unix socket given by `flag`.
pub fn connect_socket(path: &Path, flag: &str) -> Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "socket")?;
    let addr = UnixAddr::new(path).ctx(|| format!("{flag} {}", path.display()))?;
    connect(sock.as_raw_fd(), &addr).ctx(|| format!("{flag}: connect to {}", path.display()))?;
    Ok(sock)
}

/// Sends `fd` with SCM_RIGHTS, with the pty's name as the payload, the
/// way runc does.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<()> {
    send_named_fd(sock, fd, b"/dev/ptmx").ctx(|| "send pty master over the console socket")
}

/// Sends `fd` with SCM_RIGHTS and `name` as the payload.
pub fn send_named_fd(
    sock: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    name: &[u8],
) -> std::result::Result<(), nix::errno::Errno> {
    let iov = [IoSlice::new(name)];
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).map(drop)
}

/// Receives one fd sent with SCM_RIGHTS.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive pty master")?;
    for c in msg.cmsgs().ctx(|| "receive pty master")? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel installed this fd in our table for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(Error::msg("console: no file descriptor received"))
}

/// Puts a terminal into raw mode until dropped.
pub struct RawMode {
    fd: RawFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = nix::sys::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is one of our standard fds, open for our lifetime.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}
