//! `linux.netDevices`: host network interfaces moved into the container's
//! network namespace at create (optionally renamed), with their addresses
//! and their up state, and moved back to the host's namespace under their
//! own name on delete (or when the create fails).
//!
//! The kernel drops an interface's addresses when it changes namespace, so
//! they are read before the move and added again after it. Everything goes
//! through rtnetlink sockets opened in the namespace concerned (the calling
//! thread enters it for the socket() call and returns at once).

use crate::error::{Context, Error, Result};
use crate::spec::field_err;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_LABEL: u16 = 3;
const IFA_CACHEINFO: u16 = 6;
const RT_SCOPE_LINK: u8 = 253;

/// The devices of a config: (host name, name in the container).
pub fn wanted(spec: &Spec) -> Vec<(String, String)> {
    let Some(devs) = spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()) else {
        return Vec::new();
    };
    let mut v: Vec<(String, String)> = devs
        .iter()
        .map(|(host, d)| {
            let name = d.name().clone().filter(|n| !n.is_empty());
            (host.clone(), name.unwrap_or_else(|| host.clone()))
        })
        .collect();
    v.sort();
    v
}

fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < libc::IFNAMSIZ
        && n != "."
        && n != ".."
        && !n
            .bytes()
            .any(|b| b == b'/' || b == b':' || b <= b' ' || b == 0x7f)
}

/// Config checks: valid interface names, distinct names in the container,
/// and a network namespace of the container's own to move them into.
pub fn validate(spec: &Spec) -> Result<()> {
    let devs = wanted(spec);
    if devs.is_empty() {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::new();
    for (host, name) in &devs {
        let field = format!("linux.netDevices[{host:?}]");
        if !valid_ifname(host) {
            return Err(field_err(&field, "not a valid interface name"));
        }
        if !valid_ifname(name) {
            return Err(field_err(
                format!("{field}.name"),
                format!("{name:?} is not a valid interface name"),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(field_err(
                format!("{field}.name"),
                format!("{name:?} is given to two devices"),
            ));
        }
    }
    let netns = crate::namespaces::configured(spec).any(|n| n.typ() == LinuxNamespaceType::Network);
    if !netns {
        return Err(field_err(
            "linux.netDevices",
            "moving network devices needs a network namespace (linux.namespaces has none)",
        ));
    }
    Ok(())
}

/// The container's network namespace: the configured path, else the
/// init's.
fn container_netns(spec: &Spec, pid: i32) -> Result<OwnedFd> {
    let path = crate::namespaces::configured(spec)
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .and_then(|n| n.path().clone())
        .unwrap_or_else(|| format!("/proc/{pid}/ns/net").into());
    let fd = nix::fcntl::open(
        &path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("linux.netDevices: open {}", path.display()))?;
    if crate::sys::ns_type(fd.as_fd()) != Ok(libc::CLONE_NEWNET) {
        return Err(Error::msg(format!(
            "linux.netDevices: {} is not a network namespace",
            path.display()
        )));
    }
    Ok(fd)
}

fn own_netns() -> Result<OwnedFd> {
    nix::fcntl::open(
        "/proc/thread-self/ns/net",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "open /proc/thread-self/ns/net")
}

fn same_ns(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (nix::sys::stat::fstat(a), nix::sys::stat::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

/// Moves the config's devices from the host into the container (the init
/// `pid` exists, its namespaces made). Returns a handle on the container's
/// network namespace, which keeps it alive for [`detach_from`] should the
/// init die before the create ends. On failure, what was moved is back.
pub fn attach(spec: &Spec, pid: i32) -> Result<Option<OwnedFd>> {
    let devs = wanted(spec);
    if devs.is_empty() {
        return Ok(None);
    }
    let host = own_netns()?;
    let cont = container_netns(spec, pid)?;
    if same_ns(host.as_fd(), cont.as_fd()) {
        return Err(Error::msg(
            "linux.netDevices: the container's network namespace is the host's",
        ));
    }
    for (i, (h, c)) in devs.iter().enumerate() {
        if let Err(e) = move_device(host.as_fd(), cont.as_fd(), h, c) {
            for (h, c) in &devs[..i] {
                let _ = move_device(cont.as_fd(), host.as_fd(), c, h);
            }
            return Err(e.prefixed(format!("linux.netDevices[{h:?}]")));
        }
    }
    Ok(Some(cont))
}

/// Moves the config's devices back from the container (while its init
/// still holds the namespace) to the host, under their host names.
pub fn detach(spec: &Spec, pid: i32) -> Result<()> {
    if wanted(spec).is_empty() {
        return Ok(());
    }
    detach_from(spec, container_netns(spec, pid)?.as_fd())
}

/// Moves the config's devices from the network namespace `cont` back to
/// the host. A device no longer there is skipped; the first error is
/// returned after trying every device.
pub fn detach_from(spec: &Spec, cont: BorrowedFd<'_>) -> Result<()> {
    let host = own_netns()?;
    if same_ns(host.as_fd(), cont) {
        return Ok(());
    }
    let mut first = None;
    for (h, c) in &wanted(spec) {
        if let Err(e) = move_device(cont, host.as_fd(), c, h) {
            if matches!(
                e,
                Error::Sys {
                    errno: Errno::ENODEV,
                    ..
                }
            ) {
                continue;
            }
            first.get_or_insert(e.prefixed(format!("linux.netDevices[{h:?}]: move back")));
        }
    }
    first.map_or(Ok(()), Err)
}

/// One device from the namespace `from` (named `name` there) to `to`
/// (named `new_name`), with its addresses and up state.
fn move_device(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &str, new_name: &str) -> Result<()> {
    let src = Rtnl::open_in(from)?;
    let index = src.index_of(name)?;
    let up = src
        .link_flags(index)
        .ctx(|| format!("get the flags of {name}"))?
        & libc::IFF_UP as u32
        != 0;
    let addrs = src
        .addresses(index)
        .ctx(|| format!("list the addresses of {name}"))?;
    let mut req = ifinfomsg(index, 0, 0);
    put_attr(
        &mut req,
        IFLA_NET_NS_FD,
        &(to.as_raw_fd() as u32).to_ne_bytes(),
    );
    if new_name != name {
        let mut n = new_name.as_bytes().to_vec();
        n.push(0);
        put_attr(&mut req, IFLA_IFNAME, &n);
    }
    src.request(RTM_NEWLINK, 0, &req)
        .ctx(|| format!("move {name} to the other network namespace as {new_name}"))?;
    let dst = Rtnl::open_in(to)?;
    let index = dst.index_of(new_name)?;
    for a in &addrs {
        match dst.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &a.with_index(index)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("add an address to {new_name}")),
        }
    }
    if up {
        let req = ifinfomsg(index, libc::IFF_UP as u32, libc::IFF_UP as u32);
        dst.request(RTM_NEWLINK, 0, &req)
            .ctx(|| format!("set {new_name} up"))?;
    }
    Ok(())
}

/// An address as the kernel listed it: its ifaddrmsg and attributes.
struct Addr(Vec<u8>);

impl Addr {
    fn with_index(&self, index: i32) -> Vec<u8> {
        let mut v = self.0.clone();
        v[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        v
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    v[0] = libc::AF_UNSPEC as u8;
    v[4..8].copy_from_slice(&index.to_ne_bytes());
    v[8..12].copy_from_slice(&flags.to_ne_bytes());
    v[12..16].copy_from_slice(&change.to_ne_bytes());
    v
}

fn put_attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// (type, payload) of each rtattr in `buf`.
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut v = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let typ = u16::from_ne_bytes([buf[2], buf[3]]);
        if len < 4 || len > buf.len() {
            break;
        }
        v.push((typ, &buf[4..len]));
        let next = (len + 3) & !3;
        buf = &buf[next.min(buf.len())..];
    }
    v
}

/// A NETLINK_ROUTE socket, bound to the namespace it was opened in.
struct Rtnl(OwnedFd);

impl Rtnl {
    /// Opens the socket in the network namespace `ns`: this thread enters
    /// it for the socket() call only.
    fn open_in(ns: BorrowedFd<'_>) -> Result<Rtnl> {
        let back = own_netns()?;
        nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).ctx(|| "enter the network namespace")?;
        // SAFETY: plain socket(2); the fd it returns is owned below.
        let r = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        let sock = Errno::result(r);
        if let Err(e) = nix::sched::setns(back.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Staying in the container's namespace would act on it
            // afterwards as if it were the host's.
            crate::logging::warn(&format!("cannot return to capsa's network namespace: {e}"));
            std::process::abort();
        }
        let fd = sock.ctx(|| "open a netlink socket")?;
        // SAFETY: `fd` was just returned by socket() and nothing else owns it.
        Ok(Rtnl(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn send(&self, typ: u16, flags: u16, payload: &[u8]) -> nix::Result<()> {
        let mut msg = Vec::with_capacity(NLMSG_HDR + payload.len());
        msg.extend_from_slice(&((NLMSG_HDR + payload.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&typ.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(payload);
        // SAFETY: a buffer of the length passed, alive for the call; an
        // unconnected netlink socket sends to the kernel.
        let r = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        Errno::result(r).map(drop)
    }

    /// Reads replies until `each` says it is done; an NLMSG_ERROR ends the
    /// exchange with its errno (0: an acknowledgement).
    fn recv(&self, mut each: impl FnMut(u16, &[u8]) -> bool) -> nix::Result<()> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: the kernel writes at most buf.len() bytes into buf.
            let r =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let n = Errno::result(r)? as usize;
            let mut b = &buf[..n];
            while b.len() >= NLMSG_HDR {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let typ = u16::from_ne_bytes([b[4], b[5]]);
                if len < NLMSG_HDR || len > b.len() {
                    return Err(Errno::EBADMSG);
                }
                let body = &b[NLMSG_HDR..len];
                match typ {
                    NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                            .ok_or(Errno::EBADMSG)?;
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(Errno::from_raw(-code))
                        };
                    }
                    NLMSG_DONE => return Ok(()),
                    _ => {
                        if each(typ, body) {
                            return Ok(());
                        }
                    }
                }
                b = &b[((len + 3) & !3).min(b.len())..];
            }
        }
    }

    fn request(&self, typ: u16, flags: u16, payload: &[u8]) -> nix::Result<()> {
        self.send(typ, flags | NLM_F_ACK, payload)?;
        self.recv(|_, _| false)
    }

    fn index_of(&self, name: &str) -> Result<i32> {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        let mut req = ifinfomsg(0, 0, 0);
        put_attr(&mut req, IFLA_IFNAME, &n);
        self.send(RTM_GETLINK, 0, &req)
            .ctx(|| format!("look up interface {name}"))?;
        let mut index = None;
        match self.recv(|typ, body| {
            if typ == RTM_NEWLINK && body.len() >= 16 {
                index = Some(i32::from_ne_bytes([body[4], body[5], body[6], body[7]]));
            }
            true
        }) {
            Ok(()) => {}
            Err(Errno::ENODEV) => {
                return Err(Error::Sys {
                    context: format!("no interface {name} in its network namespace"),
                    errno: Errno::ENODEV,
                });
            }
            Err(e) => return Err(e).ctx(|| format!("look up interface {name}")),
        }
        index.ok_or_else(|| Error::msg(format!("look up interface {name}: no answer")))
    }

    fn link_flags(&self, index: i32) -> nix::Result<u32> {
        self.send(RTM_GETLINK, 0, &ifinfomsg(index, 0, 0))?;
        let mut flags = None;
        self.recv(|typ, body| {
            if typ == RTM_NEWLINK && body.len() >= 16 {
                flags = Some(u32::from_ne_bytes([body[8], body[9], body[10], body[11]]));
            }
            true
        })?;
        flags.ok_or(Errno::EBADMSG)
    }

    /// The addresses of the interface `index` worth moving: not the IPv6
    /// link-local ones the kernel makes itself. Labels (named after the
    /// interface) and cache info are left out.
    fn addresses(&self, index: i32) -> nix::Result<Vec<Addr>> {
        let mut req = vec![0u8; 8];
        req[0] = libc::AF_UNSPEC as u8;
        self.send(RTM_GETADDR, NLM_F_DUMP, &req)?;
        let mut v = Vec::new();
        self.recv(|typ, body| {
            if typ != RTM_NEWADDR || body.len() < 8 {
                return false;
            }
            let idx = u32::from_ne_bytes([body[4], body[5], body[6], body[7]]) as i32;
            let family = body[0] as i32;
            let scope = body[3];
            if idx != index || (family == libc::AF_INET6 && scope == RT_SCOPE_LINK) {
                return false;
            }
            let mut a = body[..8].to_vec();
            for (t, data) in attrs(&body[8..]) {
                if t != IFA_LABEL && t != IFA_CACHEINFO {
                    put_attr(&mut a, t, data);
                }
            }
            v.push(Addr(a));
            false
        })?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut b = Vec::new();
        put_attr(&mut b, 3, b"eth0\0");
        put_attr(&mut b, 28, &7u32.to_ne_bytes());
        let a = attrs(&b);
        assert_eq!(a, vec![(3, &b"eth0\0"[..]), (28, &7u32.to_ne_bytes()[..])]);
        assert!(valid_ifname("eth0") && !valid_ifname("a/b") && !valid_ifname(""));
        assert!(!valid_ifname("sixteen-chars-xx"));
    }
}
