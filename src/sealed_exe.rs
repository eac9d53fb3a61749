//! Self-protection against CVE-2019-5736.
//!
//! A container's init and `exec` processes are clones of capsa, so until
//! they exec the user's program their `/proc/PID/exe` is capsa's binary.
//! Worse, with a `#!/proc/self/exe` entrypoint the kernel resolves the
//! interpreter while the process is still capsa and runs capsa again
//! *inside* the container, dumpable and with the image's libraries; any
//! process of the container can then keep `/proc/PID/exe` open and, once
//! that process is gone, reopen it for writing through `/proc/self/fd/N`.
//! Non-dumpable setup processes (`init::protect_binary`) are not enough.
//!
//! So before it starts a container process (`create`, `run`, `exec`; no
//! other command pays anything) capsa re-executes itself from a file that
//! cannot be written whatever path reaches it, as runc 1.2 does:
//!
//! 1. a private overlayfs made with `fsopen`/`fsmount` and never attached
//!    anywhere: its only lower layers are the binary's directory and a
//!    directory beside it (overlayfs needs two to run without an upper
//!    layer), so its superblock is read-only and nothing can remount it
//!    writable; no copy, the page cache is shared;
//! 2. failing that (no overlayfs, no new mount API, a deleted binary), a
//!    sealed memfd copy (`F_SEAL_WRITE|GROW|SHRINK|SEAL`).
//!
//! The re-executed capsa recognises its binary (`is_sealed`) and goes on.

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

// <linux/mount.h>
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
/// <linux/magic.h>
const OVERLAYFS_SUPER_MAGIC: libc::c_long = 0x794c_7630;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Makes sure this process runs from a sealed copy of its binary:
/// re-executes it (same arguments, environment and fds) when it does not.
/// Returns when it already does; an error when no sealed copy could be made.
pub fn ensure() -> Result<()> {
    let exe = nix::fcntl::open(
        "/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /proc/self/exe (is /proc mounted?)")?;
    if is_sealed(exe.as_fd()) {
        name_process();
        return Ok(());
    }
    // CAPSA_SEAL=memfd skips the overlayfs (both are safe; the tests
    // exercise each).
    let overlay = match std::env::var_os("CAPSA_SEAL") {
        Some(m) if m == "memfd" => Err(Error::msg("CAPSA_SEAL=memfd")),
        _ => overlay(exe.as_fd()),
    };
    let sealed = match overlay {
        Ok(fd) => fd,
        Err(_) => memfd_copy(exe.as_fd())?,
    };
    if !is_sealed(sealed.as_fd()) {
        // Never loop: the re-executed capsa would not recognise it either.
        return Err(Error::msg(
            "protect the capsa binary: the copy is not sealed",
        ));
    }
    let args: Vec<CString> = std::env::args_os().map(cstring).collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            cstring(OsStr::from_bytes(&kv).to_os_string())
        })
        .collect();
    let err = nix::unistd::fexecve(sealed.as_fd(), &args, &env).unwrap_err();
    Err(err).ctx(|| "re-execute capsa from its sealed copy")
}

fn cstring(s: std::ffi::OsString) -> CString {
    // Arguments and environment strings come from the kernel: no NUL.
    CString::new(s.into_encoded_bytes()).unwrap_or_default()
}

/// Whether the file cannot be written through any path: a fully sealed
/// memfd, or a file of a read-only overlayfs (the one `overlay` makes).
pub fn is_sealed(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GET_SEALS takes no argument and only reads the fd's seals.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 {
        return seals & SEALS == SEALS;
    }
    match nix::sys::statfs::fstatfs(fd) {
        Ok(fs) => {
            fs.filesystem_type().0 as libc::c_long == OVERLAYFS_SUPER_MAGIC
                && nix::sys::statvfs::fstatvfs(fd)
                    .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        }
        Err(_) => false,
    }
}

/// After a re-exec through an fd, the process's name is the fd number:
/// give it back the binary's name.
fn name_process() {
    let name = std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.as_bytes()[..n.len().min(15)].to_vec())
        })
        .unwrap_or_else(|| b"capsa".to_vec());
    if let Ok(name) = CString::new(name) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

/// The binary opened (O_PATH) through a private, read-only overlayfs whose
/// top layer is its directory. The mount itself is never attached: it is
/// gone once the last process executing the binary exits.
fn overlay(exe: BorrowedFd<'_>) -> Result<OwnedFd> {
    let path = std::fs::read_link("/proc/self/exe").ctx(|| "readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::msg("no binary path"));
    };
    if !path.is_absolute() || path.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(Error::msg("the binary has no path"));
    }
    // The second layer only has to exist and not overlap the first: it is
    // below the binary's directory, so it hides nothing of it.
    let other = ["/dev", "/run", "/etc", "/usr"]
        .into_iter()
        .map(Path::new)
        .find(|d| !dir.starts_with(d) && !d.starts_with(dir) && d.is_dir())
        .ok_or_else(|| Error::msg("no second overlayfs layer"))?;
    let lower = [
        escape_layer(dir.as_os_str()),
        escape_layer(other.as_os_str()),
    ]
    .join(&b':');

    // SAFETY: fsopen reads the NUL-terminated name and returns a new fd.
    let ctx =
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })
            .ctx(|| "fsopen overlay")?;
    let lower = CString::new(lower).map_err(|_| Error::msg("NUL in the binary's path"))?;
    fsconfig_string(ctx.as_fd(), c"lowerdir", &lower).ctx(|| "overlayfs lowerdir")?;
    // Layers on different filesystems would make overlayfs log about xino.
    let _ = fsconfig_string(ctx.as_fd(), c"xino", c"off");
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(r).ctx(|| "create overlayfs")?;
    // SAFETY: fsmount turns the configured context into a detached mount
    // and returns its new fd; nothing is attached to any mount namespace.
    let mnt = fd_result(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
        )
    })
    .ctx(|| "fsmount overlayfs")?;
    let fd = nix::fcntl::openat(
        mnt.as_fd(),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open the binary in the overlayfs")?;
    // The binary the overlay shows must be the one running (not one put in
    // its place meanwhile).
    let (a, b) = (
        nix::sys::stat::fstat(exe).ctx(|| "stat")?,
        nix::sys::stat::fstat(fd.as_fd()).ctx(|| "stat")?,
    );
    if (a.st_size, a.st_mtime, a.st_mtime_nsec) != (b.st_size, b.st_mtime, b.st_mtime_nsec) {
        return Err(Error::msg("the binary changed"));
    }
    Ok(fd)
}

/// An overlayfs layer path: `:` separates layers, `\` escapes.
fn escape_layer(p: &OsStr) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_bytes() {
        if b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn fsconfig_string(ctx: BorrowedFd<'_>, key: &CStr, value: &CStr) -> nix::Result<()> {
    // SAFETY: key and value are NUL-terminated strings alive for the call;
    // the kernel copies them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

fn fd_result(r: libc::c_long) -> nix::Result<OwnedFd> {
    let fd = Errno::result(r)?;
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// A copy of the binary in a memfd, sealed against any change.
fn memfd_copy(exe: BorrowedFd<'_>) -> Result<OwnedFd> {
    let create = |flags: libc::c_uint| {
        // SAFETY: memfd_create reads the NUL-terminated name, returns a new fd.
        fd_result(unsafe { libc::syscall(libc::SYS_memfd_create, c"capsa".as_ptr(), flags) })
    };
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC: executable even where vm.memfd_noexec defaults otherwise
    // (Linux 6.3); older kernels refuse the flag.
    let memfd = match create(flags | libc::MFD_EXEC) {
        Err(Errno::EINVAL) => create(flags),
        r => r,
    }
    .ctx(|| "protect the capsa binary: memfd_create")?;
    // std's copy uses copy_file_range or sendfile: no round trip through
    // user space.
    let mut from = std::fs::File::from(exe.try_clone_to_owned().ctx(|| "dup")?);
    let mut to = std::fs::File::from(memfd.try_clone().ctx(|| "dup")?);
    std::io::copy(&mut from, &mut to).ctx(|| "protect the capsa binary: copy")?;
    // SAFETY: F_ADD_SEALS takes an int of seal flags.
    let r = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) };
    Errno::result(r).ctx(|| "protect the capsa binary: seal the copy")?;
    Ok(memfd)
}
