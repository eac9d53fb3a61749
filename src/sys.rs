//! Thin safe wrappers over the few system calls that neither nix nor std
//! expose the way capsa needs. Each unsafe block states its invariant.

use nix::errno::Errno;
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Forks the calling process into new namespaces (`clone` without a new
/// stack, so the child continues on a copy-on-write copy of this stack, the
/// way `fork` does).
///
/// Returns `Some(child pid)` in the parent and `None` in the child.
///
/// Safety of the call: capsa is single-threaded when it clones (the only
/// thread it ever spawns, to make an idmapped mount, is joined before it
/// clones again), so the child inherits no lock held by another thread and
/// may keep using the allocator and std as after `fork`.
pub fn clone_into_namespaces(ns_flags: libc::c_int) -> Result<Option<Pid>, Errno> {
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: raw clone with a null stack pointer behaves like fork; see the
    // single-thread invariant above. No pointers are passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0usize,
        )
    };
    match r {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// The type of the namespace an nsfs file descriptor refers to, as its
/// `CLONE_NEW*` flag (the `NS_GET_NSTYPE` ioctl, Linux 4.11). The kernel's
/// answer holds for every form of namespace file: a `/proc/PID/ns/*` link,
/// or an nsfs file bind-mounted elsewhere (`ip netns`, CNI), whose fd link
/// text is its path rather than `net:[...]`. ENOTTY: not a namespace.
pub fn ns_type(fd: BorrowedFd<'_>) -> Result<libc::c_int, Errno> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb7 << 8 | 0x3; // _IO(0xb7, 0x3)
    // SAFETY: the ioctl takes no argument and only reads the fd, which the
    // borrow keeps open for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}

/// `struct clone_args` of <linux/sched.h>, up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Where a cloned child was born.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Born {
    /// In the cgroup2 directory it was asked for (clone3 CLONE_INTO_CGROUP).
    InCgroup,
    /// In its parent's cgroups (no directory was given, or the kernel
    /// refused clone3 with one: the child must move itself).
    WithParent,
}

/// [`clone_into_namespaces`], with the child born in the cgroup2 directory
/// `cgroup` when one is given and the kernel can (clone3 with
/// CLONE_INTO_CGROUP, Linux 5.7): nobody then has to move it there, which
/// would take the kernel's global cgroup lock and wait for an RCU grace
/// period. When clone3 refuses (an older kernel, or a cgroup that cannot
/// take the process, such as one with controllers enabled for children),
/// it falls back to a plain clone and says so; moving the child then gives
/// the real error, if any.
pub fn clone_into_cgroup(
    ns_flags: libc::c_int,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(Option<Pid>, Born), Errno> {
    use std::os::fd::AsRawFd;
    let Some(cgroup) = cgroup else {
        return clone_into_namespaces(ns_flags).map(|p| (p, Born::WithParent));
    };
    let args = CloneArgs {
        flags: ns_flags as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 reads `args` (alive for the call, its size passed
    // along); stack 0 makes the child run on a copy-on-write copy of this
    // stack as with fork, under the single-thread invariant of
    // `clone_into_namespaces`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        0 => Ok((None, Born::InCgroup)),
        pid if pid > 0 => Ok((Some(Pid::from_raw(pid as i32)), Born::InCgroup)),
        _ => match Errno::last() {
            // Refusals that a clone without the cgroup may not share: no
            // clone3 or CLONE_INTO_CGROUP, or a cgroup that cannot take it.
            Errno::ENOSYS
            | Errno::E2BIG
            | Errno::EINVAL
            | Errno::EBADF
            | Errno::EBUSY
            | Errno::EOPNOTSUPP
            | Errno::EACCES
            | Errno::EPERM => clone_into_namespaces(ns_flags).map(|p| (p, Born::WithParent)),
            e => Err(e),
        },
    }
}

/// Ends this process at once (`_exit`): no destructors, atexit handlers or
/// stdio flushes, for a clone of capsa that must run none of its parent's.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; it reads and writes no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Returns the heap's free memory to the system (glibc's malloc_trim; the
/// musl build's dlmalloc keeps its few 64 KiB areas).
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0)
    };
}

/// renameat2(2) with RENAME_EXCHANGE: swaps `a` and `b` atomically (both
/// must exist). Called directly: not every libc capsa builds with wraps it.
pub fn exchange(a: &std::path::Path, b: &std::path::Path) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both paths are NUL-terminated strings alive for the call;
    // the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// Marks every fd from `first` up as close-on-exec.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range only changes flags of this process's fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    match Errno::result(r) {
        Ok(_) => Ok(()),
        // Kernels before 5.11 lack the flag: mark them one by one.
        Err(Errno::EINVAL) | Err(Errno::ENOSYS) => {
            let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
                .map_err(|_| Errno::ENOSYS)?
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .filter(|fd: &i32| *fd >= first as i32)
                .collect();
            for fd in fds {
                // SAFETY: F_SETFD only changes the flags of our own fd; an
                // fd closed meanwhile (the directory's) just returns EBADF.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub fn setdomainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `name`'s bytes for the call.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(r).map(drop)
}

/// Sets the effective, permitted and inheritable capability sets at once
/// (64-bit masks), so no intermediate state breaks capset's rules.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        Data {
            effective: lo(effective),
            permitted: lo(permitted),
            inheritable: lo(inheritable),
        },
        Data {
            effective: hi(effective),
            permitted: hi(permitted),
            inheritable: hi(inheritable),
        },
    ];
    // SAFETY: header and a two-element data array as capset v3 requires,
    // both live for the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
    Errno::result(r).map(drop)
}

/// Start time (clock ticks after boot) and state letter of a process, from
/// /proc/PID/stat; `None` if there is no such process.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    proc_info(pid).map(|i| (i.start, i.state))
}

/// What capsa reads of a process in /proc/PID/stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Start time in clock ticks after boot (with the pid, the identity
    /// of a process: a reused pid has a later start time).
    pub start: u64,
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// The command name (`comm`, at most 15 bytes).
    pub comm: String,
}

/// /proc/PID/stat of a process; `None` if there is no such process.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

fn parse_stat(s: &str) -> Option<ProcInfo> {
    // The command name is in parentheses and may contain spaces or ')'.
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let rest = &s[close + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come fields 4..; starttime is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some(ProcInfo { start, state, comm })
}

/// A pidfd: a handle on one process that cannot be confused with a later
/// process reusing its pid.
pub struct PidFd {
    fd: std::os::fd::OwnedFd,
    pid: i32,
}

impl PidFd {
    pub fn open(pid: i32) -> Result<PidFd, Errno> {
        if pid <= 0 {
            // pidfd_open refuses these too; never let 0 or -1 reach a
            // signal call as "the process group" or "everyone".
            return Err(Errno::EINVAL);
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd
        // that we take ownership of below.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = Errno::result(r)? as std::os::fd::RawFd;
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(PidFd { fd, pid })
    }

    /// The pid the process had when the pidfd was opened (only meaningful
    /// while [`PidFd::exited`] is false).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process has exited (a zombie counts as exited). While it
    /// has not, its pid cannot belong to any other process.
    pub fn exited(&self) -> bool {
        self.wait_exit(0)
    }

    pub fn signal(&self, sig: i32) -> Result<(), Errno> {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        Errno::result(r).map(drop)
    }

    /// Waits until the process has exited (a zombie counts), at most
    /// `timeout_ms`; returns whether it exited.
    pub fn wait_exit(&self, timeout_ms: i32) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(
                &mut fds,
                PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX),
            ) {
                Err(Errno::EINTR) => continue,
                Ok(n) => return n > 0,
                Err(_) => return false,
            }
        }
    }
}

impl std::os::fd::AsFd for PidFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Joins a new session keyring named `name`, so the container does not
/// share the caller's keys.
pub fn join_session_keyring(name: &str) -> Result<(), Errno> {
    let name = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: keyctl reads the NUL-terminated name for the call only.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    Errno::result(r).map(drop)
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path`
/// (of its whole tree with `recursive`, mount flags and kernel locks kept),
/// in a new anonymous mount namespace owned by the user namespace that owns
/// the caller's. Nothing is attached anywhere; closing the fd dissolves it.
pub fn open_tree_clone(path: &std::path::Path, recursive: bool) -> Result<OwnedFd, Errno> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads the NUL-terminated path for the call only and
    // returns a new fd, which we take ownership of.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(r)? as RawFd;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mount_setattr(MOUNT_ATTR_IDMAP)` on a detached mount: its files' owners
/// are seen through the id mappings of the user namespace `userns` (of
/// every mount of the tree with `recursive`).
pub fn mount_setattr_idmap(
    mnt: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr(mnt, &attr, recursive)
}

/// `mount_setattr` on the mount `fd` refers to and every mount below it:
/// the MOUNT_ATTR_* bits `set` are set and `clr` cleared.
pub fn mount_setattr_rec(fd: BorrowedFd<'_>, set: u64, clr: u64) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(fd, &attr, true)
}

fn mount_setattr(
    mnt: BorrowedFd<'_>,
    attr: &libc::mount_attr,
    recursive: bool,
) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: an fd with an empty path (AT_EMPTY_PATH), and a pointer to a
    // mount_attr of the size passed, alive for the call; the kernel only
    // reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// `move_mount`: attaches the detached mount `mnt` (from `open_tree` or
/// `fsmount`) on what `target` (an O_PATH fd) refers to.
pub fn move_mount_onto(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: two fds with empty paths (the F_ and T_EMPTY_PATH flags);
    // no memory but the static empty strings is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// The id of the mount `path` is on (as in /proc/PID/mountinfo), from
/// `statx(STATX_MNT_ID)`.
pub fn mount_id(path: &std::path::Path) -> Result<u64, Errno> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: statx reads the NUL-terminated path and writes one struct
    // statx into the buffer we own, both alive for the call.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            0,
            libc::STATX_MNT_ID,
            stx.as_mut_ptr(),
        )
    };
    Errno::result(r)?;
    // SAFETY: statx succeeded and filled the struct (it was zeroed before,
    // so every field is initialised either way).
    let stx = unsafe { stx.assume_init() };
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(stx.stx_mnt_id)
}

/// Whether `fd` is on a procfs (CVE-2019-16884, CVE-2025-52881: a
/// directory or file planted or bind-mounted where /proc should be takes
/// writes meant for the kernel).
pub fn is_procfs(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}

/// This process's directory on the procfs at `/proc` of the current mount
/// namespace, checked to be procfs. Opened while that namespace is still
/// the host's (before a joined mount namespace changes what `/proc` is),
/// it stays the process's own: [`write_proc_file`] writes through it.
pub fn open_proc_self() -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        "/proc/self",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    use std::os::fd::AsFd;
    if !is_procfs(fd.as_fd()) {
        return Err(Errno::EXDEV);
    }
    Ok(fd)
}

/// Opens `rel` beneath the procfs directory `dir` without crossing into
/// another mount (a file bind-mounted over a procfs entry), following no
/// symlink and no magic link, and checks the file is on procfs.
pub fn open_proc_file(
    dir: BorrowedFd<'_>,
    rel: &std::path::Path,
    flags: nix::fcntl::OFlag,
) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use std::os::fd::AsFd;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_XDEV
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_SYMLINKS,
        );
    let mut tries = 0;
    let fd = loop {
        match nix::fcntl::openat2(dir, rel, how) {
            Err(Errno::EAGAIN | Errno::EINTR) if tries < 1000 => tries += 1,
            r => break r?,
        }
    };
    if !is_procfs(fd.as_fd()) {
        return Err(Errno::EXDEV);
    }
    Ok(fd)
}

/// Writes `data` to `rel` beneath the procfs directory `dir` (see
/// [`open_proc_file`]).
pub fn write_proc_file(
    dir: BorrowedFd<'_>,
    rel: &std::path::Path,
    data: &[u8],
) -> Result<(), Errno> {
    let fd = open_proc_file(dir, rel, nix::fcntl::OFlag::O_WRONLY)?;
    let n = nix::unistd::write(&fd, data)?;
    if n != data.len() {
        return Err(Errno::EIO);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let s = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        let i = parse_stat(s).unwrap();
        assert_eq!((i.start, i.state, i.comm.as_str()), (12345, 'S', "a) b"));
        let me = std::process::id() as i32;
        assert!(proc_stat(me).is_some());
    }
}
