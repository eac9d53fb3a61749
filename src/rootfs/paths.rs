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
    // EAGAIN: a rename raced the lookup (RESOLVE_IN_ROOT retries `..`
    // itself only so often). A running container (under `exec`) could
    // rename without end: the retries are bounded.
    let rel = relative(path);
    for _ in 0..1000 {
        match openat2(root, &rel, how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
    Err(Errno::EAGAIN)
}

/// An O_PATH handle on `path` inside `root`.
pub fn open_path(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    open_in(root, path, OFlag::O_PATH, ResolveFlag::empty())
}

/// The name under which the kernel reaches an open fd.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The most symlinks followed by hand while creating a path (the
/// kernel's own limit for one lookup).
const MAX_HOPS: u32 = 40;

/// Creates `path` and its missing parents as directories inside `root`
/// and returns an O_PATH handle on it. A symlink on the way that dangles
/// (an image's `/var/run -> /run` without `/run`) is followed inside the
/// root and its missing target created there, as runc does.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, display: &Path) -> Result<OwnedFd> {
    mkdir_all_in(root, &relative(path), display, &mut 0)
}

/// Where a dangling symlink named `name` in the directory `dir` (whose
/// path inside the root is `dir_path`) points, as a path inside the root;
/// `None` if `name` is not a symlink.
fn dangling_target(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &std::ffi::OsStr,
    display: &Path,
    hops: &mut u32,
) -> Result<Option<PathBuf>> {
    let target = match nix::fcntl::readlinkat(dir, name) {
        Ok(t) => PathBuf::from(t),
        Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("readlink {}", display.display())),
    };
    *hops += 1;
    if *hops > MAX_HOPS {
        return Err(Errno::ELOOP).ctx(|| format!("open {}", display.display()));
    }
    // RESOLVE_IN_ROOT treats an absolute target as relative to the root,
    // and keeps `..` from climbing out of it.
    Ok(Some(if target.is_absolute() {
        relative(&target)
    } else {
        relative(&dir_path.join(target))
    }))
}

fn mkdir_all_in(
    root: BorrowedFd<'_>,
    rel: &Path,
    display: &Path,
    hops: &mut u32,
) -> Result<OwnedFd> {
    match open_in(
        root,
        rel,
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
    let comps: Vec<_> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let parent_path = prefix.clone();
        prefix.push(comp);
        let fd = match open_in(
            root,
            &prefix,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            ResolveFlag::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                if let Some(target) = dangling_target(
                    parent.as_fd(),
                    &parent_path,
                    comp.as_os_str(),
                    display,
                    hops,
                )? {
                    let mut rest = target;
                    rest.extend(&comps[i + 1..]);
                    return mkdir_all_in(root, &rest, display, hops);
                }
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
/// and its parents if needed) and returns an O_PATH handle on it. A
/// dangling symlink at `path` or on the way is followed inside the root,
/// and the file created where it points.
pub fn ensure_file(root: BorrowedFd<'_>, path: &Path, display: &Path) -> Result<OwnedFd> {
    ensure_file_in(root, &relative(path), display, &mut 0)
}

fn ensure_file_in(
    root: BorrowedFd<'_>,
    rel: &Path,
    display: &Path,
    hops: &mut u32,
) -> Result<OwnedFd> {
    match open_path(root, rel) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| format!("open {}", display.display())),
    }
    let parent = rel.parent().unwrap_or(Path::new("."));
    let name = rel.file_name().ok_or_else(|| {
        crate::error::Error::msg(format!("{}: not a file path", display.display()))
    })?;
    let dir = mkdir_all_in(root, parent, display, hops)?;
    // An O_PATH directory fd is a valid dirfd for openat.
    match nix::fcntl::openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) => {}
        Err(Errno::EEXIST) => {
            if let Some(target) = dangling_target(dir.as_fd(), parent, name, display, hops)? {
                return ensure_file_in(root, &target, display, hops);
            }
        }
        Err(e) => return Err(e).ctx(|| format!("create {}", display.display())),
    }
    open_path(root, rel).ctx(|| format!("open {}", display.display()))
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
        // Dangling symlinks are followed inside the root, their targets
        // made there: on the way, at the end, relative and climbing out.
        std::fs::create_dir(dir.join("root/var")).unwrap();
        symlink("/run", dir.join("root/var/run")).unwrap();
        mkdir_all(root.as_fd(), Path::new("/var/run/t1"), Path::new("x")).unwrap();
        assert!(dir.join("root/run/t1").is_dir());
        symlink(
            "../../../../../capsa-dangling-out",
            dir.join("root/inside/out"),
        )
        .unwrap();
        mkdir_all(root.as_fd(), Path::new("/inside/out/d"), Path::new("x")).unwrap();
        assert!(dir.join("root/capsa-dangling-out/d").is_dir());
        assert!(!Path::new("/capsa-dangling-out").exists());
        symlink("/var/run/sub/f", dir.join("root/linkf")).unwrap();
        ensure_file(root.as_fd(), Path::new("/linkf"), Path::new("x")).unwrap();
        assert!(dir.join("root/run/sub/f").is_file());
        // A loop is an error, not a hang.
        symlink("loop2/x", dir.join("root/loop1")).unwrap();
        symlink("loop1/y", dir.join("root/loop2")).unwrap();
        assert!(mkdir_all(root.as_fd(), Path::new("/loop1/z"), Path::new("x")).is_err());
        assert!(ensure_file(root.as_fd(), Path::new("/loop1"), Path::new("x")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
