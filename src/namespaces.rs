//! Which namespaces a container gets: new ones are created by the clone
//! (or, for the cgroup namespace, by unshare once the init sits in its
//! cgroup); ones given by `path` are joined with setns, checked to be of
//! the type the config says.

use crate::error::{Context, Error, Result};
use crate::spec::ns_name;
use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

#[derive(Debug)]
pub struct Plan {
    /// Namespaces the clone creates.
    pub clone_flags: CloneFlags,
    /// A cgroup namespace to unshare after the init joined its cgroup.
    pub new_cgroupns: bool,
    /// Namespaces to join, in the order they must be joined.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Every namespace type the container has of its own.
    pub types: Vec<LinuxNamespaceType>,
    /// A time namespace to create, with `linux.timeOffsets` as
    /// `timens_offsets` lines. clone() cannot create one (its flag bit is
    /// the exit signal's), so the init unshares it; the process it execs
    /// is the first to enter it.
    pub new_timens: Option<String>,
    /// The user namespace given by path was joined by capsa before the
    /// clone (rootless: see join_user_first); the init is in it already.
    pub user_joined: bool,
}

fn flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_truncate(t as i32)
}

/// The namespace's name under /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Network => "net",
        other => ns_name(other),
    }
}

/// The order namespaces are joined in: the user namespace first (it
/// grants the capabilities to join the others), the mount namespace last
/// (it changes what later paths mean).
pub fn join_order(t: LinuxNamespaceType) -> u8 {
    match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    }
}

/// Writes the uid and gid maps of a child's new user namespace (from the
/// parent, before the child goes on). As root the maps are written
/// directly. Without root (rootless), a map of the caller's own id alone is
/// written directly too (gid_map after denying setgroups, as the kernel
/// requires); anything wider goes through the setuid helpers `newuidmap`
/// and `newgidmap` (Debian's `uidmap`), which check `/etc/subuid` and
/// `/etc/subgid`.
pub fn write_id_maps(spec: &Spec, pid: nix::unistd::Pid) -> Result<()> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    let root = nix::unistd::geteuid().is_root();
    for (kind, field, maps, own) in [
        (
            IdKind::Uid,
            "linux.uidMappings",
            linux.uid_mappings(),
            nix::unistd::geteuid().as_raw(),
        ),
        (
            IdKind::Gid,
            "linux.gidMappings",
            linux.gid_mappings(),
            nix::unistd::getegid().as_raw(),
        ),
    ] {
        let Some(maps) = maps.as_ref().filter(|m| !m.is_empty()) else {
            if !root {
                crate::bail!(
                    "config.json: {field}: a user namespace created without root needs a mapping"
                );
            }
            continue;
        };
        let direct = root || (maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1);
        if direct {
            if kind == IdKind::Gid && !root {
                let path = format!("/proc/{pid}/setgroups");
                std::fs::write(&path, "deny").ctx(|| format!("write {path}"))?;
            }
            let text: String = maps
                .iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect();
            let path = format!("/proc/{pid}/{}", kind.file());
            std::fs::write(&path, text).ctx(|| format!("config.json: {field}: write {path}"))?;
        } else {
            run_map_helper(kind, field, pid, maps)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Uid,
    Gid,
}

impl IdKind {
    fn file(self) -> &'static str {
        match self {
            IdKind::Uid => "uid_map",
            IdKind::Gid => "gid_map",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            IdKind::Uid => "newuidmap",
            IdKind::Gid => "newgidmap",
        }
    }
}

/// `newuidmap PID inner outer count ...` (or newgidmap), its complaint
/// passed on when it refuses.
fn run_map_helper(
    kind: IdKind,
    field: &str,
    pid: nix::unistd::Pid,
    maps: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<()> {
    let helper = kind.helper();
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.arg(m.container_id().to_string())
            .arg(m.host_id().to_string())
            .arg(m.size().to_string());
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::msg(format!(
                "config.json: {field}: mapping more than your own id needs {helper} \
                 (apt-get install uidmap): {}",
                crate::error::errno_text(nix::errno::Errno::from_raw(
                    e.raw_os_error().unwrap_or(0)
                ))
            ))
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        crate::bail!(
            "config.json: {field}: {helper} refused the mapping (check /etc/sub{}): {why}",
            match kind {
                IdKind::Uid => "uid",
                IdKind::Gid => "gid",
            }
        );
    }
    Ok(())
}

/// Rootless (crate::rootless), joins the user namespace among `fds`, if
/// any, in this process, before any other: a caller without root on the
/// host has no privilege over the container's other namespaces (they are
/// owned by its user namespace) until it is in that user namespace.
/// Returns whether it did (or was in it already); the process then does
/// not join it again.
/// Root keeps its own user namespace and joins the others directly.
pub fn join_user_first(fds: &[(LinuxNamespaceType, OwnedFd)]) -> Result<bool> {
    let Some((_, fd)) = fds.iter().find(|(t, _)| *t == LinuxNamespaceType::User) else {
        return Ok(false);
    };
    if !crate::rootless::is_rootless() {
        return Ok(false);
    }
    // Already in it (the kernel refuses to join one's own user namespace).
    let id = |s: nix::sys::stat::FileStat| (s.st_dev, s.st_ino);
    let theirs = nix::sys::stat::fstat(fd).ctx(|| "stat the container's user namespace")?;
    if nix::sys::stat::stat("/proc/self/ns/user").is_ok_and(|own| id(own) == id(theirs)) {
        return Ok(true);
    }
    setns(fd, CloneFlags::CLONE_NEWUSER).ctx(|| "join the container's user namespace")?;
    Ok(true)
}

/// Switches to uid and gid 0 of the user namespace just entered, so the
/// setup runs as the container's root.
pub fn become_userns_root() -> Result<()> {
    let root_g = nix::unistd::Gid::from_raw(0);
    let root_u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g)
        .ctx(|| "user namespace: become gid 0 (is gid 0 in linux.gidMappings?)")?;
    nix::unistd::setresuid(root_u, root_u, root_u)
        .ctx(|| "user namespace: become uid 0 (is uid 0 in linux.uidMappings?)")?;
    Ok(())
}

/// The namespaces a config lists.
pub fn configured(spec: &Spec) -> impl Iterator<Item = &oci_spec::runtime::LinuxNamespace> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
}

pub fn plan(spec: &Spec) -> Plan {
    let mut p = Plan {
        clone_flags: CloneFlags::empty(),
        new_cgroupns: false,
        join: Vec::new(),
        types: Vec::new(),
        new_timens: None,
        user_joined: false,
    };
    for ns in configured(spec) {
        p.types.push(ns.typ());
        match ns.path() {
            Some(path) => p.join.push((ns.typ(), path.clone())),
            None if ns.typ() == LinuxNamespaceType::Cgroup => p.new_cgroupns = true,
            None if ns.typ() == LinuxNamespaceType::Time => {
                p.new_timens = Some(time_offsets(spec));
            }
            None => p.clone_flags |= flag(ns.typ()),
        }
    }
    p.join.sort_by_key(|(t, _)| join_order(*t));
    p
}

/// Whether the mount namespace with this nsfs device and inode is the
/// runtime's own or the host's (PID 1's): a rootfs set up there would
/// change the host's mounts.
pub fn is_host_mount_namespace(dev: u64, ino: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    ["/proc/self/ns/mnt", "/proc/1/ns/mnt"]
        .iter()
        .any(|p| std::fs::metadata(p).is_ok_and(|o| o.dev() == dev && o.ino() == ino))
}

/// Whether the mount namespace among `fds` (joined by a path) is someone
/// else's than the runtime's or the host's: capsa then sets up the rootfs
/// in it, as in one it creates (runc does the same, and runtime-tools'
/// linux_ns_path relies on it). Called before any namespace is joined.
pub fn joins_foreign_mount_namespace(fds: &[(LinuxNamespaceType, OwnedFd)]) -> bool {
    fds.iter()
        .find(|(t, _)| *t == LinuxNamespaceType::Mount)
        .and_then(|(_, fd)| nix::sys::stat::fstat(fd).ok())
        .is_some_and(|st| !is_host_mount_namespace(st.st_dev, st.st_ino))
}

/// Checks, by asking the kernel, that `fd` is a namespace of type `t`.
pub fn check_type(t: LinuxNamespaceType, fd: &OwnedFd) -> std::result::Result<(), String> {
    use std::os::fd::AsFd;
    match crate::sys::ns_type(fd.as_fd()) {
        Ok(got) if got == t as libc::c_int => Ok(()),
        Ok(got) => Err(format!(
            "not a {} namespace (it is a {} namespace)",
            ns_name(t),
            type_of_flag(got).map_or("different", ns_name)
        )),
        Err(nix::errno::Errno::ENOTTY | nix::errno::Errno::EINVAL) => Err(format!(
            "not a {} namespace (not a namespace file)",
            ns_name(t)
        )),
        Err(e) => Err(format!(
            "its namespace type: {}",
            crate::error::errno_text(e)
        )),
    }
}

fn type_of_flag(bits: libc::c_int) -> Option<LinuxNamespaceType> {
    use LinuxNamespaceType::*;
    [Mount, Cgroup, Uts, Ipc, User, Pid, Network, Time]
        .into_iter()
        .find(|t| *t as libc::c_int == bits)
}

impl Plan {
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.types.contains(&t)
    }

    /// Whether the container gets a new namespace of type `t` (one it
    /// has, not joined by a path).
    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.has(t) && !self.join.iter().any(|(j, _)| *j == t)
    }

    /// Opens every namespace to join and checks its type.
    pub fn open(&self) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
        let mut out = Vec::new();
        for (t, path) in &self.join {
            let field = format!(
                "config.json: linux.namespaces ({}) path {}",
                ns_name(*t),
                path.display()
            );
            let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| field.clone())?;
            check_type(*t, &fd).map_err(|why| Error::msg(format!("{field}: {why}")))?;
            out.push((*t, fd));
        }
        Ok(out)
    }

    /// In the parent, before the clone: a joined PID namespace only applies
    /// to children created afterwards.
    /// Rootless, the user namespace given by path is joined first, here:
    /// the namespaces the clone creates then belong to it, and it grants
    /// the privilege to join the others.
    pub fn join_pid(&mut self, fds: &[(LinuxNamespaceType, OwnedFd)]) -> Result<()> {
        self.user_joined = join_user_first(fds)?;
        for (t, fd) in fds {
            if *t == LinuxNamespaceType::Pid {
                setns(fd, CloneFlags::CLONE_NEWPID).ctx(|| "join pid namespace")?;
            }
        }
        Ok(())
    }

    /// In the init: join the other namespaces (becoming root of a user
    /// namespace first), then create the cgroup one. `proc_self`: the
    /// init's procfs directory, opened before any namespace was joined
    /// ([`crate::sys::open_proc_self`]), for the time offsets.
    pub fn join_rest(
        &self,
        fds: &[(LinuxNamespaceType, OwnedFd)],
        proc_self: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<()> {
        for (t, fd) in fds {
            if *t != LinuxNamespaceType::Pid
                && !(self.user_joined && *t == LinuxNamespaceType::User)
            {
                setns(fd, flag(*t)).ctx(|| format!("join {} namespace", ns_name(*t)))?;
            }
            if *t == LinuxNamespaceType::User {
                become_userns_root()?;
            }
        }
        if self.clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
            become_userns_root()?;
        }
        if self.new_cgroupns {
            unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "create cgroup namespace")?;
        }
        if let Some(offsets) = &self.new_timens {
            unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
                .ctx(|| "create time namespace")?;
            // Only until a process enters the namespace: this init enters
            // it at execve, and nothing is forked before then.
            // Through the procfs opened before a joined mount namespace
            // could change what /proc is.
            if !offsets.is_empty() {
                let dir = proc_self.ok_or_else(|| {
                    Error::msg("config.json: linux.timeOffsets: no procfs handle")
                })?;
                let f = open_timens_offsets(dir, self.has(LinuxNamespaceType::User))
                    .ctx(|| "config.json: linux.timeOffsets: open /proc/self/timens_offsets")?;
                let n = nix::unistd::write(&f, offsets.as_bytes())
                    .ctx(|| "config.json: linux.timeOffsets: write /proc/self/timens_offsets")?;
                if n != offsets.len() {
                    crate::bail!(
                        "config.json: linux.timeOffsets: write /proc/self/timens_offsets: short write"
                    );
                }
            }
        }
        Ok(())
    }
}

/// Opens /proc/self/timens_offsets for writing. In a user namespace of
/// its own, the non-dumpable init's /proc files belong to the host's root,
/// which the container's root is not: the file is opened in a moment of
/// dumpability (the init is then alone in its new namespaces and runs
/// nothing of the container's), and the init is non-dumpable again before
/// anything else happens, whether the open worked or not.
fn open_timens_offsets(
    proc_self: std::os::fd::BorrowedFd<'_>,
    userns: bool,
) -> std::result::Result<OwnedFd, nix::errno::Errno> {
    let open = || {
        crate::sys::open_proc_file(
            proc_self,
            std::path::Path::new("timens_offsets"),
            OFlag::O_WRONLY,
        )
    };
    match open() {
        Err(nix::errno::Errno::EACCES) if userns => {
            nix::sys::prctl::set_dumpable(true)?;
            let f = open();
            if let Err(e) = nix::sys::prctl::set_dumpable(false) {
                // Staying dumpable would expose the init: give up.
                crate::logging::warn(&format!("cannot make the init non-dumpable again: {e}"));
                std::process::abort();
            }
            f
        }
        r => r,
    }
}

/// `linux.timeOffsets` in the kernel's `timens_offsets` format, one
/// `CLOCK SECS NANOSECS` line per clock (validated by spec loading).
fn time_offsets(spec: &Spec) -> String {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return String::new();
    };
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by_key(|(k, _)| k.as_str());
    clocks
        .into_iter()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect()
}
