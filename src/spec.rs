//! Loading `config.json` into oci-spec types, validating what capsa relies
//! on, and writing the default config of `capsa spec`. Errors name the file,
//! the JSON path of the field and the cause.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
/// The runtime-spec version capsa implements (what `state` reports).
pub const OCI_VERSION: &str = "1.2.0";

/// A loaded bundle: its absolute directory, the parsed config and the raw
/// JSON (kept in the container's state).
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub raw: serde_json::Value,
    pub rootfs: PathBuf,
}

/// Reads and validates `DIR/config.json` for creating a container.
pub fn load_bundle(dir: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(dir).ctx(|| format!("bundle {}", dir.display()))?;
    let path = dir.join(CONFIG);
    let data = std::fs::read(&path).ctx(|| format!("{CONFIG}: open {}", path.display()))?;
    let raw: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| Error::msg(format!("{CONFIG}: {e}")))?;
    let spec = parse(&raw)?;
    let rootfs = validate(&spec, &dir)?;
    Ok(Bundle {
        dir,
        spec,
        raw,
        rootfs,
    })
}

/// Turns JSON into a Spec; a type error names the field's JSON path.
pub fn parse(raw: &serde_json::Value) -> Result<Spec> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::msg(format!("{CONFIG}: {inner}"))
        } else {
            Error::msg(format!("{CONFIG}: {path}: {inner}"))
        }
    })
}

pub(crate) fn field_err(field: impl std::fmt::Display, msg: impl std::fmt::Display) -> Error {
    Error::msg(format!("{CONFIG}: {field}: {msg}"))
}

/// Checks the parts of a config capsa needs before it does anything with
/// it; returns the absolute rootfs path.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let v = spec.version();
    if v.is_empty() {
        return Err(field_err("ociVersion", "missing"));
    }
    if !v.starts_with("1.") {
        return Err(field_err(
            "ociVersion",
            format!("unsupported version {v:?} (capsa supports 1.x)"),
        ));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| field_err("root", "missing"))?;
    let rootfs = bundle.join(root.path());
    check_rootfs_not_symlink(bundle, root.path())?;
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(field_err(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }
        Err(e) => {
            return Err(Err::<(), _>(e)
                .ctx(|| format!("{CONFIG}: root.path: stat {}", rootfs.display()))
                .unwrap_err());
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| field_err("process", "missing (a container needs a process to run)"))?;
    check_lsm(spec)?;
    check_user(process.user(), &format!("{CONFIG}: process.user"))?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(field_err("process.args", "must name a program to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(field_err(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    if let Some(rl) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rl.iter().enumerate() {
            if !seen.insert(format!("{:?}", r.typ())) {
                return Err(field_err(
                    format!("process.rlimits[{i}].type"),
                    format!("duplicate {:?}", r.typ()),
                ));
            }
            if r.soft() > r.hard() {
                return Err(field_err(
                    format!("process.rlimits[{i}]"),
                    "soft limit is above the hard limit",
                ));
            }
        }
    }
    let linux = spec.linux().as_ref();
    let mut ns_types = HashSet::new();
    // Namespaces joined by a path that are the runtime's own (such as
    // /proc/self/ns/net or /proc/1/ns/net): what is set in them is set on
    // the host.
    let mut runtimes_own = HashSet::new();
    if let Some(nss) = linux.and_then(|l| l.namespaces().as_ref()) {
        for (i, ns) in nss.iter().enumerate() {
            let field = format!("linux.namespaces[{i}]");
            if !ns_types.insert(ns.typ()) {
                return Err(field_err(
                    format!("{field}.type"),
                    format!("duplicate namespace {:?}", ns_name(ns.typ())),
                ));
            }
            if ns.typ() == LinuxNamespaceType::Time && !Path::new("/proc/self/ns/time").exists() {
                return Err(field_err(
                    format!("{field}.type"),
                    "this kernel has no time namespaces (Linux 5.6 or later)",
                ));
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return Err(field_err(
                        format!("{field}.path"),
                        format!("{} is not absolute", p.display()),
                    ));
                }
                let m = std::fs::metadata(p)
                    .ctx(|| format!("{CONFIG}: {field}.path: stat {}", p.display()))?;
                if is_runtimes_own(ns.typ(), &m) {
                    runtimes_own.insert(ns.typ());
                }
            }
        }
    }
    let has = |t: LinuxNamespaceType| ns_types.contains(&t);
    // Has a namespace of this type that is not the runtime's own.
    let owns = |t: LinuxNamespaceType| has(t) && !runtimes_own.contains(&t);
    check_mount_namespace(spec)?;
    check_id_mappings(spec, has(LinuxNamespaceType::User))?;
    crate::rootfs::idmap::validate(spec, has(LinuxNamespaceType::User))?;
    check_time_offsets(spec)?;
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !owns(LinuxNamespaceType::Uts) {
        return Err(field_err(
            "hostname",
            uts_why(has(LinuxNamespaceType::Uts), "hostname"),
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !owns(LinuxNamespaceType::Uts)
    {
        return Err(field_err(
            "domainname",
            uts_why(has(LinuxNamespaceType::Uts), "domainname"),
        ));
    }
    if let Some(mounts) = spec.mounts() {
        let fs = filesystems();
        for (i, m) in mounts.iter().enumerate() {
            crate::rootfs::mount_options::check(i, m)
                .map_err(|e| Error::msg(format!("{CONFIG}: {e}")))?;
            let is_bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"));
            for o in m.options().iter().flatten() {
                if let Some((key, n)) = o.split_once('=')
                    && matches!(key, "uid" | "gid")
                {
                    let ok = n.parse::<u32>().is_ok_and(|n| n <= MAX_ID);
                    if !ok {
                        return Err(field_err(
                            format!("mounts[{i}].options"),
                            format!("{o:?}: {key} must be a number from 0 to {MAX_ID}"),
                        ));
                    }
                }
            }
            if is_bind {
                continue;
            }
            match m.typ().as_deref() {
                None | Some("") => {
                    return Err(field_err(
                        format!("mounts[{i}].type"),
                        "missing (and the mount is not a bind mount)",
                    ));
                }
                Some(t) if !fs.contains(t) && !fs.is_empty() => {
                    return Err(field_err(
                        format!("mounts[{i}].type"),
                        format!("unknown filesystem type {t:?}"),
                    ));
                }
                _ => {}
            }
        }
    }
    crate::netdev::validate(spec)?;
    crate::process::attrs::validate(spec)?;
    if let Some(l) = linux {
        if l.intel_rdt().is_some() {
            let why = if is_resctrl(Path::new("/sys/fs/resctrl")) {
                "capsa does not implement Intel RDT (resctrl) settings"
            } else {
                "this host has no resctrl filesystem at /sys/fs/resctrl (Intel RDT is not available)"
            };
            return Err(field_err("linux.intelRdt", why));
        }
        for (i, d) in l.devices().iter().flatten().enumerate() {
            if let Some(uid) = d.uid() {
                check_id(&format!("{CONFIG}: linux.devices[{i}].uid"), uid)?;
            }
            if let Some(gid) = d.gid() {
                check_id(&format!("{CONFIG}: linux.devices[{i}].gid"), gid)?;
            }
        }
        if let Some(sysctl) = l.sysctl() {
            for key in sysctl.keys() {
                check_sysctl(key, &has)
                    .and_then(|()| check_sysctl_owner(key, &owns))
                    .map_err(|m| field_err(format!("linux.sysctl[{key:?}]"), m))?;
            }
        }
        if let Some(r) = l.resources() {
            check_resources(r)?;
        }
    }
    Ok(rootfs)
}

/// Whether `p` is a mounted resctrl filesystem.
// f_type is i64 on 64-bit targets, narrower elsewhere.
#[allow(clippy::unnecessary_cast)]
fn is_resctrl(p: &Path) -> bool {
    const RDTGROUP_SUPER_MAGIC: i64 = 0x7655821;
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type().0 as i64 == RDTGROUP_SUPER_MAGIC)
}

/// The rootfs must be named by its real path, as runc requires: a
/// `root.path` that is a symlink (or passes through one below the bundle)
/// is refused rather than followed.
fn check_rootfs_not_symlink(bundle: &Path, path: &Path) -> Result<()> {
    // The bundle's own path is taken as the kernel resolves it (runc works
    // from its getcwd()); only what root.path adds must be free of links.
    let base = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        match std::fs::canonicalize(bundle) {
            Ok(b) => b,
            Err(_) => return Ok(()),
        }
    };
    let mut clean = base.clone();
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => clean.push(n),
            std::path::Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    match std::fs::canonicalize(&clean) {
        Ok(real) if real != clean => Err(field_err(
            "root.path",
            format!(
                "{} is a symlink or passes through one (it resolves to {}); name the real directory",
                path.display(),
                real.display()
            ),
        )),
        // A missing rootfs is reported by the caller.
        _ => Ok(()),
    }
}

/// What can be checked of `linux.resources` without the host: the device
/// rules. Everything else is checked as it is applied to the container's
/// cgroup, where an error names the field the host cannot honour.
fn check_resources(r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    crate::cgroups::devices::rules(
        r.devices().as_ref(),
        &format!("{CONFIG}: linux.resources.devices"),
    )
    .map(drop)
}

/// AppArmor and SELinux settings are refused where the host lacks the LSM,
/// rather than silently running the container unconfined.
fn check_lsm(spec: &Spec) -> Result<()> {
    let set = |v: Option<&String>| v.is_some_and(|v| !v.is_empty());
    let process = spec.process().as_ref();
    if set(process.and_then(|p| p.apparmor_profile().as_ref()))
        && !Path::new("/sys/kernel/security/apparmor").exists()
    {
        return Err(field_err(
            "process.apparmorProfile",
            "AppArmor is not enabled on this host",
        ));
    }
    let selinux = || Path::new("/sys/fs/selinux/enforce").exists();
    if set(process.and_then(|p| p.selinux_label().as_ref())) && !selinux() {
        return Err(field_err(
            "process.selinuxLabel",
            "SELinux is not enabled on this host",
        ));
    }
    if set(spec.linux().as_ref().and_then(|l| l.mount_label().as_ref())) && !selinux() {
        return Err(field_err(
            "linux.mountLabel",
            "SELinux is not enabled on this host",
        ));
    }
    Ok(())
}

/// uid/gid mappings: required with a new user namespace (and only then),
/// non-empty ranges that do not overlap on either side.
fn check_id_mappings(spec: &Spec, userns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let new_userns = userns
        && linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| {
                n.iter()
                    .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none())
            });
    for (field, maps) in [
        (
            "linux.uidMappings",
            linux.and_then(|l| l.uid_mappings().as_ref()),
        ),
        (
            "linux.gidMappings",
            linux.and_then(|l| l.gid_mappings().as_ref()),
        ),
    ] {
        let maps = maps.map(Vec::as_slice).unwrap_or(&[]);
        if !userns && !maps.is_empty() {
            return Err(field_err(
                field,
                "mappings need a user namespace in linux.namespaces",
            ));
        }
        if new_userns && maps.is_empty() {
            return Err(field_err(field, "a new user namespace needs mappings"));
        }
        if !new_userns && userns && !maps.is_empty() {
            return Err(field_err(
                field,
                "mappings cannot be applied to a joined user namespace",
            ));
        }
        check_map_list(field, maps)?;
    }
    Ok(())
}

/// The highest uid or gid capsa accepts (runc's bound): above it lie ids
/// the kernel treats specially, such as 4294967295, which as (uid_t)-1
/// means "leave unchanged" to setresuid and would keep the container
/// process root.
pub const MAX_ID: u32 = i32::MAX as u32;

/// Checks one uid or gid; `what` names it in the error ("--user
/// \"x\": uid", "config.json: process.user.uid").
pub fn check_id(what: &str, id: u32) -> Result<()> {
    if id > MAX_ID {
        return Err(Error::msg(format!(
            "{what}: {id} is out of range (ids are 0 to {MAX_ID})"
        )));
    }
    Ok(())
}

/// Checks the ids of a process's user; `field` names it in errors (such
/// as `config.json: process.user`).
pub fn check_user(user: &oci_spec::runtime::User, field: &str) -> Result<()> {
    check_id(&format!("{field}.uid"), user.uid())?;
    check_id(&format!("{field}.gid"), user.gid())?;
    for (i, g) in user.additional_gids().iter().flatten().enumerate() {
        check_id(&format!("{field}.additionalGids[{i}]"), *g)?;
    }
    Ok(())
}

/// The most ranges a uid_map or gid_map takes (Linux 4.15 and later).
pub const MAX_ID_RANGES: usize = 340;

/// One list of id mappings (`linux.uidMappings`, `mounts[3].gidMappings`,
/// ...): at most [`MAX_ID_RANGES`] ranges, none empty, none past
/// [`MAX_ID`], none overlapping another on either side.
pub fn check_map_list(field: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    if maps.len() > MAX_ID_RANGES {
        return Err(field_err(
            field,
            format!(
                "{} ranges; the kernel takes at most {MAX_ID_RANGES}",
                maps.len()
            ),
        ));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            return Err(field_err(format!("{field}[{i}].size"), "must not be 0"));
        }
        let end = |start: u32| start as u64 + m.size() as u64;
        if end(m.container_id()) > MAX_ID as u64 + 1 || end(m.host_id()) > MAX_ID as u64 + 1 {
            return Err(field_err(
                format!("{field}[{i}]"),
                format!("range goes past id {MAX_ID}"),
            ));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlap =
                |a: u32, b: u32, bs: u32| (a as u64) < b as u64 + bs as u64 && (b as u64) < end(a);
            if overlap(m.container_id(), o.container_id(), o.size())
                || overlap(m.host_id(), o.host_id(), o.size())
            {
                return Err(field_err(
                    format!("{field}[{i}]"),
                    format!("overlaps {field}[{j}]"),
                ));
            }
        }
    }
    Ok(())
}

pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// `linux.timeOffsets` needs a new time namespace (offsets are set when
/// one is created, never on a joined one) and names only the clocks a time
/// namespace offsets.
fn check_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    if offsets.is_empty() {
        return Ok(());
    }
    let new_timens = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Time && ns.path().is_none())
        });
    if !new_timens {
        return Err(field_err(
            "linux.timeOffsets",
            "needs a new time namespace (a \"time\" entry without a path in linux.namespaces)",
        ));
    }
    for (clock, o) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(field_err(
                format!("linux.timeOffsets[{clock:?}]"),
                "only \"monotonic\" and \"boottime\" can be offset",
            ));
        }
        if o.nanosecs().is_some_and(|n| n >= 1_000_000_000) {
            return Err(field_err(
                format!("linux.timeOffsets[{clock:?}].nanosecs"),
                "must be below 1000000000",
            ));
        }
    }
    Ok(())
}

fn uts_why(joined: bool, what: &str) -> String {
    if joined {
        format!(
            "the UTS namespace joined is the runtime's own (the host's): setting the {what} \
             would change the host's"
        )
    } else {
        format!("setting the {what} needs a private UTS namespace")
    }
}

/// Whether the namespace file whose metadata is `m` is the namespace of
/// type `t` this process is in.
fn is_runtimes_own(t: LinuxNamespaceType, m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = format!("/proc/self/ns/{}", crate::namespaces::proc_name(t));
    std::fs::metadata(own).is_ok_and(|o| o.dev() == m.dev() && o.ino() == m.ino())
}

/// After [`check_sysctl`] (the namespace exists): the namespace that
/// scopes `key` must not be the runtime's own, joined by a path.
fn check_sysctl_owner(
    key: &str,
    owns: &dyn Fn(LinuxNamespaceType) -> bool,
) -> std::result::Result<(), String> {
    let (t, name) = if key.starts_with("net.") {
        (LinuxNamespaceType::Network, "network")
    } else if key.starts_with("kernel.") && !key.ends_with("name") || key.starts_with("fs.mqueue.")
    {
        (LinuxNamespaceType::Ipc, "IPC")
    } else {
        (LinuxNamespaceType::Uts, "UTS")
    };
    if owns(t) {
        Ok(())
    } else {
        Err(format!(
            "the {name} namespace joined is the runtime's own (the host's): \
             setting it would change the host"
        ))
    }
}

/// What needs a mount namespace that is not the host's: the rootfs set-up
/// (mounts, devices, sysctls written through the container's /proc, masked
/// and read-only paths, a read-only root, the root's propagation). Without
/// a mount namespace it would be skipped; in a joined one that is the
/// runtime's own or PID 1's it would change the host's mounts (the host's
/// `/` would become the container's root). Either way it is refused, and
/// such a container gets only a chroot into the rootfs. A joined mount
/// namespace of another process is set up as asked, as runc does.
fn check_mount_namespace(spec: &Spec) -> Result<()> {
    let mntns = crate::namespaces::configured(spec).find(|n| n.typ() == LinuxNamespaceType::Mount);
    let joined = match mntns.map(|n| n.path()) {
        Some(None) => return Ok(()),
        Some(Some(path)) => {
            use std::os::unix::fs::MetadataExt;
            // Someone else's namespace (or a path Plan::open will refuse):
            // set up as asked. The runtime's own or the host's: refused.
            match std::fs::metadata(path) {
                Ok(m) if crate::namespaces::is_host_mount_namespace(m.dev(), m.ino()) => true,
                _ => return Ok(()),
            }
        }
        None => false,
    };
    let why = if joined {
        "needs a mount namespace that is not the host's (the one in linux.namespaces is joined by \
         a path that is the runtime's own or PID 1's: setting up a rootfs there would change the \
         host's mounts)"
    } else {
        "needs a private mount namespace (a \"mount\" entry in linux.namespaces)"
    };
    let linux = spec.linux().as_ref();
    let nonempty = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return Err(field_err("root.readonly", why));
    }
    if nonempty(linux.and_then(|l| l.masked_paths().as_ref())) {
        return Err(field_err("linux.maskedPaths", why));
    }
    if nonempty(linux.and_then(|l| l.readonly_paths().as_ref())) {
        return Err(field_err("linux.readonlyPaths", why));
    }
    if linux
        .and_then(|l| l.devices().as_ref())
        .is_some_and(|d| !d.is_empty())
    {
        return Err(field_err("linux.devices", why));
    }
    if linux
        .and_then(|l| l.sysctl().as_ref())
        .is_some_and(|s| !s.is_empty())
    {
        return Err(field_err(
            "linux.sysctl",
            format!("{why}; capsa writes sysctls through the container's /proc"),
        ));
    }
    if linux
        .and_then(|l| l.rootfs_propagation().as_ref())
        .is_some()
    {
        return Err(field_err("linux.rootfsPropagation", why));
    }
    if joined && spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(field_err("mounts", why));
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only when the container has the
/// namespace that scopes them (otherwise the write would change the host).
fn check_sysctl(
    key: &str,
    has: &dyn Fn(LinuxNamespaceType) -> bool,
) -> std::result::Result<(), String> {
    if key.is_empty() || key.contains("..") || key.starts_with(['.', '/']) {
        return Err("invalid sysctl name".into());
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return if has(LinuxNamespaceType::Ipc) {
            Ok(())
        } else {
            Err("needs a private IPC namespace".into())
        };
    }
    if key.starts_with("net.") {
        return if has(LinuxNamespaceType::Network) {
            Ok(())
        } else {
            Err("needs a private network namespace".into())
        };
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return if has(LinuxNamespaceType::Uts) {
            Ok(())
        } else {
            Err("needs a private UTS namespace".into())
        };
    }
    Err("not a namespaced sysctl; setting it would change the host".into())
}

/// Filesystem types the kernel knows (empty if /proc/filesystems is unreadable).
fn filesystems() -> HashSet<String> {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_whitespace().last().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The default config written by `capsa spec`: runc's defaults.
pub fn default_spec(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut spec = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "capsa",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let linux = &mut spec["linux"];
        linux["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            {"type": "cgroup"}, {"type": "user"}
        ]);
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux.as_object_mut().map(|l| l.remove("resources"));
        let mounts = spec["mounts"].as_array_mut().expect("mounts is an array");
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["destination"] == "/dev/pts" {
                m["options"] = serde_json::json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
        }
    }
    spec
}

/// Writes the default config into `bundle`, refusing to overwrite one.
pub fn write_default(bundle: &Path, rootless: bool) -> Result<()> {
    use std::io::Write;
    let path = bundle.join(CONFIG);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::msg(format!("File {} exists. Remove it first", path.display()))
            } else {
                Err::<(), _>(e)
                    .ctx(|| format!("create {}", path.display()))
                    .unwrap_err()
            }
        })?;
    let text = serde_json::to_string_pretty(&default_spec(rootless)).expect("json serializes");
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .ctx(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses() {
        parse(&default_spec(false)).unwrap();
        parse(&default_spec(true)).unwrap();
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut v = default_spec(false);
        v["linux"]["namespaces"][2]["type"] = "foo".into();
        let e = parse(&v).unwrap_err().to_string();
        assert!(
            e.starts_with("config.json: linux.namespaces[2].type: unknown variant `foo`"),
            "{e}"
        );
        let mut v = default_spec(false);
        v["process"]["user"]["uid"] = "root".into();
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("process.user.uid"), "{e}");
    }

    #[test]
    fn ids_above_2_31_are_refused() {
        check_id("x", 0).unwrap();
        check_id("x", MAX_ID).unwrap();
        for bad in [MAX_ID + 1, u32::MAX - 1, u32::MAX] {
            assert!(check_id("x", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sysctls_belong_to_their_namespace() {
        use LinuxNamespaceType::*;
        let owns_only = |t: LinuxNamespaceType| move |u: LinuxNamespaceType| u == t;
        for (key, ns) in [
            ("net.ipv4.ip_forward", Network),
            ("kernel.shmmax", Ipc),
            ("kernel.shm_rmid_forced", Ipc),
            ("kernel.msgmnb", Ipc),
            ("fs.mqueue.msg_max", Ipc),
            ("kernel.hostname", Uts),
            ("kernel.domainname", Uts),
        ] {
            assert!(check_sysctl_owner(key, &owns_only(ns)).is_ok(), "{key}");
            for other in [Network, Ipc, Uts].into_iter().filter(|o| *o != ns) {
                assert!(check_sysctl_owner(key, &owns_only(other)).is_err(), "{key}");
            }
        }
    }

    #[test]
    fn sysctl_needs_namespaces() {
        let all = |_| true;
        let none = |_| false;
        assert!(check_sysctl("net.ipv4.ip_forward", &all).is_ok());
        assert!(check_sysctl("net.ipv4.ip_forward", &none).is_err());
        assert!(check_sysctl("kernel.shmmax", &all).is_ok());
        assert!(check_sysctl("vm.swappiness", &all).is_err());
        assert!(check_sysctl("../x", &all).is_err());
    }
}
