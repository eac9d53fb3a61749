//! The host's cgroup hierarchies, read from /proc/self/mountinfo, and a
//! process's place in each, read from /proc/PID/cgroup.

use crate::error::{Context, Result};
use std::path::PathBuf;

/// The v1 controllers capsa knows by name (any other mount option of a v1
/// cgroup mount is a flag such as `xattr` or `clone_children`).
pub const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// The hierarchy path mounted there (usually `/`).
    pub root: String,
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: String,
    /// Super options, e.g. `rw,cpu` or `rw,name=systemd`.
    pub options: String,
}

impl Hierarchy {
    pub fn is_v2(&self) -> bool {
        self.fstype == "cgroup2"
    }

    /// What this v1 hierarchy is known by: its controllers and its
    /// `name=` if any (`["cpu", "cpuacct"]`, `["name=systemd"]`).
    pub fn names(&self) -> Vec<&str> {
        self.options
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
            .collect()
    }

    /// The path of `cgroup` (a path of this hierarchy, as in
    /// /proc/PID/cgroup) on the host, or `None` if it is outside of what is
    /// mounted here.
    pub fn dir_of(&self, cgroup: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rel = if root.is_empty() {
            cgroup
        } else {
            cgroup.strip_prefix(root)?
        };
        if !rel.is_empty() && !rel.starts_with('/') {
            return None;
        }
        Some(self.mountpoint.join(rel.trim_start_matches('/')))
    }
}

/// Every cgroup and cgroup2 mount of this process's mount namespace that
/// is visible (a hierarchy mounted twice is listed twice). A mount that
/// another one hides, mounted later on the same path or on a directory
/// above it (a tmpfs over /sys/fs/cgroup/unified, as sandboxes and nested
/// containers do), is left out, and each one kept is checked with statfs
/// to really be a cgroup filesystem at its path.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let text = read_proc("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    let mut hs = parse_mountinfo(&text);
    hs.retain(|h| {
        let want = if h.is_v2() {
            nix::sys::statfs::CGROUP2_SUPER_MAGIC
        } else {
            nix::sys::statfs::CGROUP_SUPER_MAGIC
        };
        nix::sys::statfs::statfs(&h.mountpoint).is_ok_and(|s| s.filesystem_type() == want)
    });
    Ok(hs)
}

/// A procfs file, which reports no size: read into a page-sized buffer
/// at once rather than in reads growing from 32 bytes.
fn read_proc(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::with_capacity(8192);
    std::fs::File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// [`hierarchies`], read once per process (a command that checks a state
/// and then its init needs them twice); `None` if /proc is not there.
pub fn hierarchies_once() -> Option<&'static [Hierarchy]> {
    static ONCE: std::sync::OnceLock<Option<Vec<Hierarchy>>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| hierarchies().ok()).as_deref()
}

/// The cgroup mounts of a mountinfo text that no later mount hides.
pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut points: Vec<PathBuf> = Vec::new();
    let mut found: Vec<(usize, Hierarchy)> = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 {
            continue;
        }
        let mountpoint = PathBuf::from(unescape(pre[4]));
        if post.len() >= 3 && matches!(post[0], "cgroup" | "cgroup2") {
            found.push((
                points.len(),
                Hierarchy {
                    mountpoint: mountpoint.clone(),
                    root: unescape(pre[3]),
                    fstype: post[0].to_string(),
                    options: post[2].to_string(),
                },
            ));
        }
        points.push(mountpoint);
    }
    found
        .into_iter()
        .filter(|(i, h)| {
            !points[i + 1..]
                .iter()
                .any(|later| h.mountpoint.starts_with(later))
        })
        .map(|(_, h)| h)
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The text of /proc/PID/cgroup (`self` for this process).
pub fn proc_cgroup(pid: &str) -> Result<String> {
    let p = format!("/proc/{pid}/cgroup");
    read_proc(&p).ctx(|| format!("read {p}"))
}

/// The cgroup path of the process whose /proc/PID/cgroup is `proc_cgroup`
/// in hierarchy `h`.
pub fn cgroup_in(h: &Hierarchy, proc_cgroup: &str) -> Option<String> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.is_v2() {
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

/// How the host's cgroups are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 hierarchy (systemd's "unified" mount),
    /// which is managed as v1, as runc does.
    Hybrid,
    /// Only cgroup2.
    Unified,
}

impl Mode {
    pub fn of(hs: &[Hierarchy]) -> Option<Mode> {
        let v1 = hs.iter().any(|h| !h.is_v2() && !h.names().is_empty());
        let v2 = hs.iter().any(Hierarchy::is_v2);
        match (v1, v2) {
            (true, false) => Some(Mode::Legacy),
            (true, true) => Some(Mode::Hybrid),
            (false, true) => Some(Mode::Unified),
            (false, false) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Legacy => "v1",
            Mode::Hybrid => "hybrid",
            Mode::Unified => "v2",
        }
    }
}

/// The cgroup2 hierarchy, if mounted.
pub fn unified(hs: &[Hierarchy]) -> Option<&Hierarchy> {
    hs.iter().find(|h| h.is_v2())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 23 0:32 /sub /mnt/mem\\040x rw - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_layout() {
        let hs = parse_mountinfo(HYBRID);
        assert_eq!(hs.len(), 6);
        assert_eq!(Mode::of(&hs), Some(Mode::Hybrid));
        assert_eq!(hs[0].names(), ["cpu"]);
        assert_eq!(hs[3].names(), ["name=systemd"]);
        assert_eq!(
            unified(&hs).unwrap().mountpoint,
            std::path::Path::new("/sys/fs/cgroup/unified")
        );
        let pc = "4:memory:/process_api/abc\n9:name=systemd:/\n0::/x\n";
        assert_eq!(cgroup_in(&hs[2], pc).as_deref(), Some("/process_api/abc"));
        assert_eq!(cgroup_in(&hs[4], pc).as_deref(), Some("/x"));
        assert_eq!(cgroup_in(&hs[0], pc), None);
    }

    #[test]
    fn dir_of_respects_the_mount_root() {
        let h = Hierarchy {
            mountpoint: "/mnt".into(),
            root: "/sub".into(),
            fstype: "cgroup".into(),
            options: "rw,memory".into(),
        };
        assert_eq!(h.dir_of("/sub/a"), Some(PathBuf::from("/mnt/a")));
        assert_eq!(h.dir_of("/sub"), Some(PathBuf::from("/mnt")));
        assert_eq!(h.dir_of("/subx"), None);
        assert_eq!(h.dir_of("/other"), None);
    }

    #[test]
    fn shadowed_mounts_are_left_out() {
        let text = format!(
            "{HYBRID}\
50 41 0:60 / /sys/fs/cgroup/unified rw - tmpfs tmpfs rw
51 31 0:61 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw
52 51 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
53 23 0:62 / /mnt rw - tmpfs tmpfs rw
"
        );
        let hs = parse_mountinfo(&text);
        let points: Vec<_> = hs
            .iter()
            .map(|h| h.mountpoint.display().to_string())
            .collect();
        // unified hidden by a tmpfs; memory hidden, then mounted again on
        // top; /mnt/mem x hidden by a tmpfs over /mnt.
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/cpuacct",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/memory"
            ]
        );
        assert_eq!(Mode::of(&hs), Some(Mode::Legacy));
    }

    #[test]
    fn modes() {
        let v2 = parse_mountinfo("1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(Mode::of(&v2), Some(Mode::Unified));
        assert_eq!(Mode::of(&[]), None);
    }
}
