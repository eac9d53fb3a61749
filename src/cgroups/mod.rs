//! A container's cgroups: one [`Manager`] interface with a v1 backend (also
//! used on hybrid hosts, as runc does) and a v2 backend, chosen from the
//! host's mounts when the container is created and remembered in its
//! state, so later commands find the same directories whatever their own
//! cgroup or flags.
//!
//! `create` makes the directories and applies `linux.resources` before the
//! init exists, which joins them before it runs any of the container's
//! setup; `update` merges new resources in and applies them again (device
//! rules excepted, as in runc); `delete` removes every directory create
//! made.

pub mod devices;
pub mod ebpf;
pub mod join;
pub mod mounts;
pub mod oom;
pub mod path;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

use crate::error::{Context, Error, Result, errno_text};
use mounts::{Hierarchy, Mode};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxBlockIo, LinuxResources, LinuxThrottleDevice, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The key of the cgroup2 directory in [`Record::paths`].
pub const UNIFIED: &str = "unified";

/// The extended attribute capsa sets (as root) on each cgroup directory it
/// makes, holding the container's id. A `trusted.` attribute needs
/// CAP_SYS_ADMIN to set, so whoever can only edit a state.json cannot make
/// a host cgroup look like one capsa made: later commands remove, and
/// kill what is in, only directories that carry it (see [`verify`]).
pub const MARK: &str = "trusted.capsa.container";

/// Whether capsa's marks are set and required: with root on the host
/// (CAP_SYS_ADMIN in the initial user namespace, which `trusted.`
/// attributes need). Rootless, the state is the caller's own to forge, and
/// the mark could not be set anyway.
pub fn marks_apply() -> bool {
    !crate::rootless::is_rootless()
}

/// The id [`mkdir_all`] marks new directories with (set by
/// [`for_container`]).
static MARK_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Whether the cgroup directory `dir` carries capsa's mark for `id`.
pub fn marked_for(dir: &Path, id: &str) -> bool {
    let mut buf = [0u8; 1100];
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: valid NUL-terminated strings and a buffer of the given size.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"trusted.capsa.container".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n >= 0 && &buf[..n as usize] == id.as_bytes()
}

fn mark(dir: &Path) -> Result<()> {
    let Some(id) = MARK_ID.get() else {
        return Ok(());
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::msg(format!("cgroup {}: NUL in path", dir.display())))?;
    // SAFETY: valid NUL-terminated strings and a value of the given length.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.capsa.container".as_ptr(),
            id.as_ptr().cast(),
            id.len(),
            0,
        )
    };
    if r != 0 && marks_apply() {
        return Err(Errno::last()).ctx(|| format!("mark cgroup {} as capsa's", dir.display()));
    }
    Ok(())
}

/// Checks a cgroup record read back from a container's state before it is
/// used: every directory must lie on a cgroup mount of this host (by its
/// path, under the mount point, without `..`, so nothing outside cgroupfs
/// is ever written, listed or removed through it). As root, a directory
/// recorded as made by `create` counts as such only if it carries capsa's
/// mark for `id` (a forged record cannot have capsa remove a host cgroup,
/// or kill what runs in it).
pub fn verify(rec: &mut Record, id: &str) -> Result<()> {
    // Without /proc (delete --force still cleans up then), the filesystem
    // each directory is on decides.
    let hs = mounts::hierarchies_once();
    let on_mount = |d: &Path| {
        d.is_absolute()
            && !d
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            && match &hs {
                Some(hs) => hs.iter().any(|h| d.starts_with(&h.mountpoint)),
                None => nix::sys::statfs::statfs(d).map_or_else(
                    |e| e == Errno::ENOENT,
                    |s| {
                        s.filesystem_type() == nix::sys::statfs::CGROUP_SUPER_MAGIC
                            || s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC
                    },
                ),
            }
    };
    for d in rec.paths.values().chain(rec.created.iter()) {
        if !on_mount(d) {
            return Err(Error::msg(format!(
                "container {id:?}: state.json names cgroup {} which is not on a cgroup mount; \
                 refusing to use it",
                d.display()
            )));
        }
    }
    if marks_apply() {
        // One that is gone already has nothing left to remove.
        rec.created.retain(|d| marked_for(d, id));
    }
    Ok(())
}

/// The container's own directory that capsa made for `id` (marked), if
/// any, and whether the process whose /proc/PID/cgroup is `proc_cgroup`
/// is in it or below it (an init such as systemd moves itself into a
/// cgroup of its own below the container's).
pub fn in_marked_cgroup(rec: &Record, id: &str, proc_cgroup: &str) -> Option<bool> {
    let dir = rec.dirs().into_iter().find(|d| marked_for(d, id))?;
    let hs = mounts::hierarchies_once()?;
    Some(hs.iter().any(|h| {
        mounts::cgroup_in(h, proc_cgroup)
            .and_then(|p| h.dir_of(&p))
            .is_some_and(|p| p.starts_with(dir))
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

/// What the container's state keeps about its cgroups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: Version,
    /// v1: each controller (and `name=` hierarchy, and `unified` on a hybrid
    /// host) → the container's directory in it; v2: `unified` → the
    /// container's directory.
    pub paths: BTreeMap<String, PathBuf>,
    /// Directories `create` made, parents before children; `delete`
    /// removes them (and always the container's own directories).
    #[serde(default)]
    pub created: Vec<PathBuf>,
    /// The resources in force: the config's, with every update merged in.
    #[serde(default)]
    pub resources: Option<LinuxResources>,
    /// Whether the path came from `--systemd-cgroup`'s `slice:prefix:name`.
    #[serde(default)]
    pub systemd: bool,
    /// With the systemd driver, the container's unit: what makes `delete`
    /// (which clients run without `--systemd-cgroup`) stop it and `update`
    /// set its properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<path::SystemdUnit>,
}

impl Record {
    /// The container's own directories, each once (co-mounted v1
    /// controllers share one).
    pub fn dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for p in self.paths.values() {
            if !out.contains(&p.as_path()) {
                out.push(p);
            }
        }
        out
    }
}

/// How errors name the resource being applied: `config.json:
/// linux.resources.memory.limit` at create, `linux.resources.memory.limit`
/// for an update.
#[derive(Debug, Clone)]
pub struct Fields {
    prefix: &'static str,
    /// An update: device rules stay as they are (as with runc) and
    /// `memory.checkBeforeUpdate` applies.
    pub update: bool,
}

impl Fields {
    pub fn config() -> Fields {
        Fields {
            prefix: "config.json: linux.resources",
            update: false,
        }
    }

    pub fn update() -> Fields {
        Fields {
            prefix: "linux.resources",
            update: true,
        }
    }

    pub fn name(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }
}

/// One backend's operations on one container's cgroup.
pub trait Manager {
    fn record(&self) -> &Record;
    /// Creates the directories (remembering which were new).
    fn create(&mut self) -> Result<()>;
    /// Applies resources; an unset field is left alone, a set one the host
    /// cannot honour is an error naming it.
    fn set(&self, r: &LinuxResources, f: &Fields) -> Result<()>;
    /// The directory whose `cgroup.procs` (with its children's) lists the
    /// container's processes.
    fn procs_dir(&self) -> Option<&Path>;
    /// Freezes (pause) or thaws (resume) every process.
    fn freeze(&self, frozen: bool) -> Result<()>;
    fn is_frozen(&self) -> bool;
    /// Whether the container can be paused at all (a freezer exists).
    fn can_freeze(&self) -> bool;
    /// Usage figures, in runc's `events --stats` format.
    fn stats(&self) -> Result<stats::Stats>;
    /// A handle that becomes readable on OOM events (`None` without a
    /// memory controller).
    fn oom_watch(&self) -> Result<Option<oom::OomWatch>>;
}

/// The manager for a container about to be created: the host's layout
/// decides the backend; `linux.cgroupsPath` (see [`path`]) the directories.
pub fn for_container(spec: &Spec, id: &str, systemd: bool) -> Result<Box<dyn Manager>> {
    let _ = MARK_ID.set(id.to_string());
    let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let cgroups_path = cgroups_path.as_ref().and_then(|p| p.to_str());
    let inner = path::inner(cgroups_path, id, systemd)?;
    let unit = if systemd {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::msg(
                "--systemd-cgroup: capsa talks to the system's systemd only, as root (a user's systemd instance is not supported)",
            ));
        }
        Some(path::systemd_unit(cgroups_path.unwrap_or(""), id)?)
    } else {
        None
    };
    let hs = mounts::hierarchies()?;
    let own = mounts::proc_cgroup("self")?;
    let mode = Mode::of(&hs).ok_or_else(|| {
        Error::msg("cgroups: no cgroup filesystem is mounted (looked in /proc/self/mountinfo)")
    })?;
    let dir_in = |h: &Hierarchy| -> Result<PathBuf> {
        let own_path = mounts::cgroup_in(h, &own).unwrap_or_else(|| "/".into());
        let p = inner.within(&own_path);
        h.dir_of(&p.to_string_lossy()).ok_or_else(|| {
            Error::msg(format!(
                "cgroups: {} is outside the part of the hierarchy mounted at {}",
                p.display(),
                h.mountpoint.display()
            ))
        })
    };
    let mut rec = Record {
        version: Version::V1,
        paths: BTreeMap::new(),
        created: Vec::new(),
        resources: spec.linux().as_ref().and_then(|l| l.resources().clone()),
        systemd,
        unit,
    };
    if mode == Mode::Unified {
        let h = mounts::unified(&hs).expect("unified mode has a cgroup2 mount");
        rec.version = Version::V2;
        rec.paths.insert(UNIFIED.into(), dir_in(h)?);
        return Ok(Box::new(v2::V2::new(rec, Some(h.mountpoint.clone()))));
    }
    for h in &hs {
        // A hierarchy mounted twice: the first mount serves.
        let names = h.names();
        if names.iter().any(|n| rec.paths.contains_key(*n))
            || (h.is_v2() && rec.paths.contains_key(UNIFIED))
        {
            continue;
        }
        if h.is_v2() {
            // Hybrid: joined, so the container sees its own cgroup there
            // too, but limits are v1's (as runc does).
            rec.paths.insert(UNIFIED.into(), dir_in(h)?);
            continue;
        }
        let dir = dir_in(h)?;
        for name in names {
            rec.paths.insert(name.to_string(), dir.clone());
        }
    }
    if !rec.paths.contains_key("devices") {
        // Like runc: without it nothing would keep the container off the
        // host's devices.
        return Err(Error::msg(
            "cgroups: the v1 devices controller is not mounted; refusing to run a container without device restrictions",
        ));
    }
    Ok(Box::new(v1::V1::new(rec)))
}

/// The manager for an existing container's recorded cgroup.
pub fn open(rec: &Record) -> Box<dyn Manager> {
    match rec.version {
        Version::V1 => Box::new(v1::V1::new(rec.clone())),
        Version::V2 => Box::new(v2::V2::new(rec.clone(), None)),
    }
}

/// Everything `create` does to the container's cgroups before its init
/// exists: the directories and their limits; then the files through which
/// the init joins them (see [`join`]) as the first thing it does.
pub fn prepare(m: &mut dyn Manager) -> Result<join::Join> {
    m.create()?;
    if let Some(r) = m.record().resources.clone() {
        m.set(&r, &Fields::config())?;
    }
    join::Join::open(m.record())
}

/// `blockIO`'s four throttle lists: each with its field name, its v1 file
/// and its key in v2's io.max.
type Throttle<'a> = (
    &'a [LinuxThrottleDevice],
    &'static str,
    &'static str,
    &'static str,
);

pub(crate) fn throttles(b: &LinuxBlockIo) -> [Throttle<'_>; 4] {
    fn l(v: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
        v.as_deref().unwrap_or(&[])
    }
    [
        (
            l(b.throttle_read_bps_device()),
            "throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            l(b.throttle_write_bps_device()),
            "throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            l(b.throttle_read_iops_device()),
            "throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            l(b.throttle_write_iops_device()),
            "throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ]
}

/// `rec` with the directories `create` is about to make recorded as made:
/// each directory of the container and each missing parent, parents first.
/// What is recorded before `create` runs, so that a capsa killed while it
/// made them leaves a record that finds every one (removing one that
/// someone else made meanwhile only happens if it is empty).
pub fn with_planned_dirs(rec: &Record) -> Record {
    let mut planned = rec.clone();
    for dir in rec.dirs() {
        let mut missing = Vec::new();
        let mut p = Some(dir);
        while let Some(d) = p.filter(|d| !d.exists()) {
            missing.push(d.to_path_buf());
            p = d.parent();
        }
        for d in missing.into_iter().rev() {
            if !planned.created.contains(&d) {
                planned.created.push(d);
            }
        }
    }
    planned
}

/// Every process in the container's cgroup and the cgroups below it.
pub fn pids(m: &dyn Manager) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    if let Some(dir) = m.procs_dir() {
        collect_pids(dir, &mut out)?;
    }
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let text = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("read {}/cgroup.procs", dir.display())),
    };
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for sub in subdirs(dir) {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Pidfds on every process of the container. Each pid is checked to be
/// in the cgroup again after its pidfd is open: a pid that is still listed
/// then is either the process the pidfd holds, or that process is dead and
/// the pidfd signals nothing; so a pid reused by a process outside the
/// container is never signalled.
pub fn pidfds(m: &dyn Manager) -> Result<Vec<crate::sys::PidFd>> {
    let fds: Vec<crate::sys::PidFd> = pids(m)?
        .into_iter()
        .filter_map(|p| crate::sys::PidFd::open(p).ok())
        .collect();
    let still: std::collections::HashSet<i32> = pids(m)?.into_iter().collect();
    Ok(fds
        .into_iter()
        .filter(|f| still.contains(&f.pid()))
        .collect())
}

/// Sends `sig` to every process of the container: frozen first (when a
/// freezer exists) so none can fork away meanwhile, then thawed.
pub fn signal_all(m: &dyn Manager, sig: i32) -> Result<()> {
    let freeze = m.can_freeze() && !m.is_frozen();
    if freeze {
        m.freeze(true)?;
    }
    let result = pidfds(m).map(|fds| {
        for fd in fds {
            let _ = fd.signal(sig);
        }
    });
    if freeze {
        m.freeze(false)?;
    }
    result
}

/// Removes the container's directories (with the cgroups its processes
/// made below the ones create made), then the parents create made. A
/// directory stays busy until its last process is reaped: that is waited
/// out, boundedly. A directory that existed before the container is only
/// removed if it is empty at once.
pub fn destroy(rec: &Record) -> Result<()> {
    // The unit first: systemd removes its directories itself. Should none
    // of the directories exist, no unit was started (or it is gone) and
    // systemd is not asked.
    if let Some(unit) = &rec.unit
        && rec.dirs().iter().any(|d| d.exists())
    {
        systemd::stop(unit)?;
    }
    for dir in rec.dirs() {
        if rec.created.iter().any(|c| c == dir) {
            remove_tree(dir)?;
        } else if marks_apply() {
            // Not made by capsa (or not provably: see `verify`): left
            // alone.
        } else {
            // Not ours: removed when it is empty now, not waited for.
            match rmdir(dir) {
                Ok(()) | Err(Errno::ENOENT | Errno::EBUSY | Errno::ENOTEMPTY) => {}
                Err(e) => return Err(e).ctx(|| format!("remove cgroup {}", dir.display())),
            }
        }
    }
    let dirs = rec.dirs();
    // The parents create made (the container's own are gone by now).
    for dir in rec
        .created
        .iter()
        .rev()
        .filter(|c| !dirs.contains(&c.as_path()))
    {
        match rmdir(dir) {
            // Shared with another container, or gone already.
            Ok(()) | Err(Errno::ENOENT | Errno::EBUSY | Errno::ENOTEMPTY | Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("remove cgroup {}", dir.display())),
        }
    }
    Ok(())
}

/// Kills whatever is left in the container's cgroup when `strays` may
/// belong to it (processes outlive the init without a PID namespace of its
/// own), then [`destroy`]s it.
pub fn kill_and_destroy(rec: &Record, strays: bool) -> Result<()> {
    let m = open(rec);
    if strays && pids(m.as_ref()).is_ok_and(|p| !p.is_empty()) {
        signal_all(m.as_ref(), libc::SIGKILL)?;
    }
    if m.is_frozen() {
        m.freeze(false)?;
    }
    destroy(rec)
}

/// With the systemd driver, the container's own directories that systemd
/// made for its unit (at capsa's request, named for this container) count
/// as made by create: marked as capsa's and recorded, so that later
/// commands trust them as they trust the ones capsa makes itself.
fn adopt_unit_dirs(rec: &mut Record) -> Result<()> {
    if rec.unit.is_none() {
        return Ok(());
    }
    let own: Vec<PathBuf> = rec.dirs().iter().map(|d| d.to_path_buf()).collect();
    for d in own {
        if !rec.created.contains(&d) {
            mark(&d)?;
            rec.created.push(d);
        }
    }
    Ok(())
}

/// Whether every directory of the container is one `create` made, so
/// that whatever runs in them is the container's.
pub fn all_made_by_create(rec: &Record) -> bool {
    rec.dirs()
        .iter()
        .all(|d| rec.created.iter().any(|c| c == d))
}

/// Whether the container's processes are frozen (paused).
pub fn is_frozen(rec: &Record) -> bool {
    open(rec).is_frozen()
}

fn rmdir(dir: &Path) -> std::result::Result<(), Errno> {
    std::fs::remove_dir(dir).map_err(|e| errno_of(&e))
}

/// Removes `dir` and the cgroups below it. The plain rmdir is tried first:
/// it is all a cgroup without children needs (the usual case), and only a
/// busy one is listed for children.
fn remove_tree(dir: &Path) -> Result<()> {
    match rmdir(dir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EBUSY | Errno::ENOTEMPTY) => {}
        Err(e) => return Err(e).ctx(|| format!("remove cgroup {}", dir.display())),
    }
    for sub in subdirs(dir) {
        remove_tree(&sub)?;
    }
    remove_dir(dir).ctx(|| format!("remove cgroup {}", dir.display()))
}

/// rmdir, waiting (up to 5 s) while the cgroup is busy with exiting
/// processes; a missing directory is fine.
fn remove_dir(dir: &Path) -> std::result::Result<(), Errno> {
    let mut wait = Duration::from_millis(1);
    let mut waited = Duration::ZERO;
    loop {
        match rmdir(dir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) if waited < Duration::from_secs(5) => {
                std::thread::sleep(wait);
                waited += wait;
                wait = (wait * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes `dir` and its missing parents, appending the new ones to
/// `created`, parents first. `fresh` runs on each new directory.
fn mkdir_all(
    dir: &Path,
    created: &mut Vec<PathBuf>,
    fresh: &mut dyn FnMut(&Path) -> Result<()>,
) -> Result<()> {
    // The directory first: its parents usually exist, and are only looked
    // at when it cannot be made for want of one.
    let made = match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match dir.parent() {
            Some(parent) => {
                mkdir_all(parent, created, fresh)?;
                std::fs::create_dir(dir)
            }
            None => Err(e),
        },
        r => r,
    };
    match made {
        Ok(()) => {
            created.push(dir.to_path_buf());
            mark(dir)?;
            fresh(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).ctx(|| format!("create cgroup {}", dir.display())),
    }
}

/// Writes `value` to the control file `dir/file` (opened without O_CREAT,
/// truncated, as runc does); errors name `field` and say what is missing.
pub(crate) fn write(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    write_raw(dir, file, value).map_err(|e| write_error(dir, file, value, field, e))
}

/// The error for a failed write of `value` to `dir/file` for `field`.
pub(crate) fn write_error(dir: &Path, file: &str, value: &str, field: &str, e: Errno) -> Error {
    match e {
        Errno::ENOENT if !dir.exists() => {
            Error::msg(format!("{field}: cgroup {} does not exist", dir.display()))
        }
        Errno::ENOENT => Error::msg(format!(
            "{field}: this host does not support it ({} does not exist)",
            dir.join(file).display()
        )),
        e => Error::msg(format!(
            "{field}: write {value:?} to {}: {}",
            dir.join(file).display(),
            errno_text(e)
        )),
    }
}

pub(crate) fn write_raw(dir: &Path, file: &str, value: &str) -> std::result::Result<(), Errno> {
    let mut f = open_write(dir, file)?;
    f.write_all(value.as_bytes()).map_err(|e| errno_of(&e))
}

/// A control file opened for writing (each write(2) to it is one value).
pub(crate) fn open_write(dir: &Path, file: &str) -> std::result::Result<std::fs::File, Errno> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(dir.join(file))
        .map_err(|e| errno_of(&e))
}

pub(crate) fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A control file's contents, trimmed; `None` if it cannot be read.
pub(crate) fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A numeric control file; `max` reads as `u64::MAX`.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    let s = read(dir, file)?;
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// The value of `key` in a flat keyed file (`key value` lines).
pub(crate) fn read_key(dir: &Path, file: &str, key: &str) -> Option<u64> {
    read(dir, file)?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Polls `done` until it holds (at most about `limit`).
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    let mut wait = Duration::from_micros(100);
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(10));
    }
}

/// The host's cgroup layout in a few words (for `features`).
pub fn host_summary() -> String {
    let Ok(hs) = mounts::hierarchies() else {
        return "unknown".into();
    };
    let Some(mode) = Mode::of(&hs) else {
        return "none".into();
    };
    let mut v1: Vec<&str> = hs
        .iter()
        .filter(|h| !h.is_v2())
        .flat_map(|h| h.names())
        .filter(|n| !n.starts_with("name="))
        .collect();
    v1.sort();
    let v2 = mounts::unified(&hs)
        .and_then(|h| read(&h.mountpoint, "cgroup.controllers"))
        .unwrap_or_default()
        .replace(' ', ",");
    match mode {
        Mode::Legacy => format!("v1 ({})", v1.join(",")),
        Mode::Hybrid => format!("hybrid (v1: {}; v2: {v2})", v1.join(",")),
        Mode::Unified => format!("v2 ({v2})"),
    }
}

/// `update`'s resources merged into the ones in force: objects merge key by
/// key, per-device lists replace the entry for the same major:minor, other
/// values replace. Device rules are not updated.
pub fn merge_resources(
    current: Option<&LinuxResources>,
    update: &serde_json::Value,
) -> Result<LinuxResources> {
    let mut base = serde_json::to_value(current.cloned().unwrap_or_default())
        .map_err(|e| Error::msg(e.to_string()))?;
    let mut update = update.clone();
    if let Some(o) = update.as_object_mut() {
        o.remove("devices");
    }
    merge_value(&mut base, &update);
    // Unlimited memory with the old memory+swap limit would be refused:
    // unless the update says otherwise, swap goes unlimited too (runc).
    if update["memory"]["limit"] == -1 && update["memory"]["swap"].is_null() {
        base["memory"]["swap"] = (-1).into();
    }
    serde_path_to_error::deserialize(base)
        .map_err(|e| Error::msg(format!("linux.resources.{}: {}", e.path(), e.inner())))
}

fn merge_value(base: &mut serde_json::Value, update: &serde_json::Value) {
    use serde_json::Value;
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                if v.is_null() {
                    continue;
                }
                match b.get_mut(k) {
                    Some(slot) if !slot.is_null() => merge_value(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(u)) if u.iter().all(is_device_entry) => {
            for v in u {
                let same = |x: &Value| x["major"] == v["major"] && x["minor"] == v["minor"];
                match b.iter_mut().find(|x| same(x)) {
                    Some(slot) => merge_value(slot, v),
                    None => b.push(v.clone()),
                }
            }
        }
        (b, u) => *b = u.clone(),
    }
}

fn is_device_entry(v: &serde_json::Value) -> bool {
    v.get("major").is_some() && v.get("minor").is_some()
}

/// A size as runc's flags take it (Go's `units.RAMInBytes`): a number,
/// optionally fractional, then an optional binary unit `k m g t p`, with
/// an optional `b`/`ib` (`512m`, `1.5GiB`, `1024`).
pub fn parse_size(s: &str) -> Result<i64> {
    let bad = || Error::msg(format!("invalid size {s:?}"));
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let v = num * (1u64 << shift) as f64;
    if !v.is_finite() || v > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_runc() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("10 KB").unwrap(), 10240);
        for bad in ["", "m", "-1", "1x", "1.2.3k"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_merges_into_the_resources_in_force() {
        let cur: LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 1000, "swap": 2000},
            "cpu": {"shares": 100, "cpus": "0"},
            "blockIO": {"throttleReadBpsDevice": [{"major": 1, "minor": 2, "rate": 3},
                                                   {"major": 4, "minor": 5, "rate": 6}]}
        }))
        .unwrap();
        let up = serde_json::json!({
            "memory": {"limit": 5000},
            "cpu": {"cpus": "1", "mems": null},
            "pids": {"limit": 7},
            "devices": [{"allow": true, "access": "rwm"}],
            "blockIO": {"throttleReadBpsDevice": [{"major": 4, "minor": 5, "rate": 60},
                                                  {"major": 7, "minor": 8, "rate": 9}]}
        });
        let m = merge_resources(Some(&cur), &up).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v["memory"],
            serde_json::json!({"limit": 5000, "swap": 2000})
        );
        assert_eq!(v["cpu"], serde_json::json!({"shares": 100, "cpus": "1"}));
        assert_eq!(v["pids"]["limit"], 7);
        assert_eq!(v["devices"][0]["allow"], false);
        assert_eq!(
            v["blockIO"]["throttleReadBpsDevice"],
            serde_json::json!([{"major": 1, "minor": 2, "rate": 3},
                               {"major": 4, "minor": 5, "rate": 60},
                               {"major": 7, "minor": 8, "rate": 9}])
        );
        let e = merge_resources(None, &serde_json::json!({"memory": {"limit": "x"}})).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.memory.limit: "),
            "{e}"
        );
    }
}
