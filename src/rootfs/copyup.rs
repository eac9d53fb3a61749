//! `tmpcopyup`: the contents of a directory of the image copied into the
//! tmpfs mounted over it, so that a `--tmpfs /run` or podman's `--read-only`
//! `/tmp` still holds what the image put there.
//!
//! Everything is done relative to directory fds, every name opened with
//! O_NOFOLLOW: a symlink in the image is copied as a symlink and never
//! followed, so nothing outside the two trees is read or written.

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags, fstatat, mknodat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Copies everything in the directory `src` into the (empty) directory
/// `dst`, keeping owners, modes, times, symlinks, device nodes and the
/// extended attributes the target filesystem accepts.
pub fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<()> {
    copy_dir(src, dst, &mut Vec::new())
}

fn copy_dir(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, path: &mut Vec<u8>) -> Result<()> {
    let mut dir = nix::dir::Dir::openat(
        src,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("tmpcopyup: read directory {}", shown(path)))?;
    let mut names: Vec<CString> = Vec::new();
    for e in dir.iter() {
        let e = e.ctx(|| format!("tmpcopyup: read directory {}", shown(path)))?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            names.push(n.to_owned());
        }
    }
    drop(dir);
    for name in names {
        let len = path.len();
        path.push(b'/');
        path.extend_from_slice(name.as_bytes());
        copy_entry(src, dst, &name, path)?;
        path.truncate(len);
    }
    Ok(())
}

fn copy_entry(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    name: &CStr,
    path: &mut Vec<u8>,
) -> Result<()> {
    let at = || format!("tmpcopyup: {}", shown(path));
    let st = fstatat(src, name, AtFlags::AT_SYMLINK_NOFOLLOW).ctx(|| format!("{}: stat", at()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let ro = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match kind {
        SFlag::S_IFDIR => {
            nix::sys::stat::mkdirat(dst, name, Mode::from_bits_truncate(0o700))
                .ctx(|| format!("{}: mkdir", at()))?;
            let s = openat(src, name, ro | OFlag::O_DIRECTORY, Mode::empty())
                .ctx(|| format!("{}: open", at()))?;
            let d = openat(dst, name, ro | OFlag::O_DIRECTORY, Mode::empty())
                .ctx(|| format!("{}: open the copy", at()))?;
            copy_dir(s.as_fd(), d.as_fd(), path)?;
            let at = || format!("tmpcopyup: {}", shown(path));
            copy_xattrs(s.as_fd(), d.as_fd());
            finish(d.as_fd(), &st, perm).ctx(|| format!("{}: set owner and mode", at()))?;
        }
        SFlag::S_IFREG => {
            let s = openat(src, name, ro, Mode::empty()).ctx(|| format!("{}: open", at()))?;
            let d = openat(
                dst,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .ctx(|| format!("{}: create", at()))?;
            let mut from = std::fs::File::from(s);
            let mut to = std::fs::File::from(d);
            std::io::copy(&mut from, &mut to).ctx(|| format!("{}: copy", at()))?;
            copy_xattrs(from.as_fd(), to.as_fd());
            finish(to.as_fd(), &st, perm).ctx(|| format!("{}: set owner and mode", at()))?;
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(src, name).ctx(|| format!("{}: readlink", at()))?;
            nix::unistd::symlinkat(target.as_os_str(), dst, name)
                .ctx(|| format!("{}: symlink", at()))?;
            lchown(dst, name, &st).ctx(|| format!("{}: set owner", at()))?;
            let (a, m) = times(&st);
            nix::sys::stat::utimensat(dst, name, &a, &m, UtimensatFlags::NoFollowSymlink)
                .ctx(|| format!("{}: set times", at()))?;
        }
        SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO | SFlag::S_IFSOCK => {
            mknodat(dst, name, kind, Mode::from_bits_truncate(0o600), st.st_rdev)
                .ctx(|| format!("{}: mknod", at()))?;
            lchown(dst, name, &st).ctx(|| format!("{}: set owner", at()))?;
            // Not a symlink: it was just made in the new tmpfs.
            nix::sys::stat::fchmodat(dst, name, perm, FchmodatFlags::FollowSymlink)
                .ctx(|| format!("{}: chmod", at()))?;
            let (a, m) = times(&st);
            nix::sys::stat::utimensat(dst, name, &a, &m, UtimensatFlags::NoFollowSymlink)
                .ctx(|| format!("{}: set times", at()))?;
        }
        _ => return Err(Error::msg(format!("{}: unknown file type", at()))),
    }
    Ok(())
}

/// Owner (where this user namespace maps it), then mode (chown clears the
/// set-id bits), then times of a copied file or directory.
fn finish(fd: BorrowedFd<'_>, st: &libc::stat, perm: Mode) -> nix::Result<()> {
    match nix::unistd::fchown(
        fd,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    ) {
        // An owner this user namespace does not map (shown as the
        // overflow id) cannot be given to the copy.
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(e),
    }
    nix::sys::stat::fchmod(fd, perm)?;
    let (a, m) = times(st);
    nix::sys::stat::futimens(fd, &a, &m)
}

fn lchown(dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> nix::Result<()> {
    match nix::unistd::fchownat(
        dir,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(()) | Err(Errno::EINVAL) => Ok(()),
        Err(e) => Err(e),
    }
}

fn times(st: &libc::stat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

/// Copies the extended attributes of `src` to `dst`, skipping those the
/// target filesystem or the caller's privileges do not allow.
fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) {
    let Some(list) = xattr_buf(|buf, len| {
        // SAFETY: the kernel writes at most `len` bytes into `buf`.
        unsafe { libc::flistxattr(src.as_raw_fd(), buf, len) }
    }) else {
        return;
    };
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let Some(value) = xattr_buf(|buf, len| {
            // SAFETY: a NUL-terminated name, and a buffer of `len` bytes
            // the kernel writes into.
            unsafe { libc::fgetxattr(src.as_raw_fd(), cname.as_ptr(), buf.cast(), len) }
        }) else {
            continue;
        };
        // SAFETY: a NUL-terminated name and a value buffer of the length
        // passed, both alive for the call.
        unsafe {
            libc::fsetxattr(
                dst.as_raw_fd(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
    }
}

/// Calls a listxattr/getxattr-style function with a growing buffer.
fn xattr_buf(f: impl Fn(*mut libc::c_char, usize) -> isize) -> Option<Vec<u8>> {
    let mut size = 256usize;
    loop {
        let mut buf = vec![0u8; size];
        let r = f(buf.as_mut_ptr().cast(), buf.len());
        if r >= 0 {
            buf.truncate(r as usize);
            return Some(buf);
        }
        if Errno::last() != Errno::ERANGE || size > 1 << 20 {
            return None;
        }
        size *= 4;
    }
}

fn shown(path: &[u8]) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        OsStr::from_bytes(path).to_string_lossy().into_owned()
    }
}

/// An fd for reading the directory `dir` (an O_PATH handle) refers to.
pub fn open_dir(dir: &OwnedFd) -> nix::Result<OwnedFd> {
    openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}
