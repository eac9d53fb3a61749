//! The `cgroup` mount of a config: what the container sees at
//! /sys/fs/cgroup. On a cgroup v2 host that is one cgroup2 mount; on a v1 or
//! hybrid host (like runc) a tmpfs with one directory per host hierarchy,
//! each either a fresh cgroup mount (inside a cgroup namespace) or a bind
//! of the container's own cgroup from the host.

use super::mount_options::MountOptions;
use super::{NONE, paths};
use crate::error::{Context, Result};
use nix::mount::{MsFlags, mount as sys_mount};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// One cgroup hierarchy mounted on the host.
struct Hierarchy {
    mountpoint: PathBuf,
    /// The hierarchy path mounted there (usually `/`).
    root: String,
    fstype: String,
    /// Super options, e.g. `rw,cpu` or `rw,name=systemd`.
    options: String,
}

fn hierarchies() -> Result<Vec<Hierarchy>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || !matches!(post[0], "cgroup" | "cgroup2") {
            continue;
        }
        out.push(Hierarchy {
            mountpoint: PathBuf::from(unescape(pre[4])),
            root: unescape(pre[3]),
            fstype: post[0].to_string(),
            options: post[2].to_string(),
        });
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// This process's cgroup path in the hierarchy identified by `options`.
fn own_cgroup(h: &Hierarchy, proc_cgroup: &str) -> Option<String> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.fstype == "cgroup2" {
            ctrls.is_empty()
        } else {
            let opts: Vec<&str> = h.options.split(',').collect();
            !ctrls.is_empty() && ctrls.split(',').all(|c| opts.contains(&c))
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

pub fn mount(
    root: BorrowedFd<'_>,
    dest: &Path,
    typ: &str,
    opts: &MountOptions,
    cgroupns: bool,
) -> Result<()> {
    let hs = hierarchies()?;
    let proc_cgroup =
        std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
    let pure_v2 = hs
        .iter()
        .any(|h| h.fstype == "cgroup2" && h.mountpoint == Path::new("/sys/fs/cgroup"));
    let base = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let ro = opts.flags & MsFlags::MS_RDONLY;

    if pure_v2 || typ == "cgroup2" {
        let h = hs.iter().find(|h| h.fstype == "cgroup2");
        return mount_hierarchy(root, dest, h, &proc_cgroup, base | ro, cgroupns, "cgroup2");
    }
    let dir = paths::mkdir_all(root, dest, dest)?;
    sys_mount(
        Some("tmpfs"),
        paths::fd_path(&dir).as_str(),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .ctx(|| "mount tmpfs for cgroups")?;
    for h in hs
        .iter()
        .filter(|h| h.mountpoint.parent() == Some(Path::new("/sys/fs/cgroup")))
    {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        let sub = dest.join(name);
        let fstype = h.fstype.clone();
        mount_hierarchy(
            root,
            &sub,
            Some(h),
            &proc_cgroup,
            base | ro,
            cgroupns,
            &fstype,
        )?;
    }
    if !ro.is_empty() {
        let mounted = paths::open_path(root, dest).ctx(|| "open cgroup tmpfs")?;
        sys_mount(
            NONE,
            paths::fd_path(&mounted).as_str(),
            NONE,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | base | ro,
            NONE,
        )
        .ctx(|| "remount cgroup tmpfs read-only")?;
    }
    Ok(())
}

fn mount_hierarchy(
    root: BorrowedFd<'_>,
    dest: &Path,
    h: Option<&Hierarchy>,
    proc_cgroup: &str,
    flags: MsFlags,
    cgroupns: bool,
    fstype: &str,
) -> Result<()> {
    let dir = paths::mkdir_all(root, dest, dest)?;
    let target = paths::fd_path(&dir);
    let what = format!("cgroup hierarchy at {}", dest.display());
    let data = h
        .filter(|_| fstype == "cgroup")
        .map(super_options)
        .unwrap_or_default();
    let data = (!data.is_empty()).then_some(data.as_str());
    // Inside a cgroup namespace mount the hierarchy afresh, unless the
    // kernel refuses (cgroup v1 from a user namespace): then bind it.
    if cgroupns {
        match sys_mount(Some(fstype), target.as_str(), Some(fstype), flags, data) {
            Err(nix::errno::Errno::EPERM) if h.is_some() => {}
            r => return r.ctx(|| format!("mount {what}")),
        }
    }
    match h {
        Some(h) => {
            // Without a cgroup namespace, show only the container's own
            // cgroup, as runc does.
            let own = own_cgroup(h, proc_cgroup).unwrap_or_else(|| "/".into());
            let rel = own
                .strip_prefix(h.root.trim_end_matches('/'))
                .unwrap_or(&own);
            let src = h.mountpoint.join(rel.trim_start_matches('/'));
            sys_mount(
                Some(&src),
                target.as_str(),
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                NONE,
            )
            .ctx(|| format!("bind {what}"))?;
            let mounted = paths::open_path(root, dest).ctx(|| format!("open {what}"))?;
            sys_mount(
                NONE,
                paths::fd_path(&mounted).as_str(),
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                NONE,
            )
            .ctx(|| format!("remount {what}"))
        }
        None => Err(crate::error::Error::msg(format!(
            "{what}: the host has no cgroup2 mount to bind"
        ))),
    }
}

/// The controllers of a v1 hierarchy as mount data (`cpu`, `name=systemd`).
fn super_options(h: &Hierarchy) -> String {
    h.options
        .split(',')
        .filter(|o| !matches!(*o, "rw" | "ro"))
        .collect::<Vec<_>>()
        .join(",")
}
