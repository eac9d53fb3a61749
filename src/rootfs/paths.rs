//! Resolving paths inside the container's root without ever leaving it.
//!
//! Every path the config names inside the rootfs goes through here:
//! `openat2(RESOLVE_IN_ROOT)` treats the rootfs as `/` for `..` and for
//! absolute symlinks, so a symlink planted by the image cannot point a mount
//! or a write at the host. Callers then act on the returned fd (through its
//! `/proc/self/fd/N` name), so the path cannot be swapped between the check
//! and the use.

use crate::error::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// `path` made relative (leading `/` removed, `.` dropped) for openat2.
pub fn relative(path: &Path) -> PathBuf {
    let mut p = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => p.push(n),
            Component::ParentDir => p.push(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if p.as_os_str().is_empty() {
        p.push(".");
    }
    p
}

/// Opens `path` inside `root`. `extra` adds resolve flags such as
/// RESOLVE_NO_SYMLINKS.
pub fn open_in(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    extra: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | extra);
    loop {
        match openat2(root, &relative(path), how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// An O_PATH handle on `path` inside `root`.
pub fn open_path(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    open_in(root, path, OFlag::O_PATH, ResolveFlag::empty())
}

/// The name under which the kernel reaches an open fd.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Creates `path` and its missing parents as directories inside `root`
/// and returns an O_PATH handle on it.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, display: &Path) -> Result<OwnedFd> {
    let rel = relative(path);
    match open_in(
        root,
        &rel,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::empty(),
    ) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| format!("open {}", display.display())),
    }
    let mut prefix = PathBuf::new();
    let mut parent = open_in(
        root,
        Path::new("."),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::empty(),
    )
    .ctx(|| "open rootfs")?;
    for comp in rel.components() {
        prefix.push(comp);
        let fd = match open_in(
            root,
            &prefix,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            ResolveFlag::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(
                    parent.as_fd(),
                    comp.as_os_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e).ctx(|| format!("mkdir {}", display.display())),
                }
                open_in(
                    root,
                    &prefix,
                    OFlag::O_PATH | OFlag::O_DIRECTORY,
                    ResolveFlag::empty(),
                )
                .ctx(|| format!("open {}", display.display()))?
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", display.display())),
        };
        parent = fd;
    }
    Ok(parent)
}

/// Makes sure a file exists at `path` inside `root` (creating an empty one
/// and its parents if needed) and returns an O_PATH handle on it.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path, display: &Path) -> Result<OwnedFd> {
    match open_path(root, path) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| format!("open {}", display.display())),
    }
    let rel = relative(path);
    let parent = rel.parent().unwrap_or(Path::new("."));
    let name = rel.file_name().ok_or_else(|| {
        crate::error::Error::msg(format!("{}: not a file path", display.display()))
    })?;
    let dir = mkdir_all(root, parent, display)?;
    // An O_PATH directory fd is a valid dirfd for openat.
    match nix::fcntl::openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).ctx(|| format!("create {}", display.display())),
    }
    open_path(root, path).ctx(|| format!("open {}", display.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = std::env::temp_dir().join(format!("capsa-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/inside")).unwrap();
        symlink("/", dir.join("root/escape")).unwrap();
        symlink("../../..", dir.join("root/inside/up")).unwrap();
        let root = nix::fcntl::open(
            &dir.join("root"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        // "/escape/made" lands at root/made, never at /made on the host.
        mkdir_all(root.as_fd(), Path::new("/escape/made"), Path::new("x")).unwrap();
        assert!(dir.join("root/made").is_dir());
        mkdir_all(root.as_fd(), Path::new("/inside/up/made2"), Path::new("x")).unwrap();
        assert!(dir.join("root/made2").is_dir());
        ensure_file(root.as_fd(), Path::new("/escape/f"), Path::new("x")).unwrap();
        assert!(dir.join("root/f").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
