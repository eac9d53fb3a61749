//! Building the container's root filesystem, in the order the runtime-spec
//! implies: propagation of `/`, the rootfs bind mount, every entry of
//! `mounts`, device nodes, sysctls, masked and read-only paths, then
//! `pivot_root` and the final read-only remount of `/`.

mod copyup;
pub mod devices;
pub mod idmap;
pub mod mount_options;
pub mod paths;

mod cgroupfs;

use crate::error::{Context, Error, Result};
use mount_options::MountOptions;
use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use oci_spec::runtime::{Mount, Spec};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

pub struct Rootfs<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroupns: bool,
    /// Gets the detached idmapped mount for `mounts[N]` (made by capsa on
    /// the host side; see [`idmap`]).
    pub idmapped: &'a dyn Fn(usize) -> Result<OwnedFd>,
}

impl Rootfs<'_> {
    /// Everything done before `pivot_root`, while the host's /proc is still
    /// reachable for the `/proc/self/fd` names of opened paths.
    pub fn prepare(&self) -> Result<()> {
        let linux = self.spec.linux().as_ref();
        // Nothing mounted from here on may propagate back to the host,
        // unless the config asks for a shared root (Kubernetes'
        // Bidirectional volumes): then `/` stays in the host's peer groups,
        // so that a shared volume bound below stays a peer of its host
        // source, and only the mount the rootfs sits on is made private, so
        // that the rootfs and the mounts made on it do not reach the host.
        let prop = linux.and_then(|l| l.rootfs_propagation().as_deref());
        let shared = matches!(prop, Some("shared") | Some("rshared"));
        let setup_prop = match prop {
            Some("shared") | Some("rshared") => MsFlags::MS_SHARED | MsFlags::MS_REC,
            Some("private") | Some("rprivate") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        };
        mount(NONE, "/", NONE, setup_prop, NONE).ctx(|| "set the propagation of /")?;
        if shared {
            make_parent_private(self.rootfs)?;
        }
        mount(
            Some(self.rootfs),
            self.rootfs,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .ctx(|| format!("bind mount rootfs {}", self.rootfs.display()))?;
        let root = nix::fcntl::open(
            self.rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open rootfs {}", self.rootfs.display()))?;
        let root = root.as_fd();

        let mut dev_bound = false;
        for (i, m) in self.spec.mounts().iter().flatten().enumerate() {
            let opts = mount_options::parse(m.options().as_deref().unwrap_or(&[]));
            if paths::relative(m.destination()) == Path::new("dev")
                && (opts.is_bind() || m.typ().as_deref() == Some("bind"))
            {
                dev_bound = true;
            }
            self.mount_one(root, i, m, &opts)
                .map_err(|e| e.prefixed(format!("mounts[{i}] ({})", m.destination().display())))?;
        }
        if !dev_bound {
            devices::create_default(root)?;
        }
        if let Some(l) = linux {
            for (i, d) in l.devices().iter().flatten().enumerate() {
                devices::create(root, d, &format!("linux.devices[{i}]"))?;
            }
            if let Some(sysctl) = l.sysctl() {
                for (k, v) in sysctl {
                    write_sysctl(root, k, v)?;
                }
            }
            for p in l.masked_paths().iter().flatten() {
                mask_path(root, Path::new(p))
                    .map_err(|e| e.prefixed(format!("linux.maskedPaths {p}")))?;
            }
            for p in l.readonly_paths().iter().flatten() {
                readonly_path(root, Path::new(p))
                    .map_err(|e| e.prefixed(format!("linux.readonlyPaths {p}")))?;
            }
        }
        Ok(())
    }

    fn mount_one(
        &self,
        root: BorrowedFd<'_>,
        index: usize,
        m: &Mount,
        opts: &MountOptions,
    ) -> Result<()> {
        let dest = m.destination();
        let typ = m.typ().as_deref().unwrap_or("");
        let bind = typ == "bind" || opts.is_bind();
        if !bind && matches!(typ, "proc" | "sysfs") {
            // CVE-2023-27561: a symlinked /proc or /sys would redirect the
            // mount (and every later write through it) elsewhere.
            match paths::open_in(
                root,
                dest,
                OFlag::O_PATH | OFlag::O_NOFOLLOW,
                ResolveFlag::RESOLVE_NO_SYMLINKS,
            ) {
                Err(Errno::ELOOP) => {
                    return Err(Error::msg(
                        "destination is a symlink; refusing to mount proc or sysfs there",
                    ));
                }
                Ok(fd) => {
                    let kind = fstat(fd.as_fd())
                        .map(|s| SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT)
                        .ctx(|| "stat destination")?;
                    if kind == SFlag::S_IFLNK {
                        return Err(Error::msg(
                            "destination is a symlink; refusing to mount proc or sysfs there",
                        ));
                    }
                    if kind != SFlag::S_IFDIR {
                        return Err(Error::msg("destination is not a directory"));
                    }
                }
                Err(_) => {}
            }
        }
        if !bind && matches!(typ, "cgroup" | "cgroup2") {
            cgroupfs::mount(root, dest, typ, opts, self.cgroupns)?;
            return set_recursive(root, dest, opts);
        }
        let target: OwnedFd;
        if bind {
            target = if idmap::wanted(m, opts) {
                self.attach_idmapped(root, index, dest)?
            } else {
                self.bind(root, m, dest, opts)?
            };
            let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
            if !extra.is_empty() {
                let mounted = reopen(root, dest)?;
                mount(
                    NONE,
                    paths::fd_path(&mounted).as_str(),
                    NONE,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                    NONE,
                )
                .ctx(|| "remount bind mount with its options")?;
            }
        } else {
            target = paths::mkdir_all(root, dest, dest)?;
            let source = m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| typ.to_string());
            let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
            // tmpcopyup: the image's directory, read from under the tmpfs
            // once it is mounted; the tmpfs stays writable until filled.
            let copy_from = if opts.tmpcopyup {
                Some(copyup::open_dir(&target).ctx(|| "tmpcopyup: open the image's directory")?)
            } else {
                None
            };
            let mut flags = opts.flags;
            if copy_from.is_some() {
                flags.remove(MsFlags::MS_RDONLY);
            }
            match mount(
                Some(source.as_str()),
                paths::fd_path(&target).as_str(),
                Some(typ),
                flags,
                data,
            ) {
                // A user namespace that does not own the network namespace
                // may not mount sysfs: show the host's, bound read-only.
                Err(Errno::EPERM) if typ == "sysfs" => {
                    mount(
                        Some("/sys"),
                        paths::fd_path(&target).as_str(),
                        NONE,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        NONE,
                    )
                    .ctx(|| "bind /sys")?;
                    let mounted = reopen(root, dest)?;
                    let flags = kept_flags(mounted.as_fd()) | (opts.flags & MsFlags::MS_RDONLY);
                    mount(
                        NONE,
                        paths::fd_path(&mounted).as_str(),
                        NONE,
                        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                        NONE,
                    )
                    .ctx(|| "remount /sys")?;
                }
                Err(Errno::EINVAL) if data.is_some() => {
                    return Err(Error::msg(format!(
                        "mount {typ}: invalid argument (does {typ} take the options {:?}?)",
                        opts.data
                    )));
                }
                r => r.ctx(|| format!("mount {typ}"))?,
            }
            if let Some(from) = copy_from {
                let mounted = reopen(root, dest)?;
                let into = copyup::open_dir(&mounted).ctx(|| "tmpcopyup: open the tmpfs")?;
                copyup::copy_tree(from.as_fd(), into.as_fd())?;
                if opts.flags.contains(MsFlags::MS_RDONLY) {
                    mount(
                        NONE,
                        paths::fd_path(&mounted).as_str(),
                        NONE,
                        MsFlags::MS_REMOUNT | opts.flags,
                        data,
                    )
                    .ctx(|| "tmpcopyup: remount the filled tmpfs read-only")?;
                }
            }
        }
        drop(target);
        set_recursive(root, dest, opts)?;
        for p in &opts.propagation {
            let mounted = reopen(root, dest)?;
            mount(NONE, paths::fd_path(&mounted).as_str(), NONE, *p, NONE)
                .ctx(|| "set mount propagation")?;
        }
        Ok(())
    }

    /// A plain bind mount of the source on `dest`; returns the handle on
    /// the mount point.
    fn bind(
        &self,
        root: BorrowedFd<'_>,
        m: &Mount,
        dest: &Path,
        opts: &MountOptions,
    ) -> Result<OwnedFd> {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::msg("bind mount without a source"))?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            self.bundle.join(src)
        };
        let meta = std::fs::metadata(&src).ctx(|| format!("stat {}", src.display()))?;
        let target = if meta.is_dir() {
            paths::mkdir_all(root, dest, dest)?
        } else {
            paths::ensure_file(root, dest, dest)?
        };
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        mount(
            Some(&src),
            paths::fd_path(&target).as_str(),
            NONE,
            flags,
            NONE,
        )
        .ctx(|| format!("bind mount {}", src.display()))?;
        Ok(target)
    }

    /// `mounts[index]`, an idmapped bind mount: the detached tree capsa
    /// made on the host side, attached where `dest` resolves inside the
    /// rootfs; returns the handle on the mount point.
    fn attach_idmapped(&self, root: BorrowedFd<'_>, index: usize, dest: &Path) -> Result<OwnedFd> {
        let tree = (self.idmapped)(index)?;
        let st = fstat(tree.as_fd()).ctx(|| "stat the idmapped mount")?;
        let target = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            paths::mkdir_all(root, dest, dest)?
        } else {
            paths::ensure_file(root, dest, dest)?
        };
        crate::sys::move_mount_onto(tree.as_fd(), target.as_fd())
            .ctx(|| "attach the idmapped mount")?;
        Ok(target)
    }

    /// Makes the rootfs the container's `/`.
    pub fn pivot(&self, no_pivot: bool) -> Result<()> {
        if no_pivot {
            nix::unistd::chdir(self.rootfs).ctx(|| format!("chdir {}", self.rootfs.display()))?;
            mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE).ctx(|| "move rootfs to /")?;
            nix::unistd::chroot(".").ctx(|| "chroot")?;
        } else {
            let new = nix::fcntl::open(
                self.rootfs,
                OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "open rootfs")?;
            let old = nix::fcntl::open(
                "/",
                OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "open /")?;
            nix::unistd::fchdir(&new).ctx(|| "chdir to rootfs")?;
            // With the same path for both, the old root ends up stacked
            // under the new one, where it can be detached.
            nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root")?;
            nix::unistd::fchdir(&old).ctx(|| "chdir to old root")?;
            mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
                .ctx(|| "make old root a slave")?;
            umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach old root")?;
        }
        nix::unistd::chdir("/").ctx(|| "chdir /")?;
        Ok(())
    }

    /// After pivoting: `linux.rootfsPropagation` and `root.readonly`.
    pub fn finish(&self) -> Result<()> {
        let prop = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.rootfs_propagation().as_deref());
        if let Some(p) = prop {
            let flags = mount_options::propagation(p).ok_or_else(|| {
                Error::msg(format!(
                    "config.json: linux.rootfsPropagation: unknown propagation {p:?}"
                ))
            })?;
            mount(NONE, "/", NONE, flags, NONE)
                .ctx(|| format!("linux.rootfsPropagation: set {p} on /"))?;
        }
        if self.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            let root = nix::fcntl::open(
                "/",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "open /")?;
            let flags = kept_flags(root.as_fd()) | MsFlags::MS_RDONLY;
            mount(
                NONE,
                "/",
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                NONE,
            )
            .ctx(|| "root.readonly: remount / read-only")?;
        }
        Ok(())
    }
}

/// The recursive attributes (`rro`, `rnosuid`, ...) of a mount, applied
/// to it and every mount below it.
fn set_recursive(root: BorrowedFd<'_>, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.rec.is_empty() {
        return Ok(());
    }
    let mounted = reopen(root, dest)?;
    crate::sys::mount_setattr_rec(mounted.as_fd(), opts.rec.set, opts.rec.clr).map_err(|e| {
        let why = if e == Errno::ENOSYS {
            " (recursive mount options need Linux 5.12 or later)".to_string()
        } else {
            String::new()
        };
        Error::msg(format!(
            "set the recursive mount options (mount_setattr AT_RECURSIVE): {}{why}",
            crate::error::errno_text(e)
        ))
    })
}

/// Opens `dest` again after something was mounted there, so the handle
/// refers to the new mount rather than the directory underneath.
fn reopen(root: BorrowedFd<'_>, dest: &Path) -> Result<OwnedFd> {
    paths::open_path(root, dest).ctx(|| format!("open {}", dest.display()))
}

/// The per-mount flags of the mount holding `fd`, to carry over on a remount.
fn kept_flags(fd: BorrowedFd<'_>) -> MsFlags {
    let mut flags = MsFlags::empty();
    if let Ok(st) = fstatvfs(fd) {
        let f = st.flags();
        for (st_flag, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            // ST_RELATIME, which not every libc names.
            (FsFlags::from_bits_retain(0x1000), MsFlags::MS_RELATIME),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        ] {
            if f.contains(st_flag) {
                flags |= ms;
            }
        }
    }
    flags
}

/// Hides a path: an empty read-only tmpfs over a directory, the
/// container's /dev/null (checked to be the real device) over anything else.
fn mask_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let fd = match paths::open_path(root, path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e).ctx(|| "open"),
    };
    let st = fstat(fd.as_fd()).ctx(|| "stat")?;
    let target = paths::fd_path(&fd);
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        mount(
            Some("tmpfs"),
            target.as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            NONE,
        )
        .ctx(|| "mount tmpfs")
    } else {
        let null = dev_null(root)?;
        mount(
            Some(paths::fd_path(&null).as_str()),
            target.as_str(),
            NONE,
            MsFlags::MS_BIND,
            NONE,
        )
        .ctx(|| "bind /dev/null")
    }
}

/// CVE-2025-31133: the /dev/null used for masking must really be the
/// null device, not a symlink or file the image planted.
fn dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd> {
    let is_null = |fd: &OwnedFd| {
        fstat(fd.as_fd()).is_ok_and(|s| {
            SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
                && nix::sys::stat::major(s.st_rdev) == 1
                && nix::sys::stat::minor(s.st_rdev) == 3
        })
    };
    if let Ok(fd) = paths::open_in(
        root,
        Path::new("/dev/null"),
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    ) && is_null(&fd)
    {
        return Ok(fd);
    }
    let fd = nix::fcntl::open(
        "/dev/null",
        OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .ctx(|| "open host /dev/null")?;
    if is_null(&fd) {
        Ok(fd)
    } else {
        Err(Error::msg("/dev/null is not the null device"))
    }
}

/// Bind-mounts a path onto itself and makes that mount read-only.
fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let fd = match paths::open_path(root, path) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e).ctx(|| "open"),
    };
    let p = paths::fd_path(&fd);
    mount(
        Some(p.as_str()),
        p.as_str(),
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .ctx(|| "bind mount")?;
    let mounted = reopen(root, path)?;
    let flags = kept_flags(mounted.as_fd()) | MsFlags::MS_RDONLY;
    mount(
        NONE,
        paths::fd_path(&mounted).as_str(),
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_REC | flags,
        NONE,
    )
    .ctx(|| "remount read-only")
}

/// Writes one `linux.sysctl` entry through the container's own procfs:
/// its /proc checked to be a procfs, and the entry opened beneath it
/// without crossing a mount (a host file bind-mounted over a sysctl, as in
/// CVE-2025-52881) or following a symlink, and checked to be on procfs.
fn write_sysctl(root: BorrowedFd<'_>, key: &str, value: &str) -> Result<()> {
    let field = format!("config.json: linux.sysctl[{key:?}]");
    let rel: PathBuf = Path::new("sys").join(key.replace('.', "/"));
    let proc = paths::open_in(
        root,
        Path::new("/proc"),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .ctx(|| format!("{field}: open /proc"))?;
    if !crate::sys::is_procfs(proc.as_fd()) {
        return Err(Error::msg(format!(
            "{field}: /proc is not a procfs (is /proc mounted?)"
        )));
    }
    crate::sys::write_proc_file(proc.as_fd(), &rel, value.as_bytes()).map_err(|e| {
        let what = match e {
            Errno::EXDEV => "crosses a mount or is not on procfs".to_string(),
            e => crate::error::errno_text(e),
        };
        Error::msg(format!(
            "{field}: write {value:?} to /proc/{}: {what}",
            rel.display()
        ))
    })
}

/// Makes the mount `rootfs` lies on private in this mount namespace (only
/// this namespace's copy leaves its peer group), so that binding the
/// rootfs and mounting on it propagate nowhere.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let id = crate::sys::mount_id(rootfs).ctx(|| format!("statx {}", rootfs.display()))?;
    let point = idmap::mount_lines()
        .into_iter()
        .find(|l| l.id == id)
        .map(|l| l.point)
        .ok_or_else(|| {
            Error::msg(format!(
                "the mount {} is on is not in /proc/thread-self/mountinfo",
                rootfs.display()
            ))
        })?;
    mount(NONE, &point, NONE, MsFlags::MS_PRIVATE, NONE)
        .ctx(|| format!("make {} (the rootfs's mount) private", point.display()))
}
