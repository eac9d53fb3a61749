//! Where a container's cgroup goes: `linux.cgroupsPath` taken as runc takes
//! it (absolute: from each hierarchy's root; relative: from the runtime's
//! own cgroup in that hierarchy), the container id when it is absent, and
//! systemd's `slice:prefix:name` turned into the path systemd would use.

use crate::bail;
use crate::error::Result;
use std::path::{Component, Path, PathBuf};

/// A cgroup path before it is placed in a hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inner {
    /// From the root of each hierarchy.
    Absolute(PathBuf),
    /// From the runtime's own cgroup in each hierarchy.
    Relative(PathBuf),
}

impl Inner {
    /// The path inside a hierarchy, given the runtime's own cgroup there.
    pub fn within(&self, own: &str) -> PathBuf {
        match self {
            Inner::Absolute(p) => PathBuf::from("/").join(p),
            Inner::Relative(p) => PathBuf::from(own).join(p),
        }
    }
}

const FIELD: &str = "config.json: linux.cgroupsPath";

/// The container's cgroup path from `linux.cgroupsPath` (or its absence).
pub fn inner(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<Inner> {
    let given = cgroups_path.filter(|p| !p.is_empty());
    if systemd {
        return systemd_path(given.unwrap_or(""), id).map(Inner::Absolute);
    }
    let Some(p) = given else {
        return Ok(Inner::Relative(PathBuf::from(id)));
    };
    let clean = clean(p);
    if clean.as_os_str().is_empty() {
        bail!("{FIELD}: {p:?} names the root cgroup; a container needs a cgroup of its own");
    }
    Ok(if p.starts_with('/') {
        Inner::Absolute(clean)
    } else {
        Inner::Relative(clean)
    })
}

/// The path without `.` and with every `..` resolved lexically, never
/// above its start (so `../../x` is `x`, as runc cleans it); relative.
fn clean(p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The systemd unit a container's cgroup is: its name and the slice it
/// goes in. A unit that is itself a slice has no `Slice=` of its own: its
/// parent follows from its name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SystemdUnit {
    pub name: String,
    pub slice: String,
}

impl SystemdUnit {
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

/// systemd's `slice:prefix:name` as a unit: `prefix-name.scope` in the
/// slice (`system.slice` when empty), or `name` itself when it is a slice
/// (which systemd places by its name: `a-b.slice` in `a.slice`, so a slice
/// given with another parent is refused). An empty string means runc's
/// default, `system.slice:capsa:ID`.
pub fn systemd_unit(p: &str, id: &str) -> Result<SystemdUnit> {
    let (slice, prefix, name) = if p.is_empty() {
        ("", "capsa", id)
    } else {
        let parts: Vec<&str> = p.split(':').collect();
        if parts.len() != 3 {
            bail!(
                "{FIELD}: expected \"slice:prefix:name\" for systemd cgroups (--systemd-cgroup), got {p:?}"
            );
        }
        (parts[0], parts[1], parts[2])
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    expand_slice(slice)?;
    if name.is_empty() || name.contains('/') {
        bail!("{FIELD}: invalid unit name {name:?}");
    }
    // The unit is one directory: a prefix with a `/` would put it
    // elsewhere (`../..` out of the slice, and out of the hierarchy).
    if prefix.contains('/') {
        bail!("{FIELD}: invalid unit prefix {prefix:?}");
    }
    if name.ends_with(".slice") {
        let own = expand_slice(name)?;
        let parent = own.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        if parent != expand_slice(slice)? {
            bail!(
                "{FIELD}: systemd places slice {name:?} by its name, not in {slice:?} (give its parent slice, or -.slice)"
            );
        }
        return Ok(SystemdUnit {
            name: name.to_string(),
            slice: slice.to_string(),
        });
    }
    let name = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if name.len() > 255 || name.chars().any(|c| c.is_control() || c == '\\') {
        bail!("{FIELD}: invalid unit name {name:?}");
    }
    Ok(SystemdUnit {
        name,
        slice: slice.to_string(),
    })
}

/// The cgroup path systemd gives `unit`.
fn systemd_path(p: &str, id: &str) -> Result<PathBuf> {
    let unit = systemd_unit(p, id)?;
    if unit.is_slice() {
        return expand_slice(&unit.name);
    }
    let mut path = expand_slice(&unit.slice)?;
    path.push(unit.name);
    Ok(path)
}

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = || format!("{FIELD}: invalid systemd slice name {slice:?}");
    let Some(base) = slice.strip_suffix(".slice") else {
        bail!("{}", bad());
    };
    if slice.contains('/') {
        bail!("{}", bad());
    }
    if base == "-" {
        return Ok(PathBuf::new());
    }
    let mut out = PathBuf::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            bail!("{}", bad());
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupfs_paths() {
        assert_eq!(
            inner(None, "c1", false).unwrap(),
            Inner::Relative("c1".into())
        );
        assert_eq!(
            inner(Some("/a/../b/./c"), "x", false).unwrap(),
            Inner::Absolute("b/c".into())
        );
        assert_eq!(
            inner(Some("../../x/y"), "x", false).unwrap(),
            Inner::Relative("x/y".into())
        );
        assert!(inner(Some("/"), "x", false).is_err());
        assert!(inner(Some("/a/.."), "x", false).is_err());
        let rel = inner(Some("t/c"), "x", false).unwrap();
        assert_eq!(
            rel.within("/process_api/h"),
            PathBuf::from("/process_api/h/t/c")
        );
        let abs = inner(Some("/t/c"), "x", false).unwrap();
        assert_eq!(abs.within("/process_api/h"), PathBuf::from("/t/c"));
    }

    #[test]
    fn systemd_paths() {
        let p = |s: &str| match inner(Some(s), "id1", true) {
            Ok(Inner::Absolute(p)) => p.display().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            p("system.slice:docker:abc"),
            "system.slice/docker-abc.scope"
        );
        assert_eq!(
            p("kubepods-burstable-pod1.slice:cri-containerd:abc"),
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"
        );
        assert_eq!(p(":capsa:abc"), "system.slice/capsa-abc.scope");
        assert_eq!(p("-.slice::abc"), "abc.scope");
        assert_eq!(p("a.slice:x:a-b.slice"), "a.slice/a-b.slice");
        assert_eq!(p("-.slice:x:b.slice"), "b.slice");
        assert_eq!(p(":x:system-b.slice"), "system.slice/system-b.slice");
        assert_eq!(
            match inner(None, "id1", true).unwrap() {
                Inner::Absolute(p) => p,
                _ => unreachable!(),
            },
            PathBuf::from("system.slice/capsa-id1.scope")
        );
        for bad in [
            "/a/b",
            "a:b",
            "x.scope:p:n",
            "a--b.slice:p:n",
            "a.slice:p:",
            "a.slice:../../..:n",
            ":../:.",
            ":p/q:n",
            ":p:../n",
            "a.slice:x:b.slice",
        ] {
            let e = inner(Some(bad), "id", true).unwrap_err().to_string();
            assert!(
                e.starts_with("config.json: linux.cgroupsPath: "),
                "{bad}: {e}"
            );
        }
    }
}
