//! Device nodes in the container's /dev: the default set every container
//! gets (null, zero, full, random, urandom, tty and the /dev/fd, /dev/std*,
//! /dev/ptmx links) and the ones `linux.devices` asks for.

use super::paths;
use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, symlinkat, unlinkat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

const DEFAULT: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Creates the default devices and links under `/dev` of `root`.
pub fn create_default(root: BorrowedFd<'_>) -> Result<()> {
    let dev = paths::mkdir_all(root, Path::new("/dev"), Path::new("/dev"))?;
    for (name, major, minor) in DEFAULT {
        match make_node(
            dev.as_fd(),
            name,
            SFlag::S_IFCHR,
            0o666,
            makedev(major, minor),
        ) {
            // In a user namespace mknod is refused: bind the host's node.
            Err(Errno::EPERM) => {
                bind_host_device(dev.as_fd(), name, Path::new("/dev").join(name).as_path())
            }
            r => r.ctx(|| format!("create device /dev/{name}")),
        }?;
    }
    for (name, target) in LINKS {
        match symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("create symlink /dev/{name}")),
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = symlinkat("/proc/kcore", dev.as_fd(), "core");
    }
    Ok(())
}

fn make_node(
    dir: BorrowedFd<'_>,
    name: &str,
    kind: SFlag,
    perm: u32,
    rdev: u64,
) -> nix::Result<()> {
    match mknodat(dir, name, kind, Mode::from_bits_truncate(perm), rdev) {
        Err(Errno::EEXIST) => {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?;
            mknodat(dir, name, kind, Mode::from_bits_truncate(perm), rdev)
        }
        r => r,
    }
}

/// Creates one `linux.devices` entry.
pub fn create(root: BorrowedFd<'_>, d: &LinuxDevice, field: &str) -> Result<()> {
    let path = d.path();
    let err = |m: String| Error::msg(format!("config.json: {field}: {m}"));
    if !path.is_absolute() {
        return Err(err(format!("path {} is not absolute", path.display())));
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(err("type \"a\" is only valid in cgroup device rules".into()));
        }
    };
    let rel = paths::relative(path);
    let parent = rel.parent().unwrap_or(Path::new("."));
    let name = rel
        .file_name()
        .ok_or_else(|| err(format!("path {} names no file", path.display())))?;
    let dir = paths::mkdir_all(root, parent, path)?;
    let perm = d.file_mode().unwrap_or(0o666) & 0o7777;
    let rdev = makedev(d.major() as u64, d.minor() as u64);
    let made = match make_node_named(dir.as_fd(), name, kind, perm, rdev) {
        Err(Errno::EPERM) => {
            let name = name
                .to_str()
                .ok_or_else(|| err("path is not UTF-8".into()))?;
            return bind_host_device(dir.as_fd(), name, path)
                .map_err(|e| e.prefixed(format!("config.json: {field}")));
        }
        r => r,
    };
    made.map_err(|e| {
        Err::<(), _>(e)
            .ctx(|| format!("config.json: {field}: mknod {}", path.display()))
            .unwrap_err()
    })?;
    let uid = d.uid().map(Uid::from_raw);
    let gid = d.gid().map(Gid::from_raw);
    if uid.is_some() || gid.is_some() {
        fchownat(
            dir.as_fd(),
            name,
            uid,
            gid,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("config.json: {field}: chown {}", path.display()))?;
    }
    Ok(())
}

/// Where mknod is not allowed (a user namespace), bind-mounts the host's
/// device node onto an empty file instead, as runc does.
fn bind_host_device(dir: BorrowedFd<'_>, name: &str, host: &Path) -> Result<()> {
    let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
    nix::fcntl::openat(
        dir,
        name,
        nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_EXCL
            | nix::fcntl::OFlag::O_WRONLY
            | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .ctx(|| format!("create {name} to bind {}", host.display()))?;
    let target = nix::fcntl::openat(
        dir,
        name,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {name}"))?;
    nix::mount::mount(
        Some(host),
        paths::fd_path(&target).as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind host device {}", host.display()))
}

fn make_node_named(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    kind: SFlag,
    perm: u32,
    rdev: u64,
) -> nix::Result<()> {
    let name = name.to_str().ok_or(Errno::EINVAL)?;
    make_node(dir, name, kind, perm, rdev)
}
