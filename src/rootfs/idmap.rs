//! Idmapped bind mounts: `mounts[].uidMappings` / `gidMappings` and the
//! `idmap` / `ridmap` options (runtime-spec 1.2, config.md "Mounts").
//!
//! The kernel lets only a process privileged over the source's filesystem
//! (for a host directory, the host's root) set `MOUNT_ATTR_IDMAP`, which
//! the container's init, once in its user namespace, never is. So the work
//! is split between the init and capsa, its parent on the host side:
//!
//! 1. the init reaches the mount in `mounts` order and asks capsa for it
//!    over the sync channel ([`crate::process::sync::Msg::IdmapMount`]);
//! 2. capsa ([`Builder`]), in a thread that joins the init's mount
//!    namespace, clones the source with `open_tree(OPEN_TREE_CLONE)` (with
//!    `AT_RECURSIVE` for `rbind`) and sets `MOUNT_ATTR_IDMAP` on the copy
//!    (on every mount of it for `ridmap`) with a user namespace whose maps
//!    are the mount's, then sends the detached mount to the init. Cloning
//!    in the container's mount namespace resolves the source as a plain
//!    bind mount's would be, at the same point of the setup, and keeps the
//!    locks the kernel puts on the host's mounts for a user namespace: a
//!    host mount that is read-only stays so, and submounts of an `rbind`
//!    cannot be unmounted to reveal what they cover;
//! 3. the init `move_mount`s it onto the destination it opened inside the
//!    rootfs (`RESOLVE_IN_ROOT`) and applies the mount's other options as
//!    for any bind mount ([`super::Rootfs`]).
//!
//! The user namespace that carries the maps is the container's own when
//! the mount has no mappings (`idmap` alone, as the spec allows) or the
//! same ones as `linux.uidMappings`/`gidMappings`; otherwise a child of
//! capsa is cloned into a new user namespace, capsa writes the maps, keeps
//! `/proc/CHILD/ns/user` open and lets the child exit at once.

use super::mount_options::{self, MountOptions};
use crate::error::{Context, Error, Result, errno_text};
use crate::spec::{CONFIG, check_map_list, field_err};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Whether `m` asks for an idmapped mount (an option or mappings).
pub fn wanted(m: &Mount, opts: &MountOptions) -> bool {
    opts.idmap.is_some() || explicit_maps(m).is_some()
}

/// The mount's own mappings; `None` when neither list has an entry (the
/// spec lets `idmap` come with empty lists: the container's maps apply).
fn explicit_maps(m: &Mount) -> Option<(&[LinuxIdMapping], &[LinuxIdMapping])> {
    let uid = m.uid_mappings().as_deref().unwrap_or(&[]);
    let gid = m.gid_mappings().as_deref().unwrap_or(&[]);
    (!uid.is_empty() || !gid.is_empty()).then_some((uid, gid))
}

fn is_bind(m: &Mount, opts: &MountOptions) -> bool {
    m.typ().as_deref() == Some("bind") || opts.is_bind()
}

/// Checks every idmapped mount of a config before anything is made:
/// bind mounts only, both lists or neither, a user namespace to take the
/// maps from when the mount has none, valid ranges, and root.
pub fn validate(spec: &Spec, userns: bool) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = mount_options::parse(m.options().as_deref().unwrap_or(&[]));
        if !wanted(m, &opts) {
            continue;
        }
        let field = format!("mounts[{i}]");
        if !is_bind(m, &opts) {
            return Err(field_err(
                &field,
                "idmapped mounts (idmap, ridmap, uidMappings, gidMappings) are only supported \
                 for bind mounts",
            ));
        }
        match explicit_maps(m) {
            Some((uid, gid)) => {
                for (name, maps, other) in [
                    ("uidMappings", uid, "gidMappings"),
                    ("gidMappings", gid, "uidMappings"),
                ] {
                    if maps.is_empty() {
                        return Err(field_err(
                            format!("{field}.{name}"),
                            format!("missing: an idmapped mount with {other} needs both"),
                        ));
                    }
                    check_map_list(&format!("{field}.{name}"), maps)?;
                }
            }
            None if !userns => {
                return Err(field_err(
                    format!("{field}.options"),
                    "idmap without uidMappings and gidMappings takes the container's user \
                     namespace mappings, but linux.namespaces has no user namespace",
                ));
            }
            None => {}
        }
        if !nix::unistd::geteuid().is_root() || !crate::rootless::in_initial_userns() {
            return Err(field_err(
                &field,
                "idmapped mounts need capsa to run as root (the kernel lets only a user \
                 privileged over the source's filesystem map it)",
            ));
        }
    }
    Ok(())
}

/// Makes the idmapped mounts the init asks for during `create`, on the
/// host side. Holds the user namespaces it made until it is dropped.
pub struct Builder<'a> {
    spec: &'a Spec,
    bundle: &'a Path,
    init: Pid,
    /// Whether the init's user namespace is one the clone created (else
    /// one joined by path, or none).
    new_userns: bool,
    /// The container's user namespace, once opened.
    own_userns: Option<OwnedFd>,
    /// User namespaces made for mounts with mappings of their own.
    made: Vec<(Ranges, Ranges, OwnedFd)>,
}

/// Id mappings as (container id, host id, size) triples.
type Ranges = Vec<(u32, u32, u32)>;

fn ranges(maps: &[LinuxIdMapping]) -> Ranges {
    maps.iter()
        .map(|m| (m.container_id(), m.host_id(), m.size()))
        .collect()
}

impl<'a> Builder<'a> {
    pub fn new(spec: &'a Spec, bundle: &'a Path, init: Pid, new_userns: bool) -> Builder<'a> {
        Builder {
            spec,
            bundle,
            init,
            new_userns,
            own_userns: None,
            made: Vec::new(),
        }
    }

    /// The detached, idmapped mount for `mounts[index]`. Errors read
    /// `config.json: mounts[3]: idmapped mount of SRC on DEST: why`.
    pub fn build(&mut self, index: u32) -> Result<OwnedFd> {
        let i = index as usize;
        let m = self
            .spec
            .mounts()
            .as_ref()
            .and_then(|m| m.get(i))
            .ok_or_else(|| Error::msg(format!("sync socket: there is no mounts[{i}]")))?;
        let opts = mount_options::parse(m.options().as_deref().unwrap_or(&[]));
        if !wanted(m, &opts) || !is_bind(m, &opts) {
            crate::bail!("sync socket: mounts[{i}] is not an idmapped bind mount");
        }
        let source = m.source().as_deref().unwrap_or(Path::new(""));
        let what = format!(
            "{CONFIG}: mounts[{i}]: idmapped mount of {} on {}",
            source.display(),
            m.destination().display()
        );
        if source.as_os_str().is_empty() {
            return Err(Error::msg(format!("{what}: no source")));
        }
        let source = self.bundle.join(source);
        let rbind = opts.flags.contains(MsFlags::MS_REC);
        let ridmap = opts.idmap == Some(true);
        let mntns = nix::fcntl::open(
            format!("/proc/{}/ns/mnt", self.init).as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("{what}: open the container's mount namespace"))?;
        let userns = self.userns_for(m).map_err(|e| e.prefixed(&what))?;
        clone_idmapped(mntns.as_fd(), &source, rbind, ridmap, userns)
            .map_err(|why| Error::msg(format!("{what}: {why}")))
    }

    /// The user namespace whose maps the mount takes.
    fn userns_for(&mut self, m: &Mount) -> Result<BorrowedFd<'_>> {
        let linux = self.spec.linux().as_ref();
        let Some((uid, gid)) = explicit_maps(m) else {
            return self.own_userns();
        };
        let (uid, gid) = (ranges(uid), ranges(gid));
        let same = |maps: Option<&Vec<LinuxIdMapping>>, want: &[(u32, u32, u32)]| {
            maps.is_some_and(|m| ranges(m) == want)
        };
        if self.new_userns
            && same(linux.and_then(|l| l.uid_mappings().as_ref()), &uid)
            && same(linux.and_then(|l| l.gid_mappings().as_ref()), &gid)
        {
            return self.own_userns();
        }
        let at = match self
            .made
            .iter()
            .position(|(u, g, _)| *u == uid && *g == gid)
        {
            Some(at) => at,
            None => {
                let fd = new_userns(&uid, &gid)?;
                self.made.push((uid, gid, fd));
                self.made.len() - 1
            }
        };
        Ok(self.made[at].2.as_fd())
    }

    /// The container's user namespace: the init's new one (its maps are
    /// written before the init goes on), or the one it joins by path.
    fn own_userns(&mut self) -> Result<BorrowedFd<'_>> {
        if self.own_userns.is_none() {
            let path = if self.new_userns {
                PathBuf::from(format!("/proc/{}/ns/user", self.init))
            } else {
                crate::namespaces::configured(self.spec)
                    .find(|n| n.typ() == LinuxNamespaceType::User)
                    .and_then(|n| n.path().clone())
                    .ok_or_else(|| Error::msg("the container has no user namespace"))?
            };
            let fd = nix::fcntl::open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open the container's user namespace {}", path.display()))?;
            self.own_userns = Some(fd);
        }
        Ok(self.own_userns.as_ref().expect("just set").as_fd())
    }
}

/// A user namespace with these maps (container id, host id, size): a
/// child of capsa is cloned into a new one and waits while capsa writes
/// its maps and opens it, then exits; the namespace lives on in the fd.
fn new_userns(uid: &[(u32, u32, u32)], gid: &[(u32, u32, u32)]) -> Result<OwnedFd> {
    let (wait_r, wait_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    let cloned = crate::sys::clone_into_namespaces(libc::CLONE_NEWUSER)
        .ctx(|| "clone a process into a new user namespace for the mount's mappings")?;
    let Some(pid) = cloned else {
        // The child: wait for end-of-file (capsa has the namespace, or is
        // gone), then leave without running anything of capsa's.
        drop(wait_w);
        let mut b = [0u8; 1];
        while nix::unistd::read(&wait_r, &mut b) == Err(Errno::EINTR) {}
        crate::sys::exit_now(0);
    };
    drop(wait_r);
    let result = (|| {
        for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
            let text: String = maps
                .iter()
                .map(|(c, h, s)| format!("{c} {h} {s}\n"))
                .collect();
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, text).ctx(|| format!("write {path}"))?;
        }
        let path = format!("/proc/{pid}/ns/user");
        nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {path}"))
    })();
    drop(wait_w);
    let _ = nix::sys::wait::waitpid(pid, None);
    result
}

/// In a thread that joins the container's mount namespace `mntns`: the
/// detached copy of `source` (of its whole tree with `rbind`), idmapped
/// with `userns` (every mount of it with `ridmap`). The error is the
/// reason, worded for the user.
fn clone_idmapped(
    mntns: BorrowedFd<'_>,
    source: &Path,
    rbind: bool,
    ridmap: bool,
    userns: BorrowedFd<'_>,
) -> std::result::Result<OwnedFd, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // Only this thread changes namespace: it gets a root and cwd
            // of its own first (setns refuses a shared one), and ends
            // before capsa does anything else.
            unshare(CloneFlags::CLONE_FS)
                .map_err(|e| format!("unshare(CLONE_FS): {}", errno_text(e)))?;
            setns(mntns, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("join the container's mount namespace: {}", errno_text(e)))?;
            let tree = crate::sys::open_tree_clone(source, rbind)
                .map_err(|e| open_tree_error(source, rbind, e))?;
            match crate::sys::mount_setattr_idmap(tree.as_fd(), userns, ridmap) {
                Ok(()) => Ok(tree),
                Err(e) => {
                    drop(tree);
                    Err(refusal(source, rbind && ridmap, userns, e))
                }
            }
        })
        .join()
        .unwrap_or_else(|_| Err("the mount thread failed".to_string()))
    })
}

fn open_tree_error(source: &Path, rbind: bool, e: Errno) -> String {
    let hint = if e == Errno::EINVAL && !rbind {
        " (a bind without rbind of a directory with mounts below it is refused in a user \
         namespace, and an unbindable mount cannot be bound)"
    } else {
        ""
    };
    format!("open_tree {}: {}{hint}", source.display(), errno_text(e))
}

/// Why mount_setattr(MOUNT_ATTR_IDMAP) refused, naming the filesystem.
fn refusal(source: &Path, recursive: bool, userns: BorrowedFd<'_>, e: Errno) -> String {
    match e {
        Errno::ENOSYS => "this kernel has no idmapped mounts (they need Linux 5.12)".into(),
        Errno::EINVAL | Errno::EOPNOTSUPP => match refusing_fs(source, recursive, userns) {
            Some((fs, None)) => format!("{fs} does not support idmapped mounts"),
            Some((fs, Some(at))) => format!(
                "{fs} mounted at {} (below the source: ridmap maps it too) does not support \
                 idmapped mounts",
                at.display()
            ),
            None => format!(
                "mount_setattr(MOUNT_ATTR_IDMAP): {} (a filesystem of the source does not \
                 support idmapped mounts)",
                errno_text(e)
            ),
        },
        Errno::EPERM => format!(
            "{}: the kernel refused to map it: {} (the mount is idmapped already, or its \
             filesystem belongs to another user namespace)",
            fs_of(source).unwrap_or_else(|| "the source's filesystem".into()),
            errno_text(e)
        ),
        _ => format!("mount_setattr(MOUNT_ATTR_IDMAP): {}", errno_text(e)),
    }
}

/// One line of mountinfo: mount id, mount point, filesystem type.
pub(crate) struct MountLine {
    pub id: u64,
    pub point: PathBuf,
    pub fstype: String,
}

/// This thread's mounts (/proc/thread-self: capsa's main thread is in
/// another mount namespace).
pub(crate) fn mount_lines() -> Vec<MountLine> {
    let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default();
    text.lines().filter_map(parse_mount_line).collect()
}

fn parse_mount_line(line: &str) -> Option<MountLine> {
    let (pre, post) = line.split_once(" - ")?;
    let mut f = pre.split(' ');
    let id = f.next()?.parse().ok()?;
    let point = unescape(f.nth(3)?);
    let fstype = post.split(' ').next()?.to_string();
    Some(MountLine { id, point, fstype })
}

/// mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1] <= b'3'
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u8, |acc, c| acc * 8 + (c - b'0'));
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The type of the filesystem `path` is on, from mountinfo.
fn fs_of(path: &Path) -> Option<String> {
    let id = crate::sys::mount_id(path).ok()?;
    mount_lines()
        .into_iter()
        .find(|l| l.id == id)
        .map(|l| l.fstype)
}

/// Which filesystem refuses the idmapping: the source's own, or (for
/// ridmap over an rbind) one mounted below it, with its mount point. Each
/// candidate is tried alone, on a detached copy that is dropped at once.
fn refusing_fs(
    source: &Path,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> Option<(String, Option<PathBuf>)> {
    let refuses = |p: &Path| {
        crate::sys::open_tree_clone(p, true)
            .and_then(|t| crate::sys::mount_setattr_idmap(t.as_fd(), userns, false))
            .is_err_and(|e| e == Errno::EINVAL || e == Errno::EOPNOTSUPP)
    };
    if refuses(source) {
        return Some((fs_of(source)?, None));
    }
    if recursive {
        let top = std::fs::canonicalize(source).ok()?;
        for l in mount_lines() {
            if l.point != top && l.point.starts_with(&top) && refuses(&l.point) {
                return Some((l.fstype, Some(l.point)));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let l = parse_mount_line(
            "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        )
        .unwrap();
        assert_eq!(l.id, 36);
        assert_eq!(l.point, Path::new("/mnt/a b"));
        assert_eq!(l.fstype, "ext3");
        assert_eq!(unescape("a\\134b\\"), Path::new("a\\b\\"));
    }
}
