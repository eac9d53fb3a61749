//! What each fuzz target does with its input, shared by the cargo-fuzz
//! targets (fuzz_targets/*.rs) and the regression test that replays the
//! saved inputs (tests/fuzz_regressions.rs). Beyond "no panic", each checks
//! what must hold of the result: errors name what they are about, values
//! accepted are in range.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A fuzz target: its name and what it does with an input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name (the directory names under fuzz/regressions).
pub const TARGETS: &[Target] = &[
    ("config", config),
    ("signal", signal),
    ("mount_options", mount_options),
    ("seccomp", seccomp),
    ("process", process),
    ("cgroup_path", cgroup_path),
    ("id", id),
    ("update", update),
    ("proc_files", proc_files),
    ("state", state),
];

#[track_caller]
fn error_names(e: &capsa::Error, prefix: &str) {
    let m = e.to_string();
    assert!(
        m.starts_with(prefix),
        "error {m:?} does not start with {prefix:?}"
    );
}

/// A bundle directory with an empty rootfs, for `spec::validate`.
fn bundle() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("capsa-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(d.join("rootfs")).unwrap();
        d
    })
}

/// config.json: parsing, validation, and what create derives from a valid
/// config without running it (namespaces, cgroup path, mount options,
/// device rules, seccomp filter, capabilities).
pub fn config(data: &[u8]) {
    let Ok(raw) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let spec = match capsa::spec::parse(&raw) {
        Ok(s) => s,
        Err(e) => return error_names(&e, "config.json: "),
    };
    if let Err(e) = capsa::spec::validate(&spec, bundle()) {
        return error_names(&e, "config.json: ");
    }
    let _ = capsa::namespaces::plan(&spec);
    if let Some(linux) = spec.linux() {
        let path = linux.cgroups_path().as_ref().and_then(|p| p.to_str());
        for systemd in [false, true] {
            if let Err(e) = capsa::cgroups::path::inner(path, "fuzz", systemd) {
                error_names(&e, "config.json: linux.cgroupsPath: ");
            }
        }
        if let Some(s) = linux.seccomp()
            && let Err(e) = capsa::seccomp::prepare(s)
        {
            error_names(&e, "config.json: linux.seccomp");
        }
    }
    for m in spec.mounts().iter().flatten() {
        if let Some(o) = m.options() {
            let _ = capsa::rootfs::mount_options::parse(o);
        }
    }
    if let Some(c) = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
    {
        let _ = capsa::capabilities::resolve(c);
    }
}

/// Signal names and numbers as `kill` takes them.
pub fn signal(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = capsa::signals::parse(s) {
        assert!((1..=libc::SIGRTMAX()).contains(&n), "{s:?} gave {n}");
        assert_eq!(capsa::signals::parse(&n.to_string()).unwrap(), n);
    }
}

/// A mount's `options` (NUL- or comma-separated here).
pub fn mount_options(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let opts: Vec<String> = text.split([',', '\0']).map(String::from).collect();
    let o = capsa::rootfs::mount_options::parse(&opts);
    for opt in &opts {
        let _ = capsa::rootfs::mount_options::propagation(opt);
    }
    // What is passed on to the filesystem are only options given.
    for d in o.data.split(',').filter(|d| !d.is_empty()) {
        assert!(
            opts.iter().any(|x| x == d),
            "data {:?} from {opts:?}",
            o.data
        );
    }
}

/// A `linux.seccomp` profile, compiled to BPF.
pub fn seccomp(data: &[u8]) {
    let Ok(raw) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(s) = serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(raw) else {
        return;
    };
    match capsa::seccomp::prepare(&s) {
        // The kernel takes at most 4096 instructions; the compiler says so
        // itself rather than handing over a longer filter.
        Ok(p) => assert!(
            p.instructions() <= 4096,
            "{} instructions",
            p.instructions()
        ),
        Err(e) => error_names(&e, "config.json: linux.seccomp"),
    }
}

/// `exec --process FILE`, then the command-line overrides of `exec`.
pub fn process(data: &[u8]) {
    let file = Path::new("process.json");
    match capsa::container::parse_process(data, file) {
        Ok(p) => assert!(p.args().as_ref().is_some_and(|a| !a.is_empty())),
        Err(e) => error_names(&e, "--process process.json: "),
    }
    // The same bytes as exec's flags: --user, --cap, --env, --cwd.
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let req = capsa::container::ExecRequest {
        args: vec!["sh".into()],
        user: parts.next().map(String::from),
        caps: parts
            .next()
            .map(|c| vec![c.to_string()])
            .unwrap_or_default(),
        env: parts
            .next()
            .map(|e| vec![e.to_string()])
            .unwrap_or_default(),
        cwd: parts.next().map(PathBuf::from),
        ..Default::default()
    };
    static SPEC: OnceLock<oci_spec::runtime::Spec> = OnceLock::new();
    let spec = SPEC.get_or_init(|| capsa::spec::parse(&capsa::spec::default_spec(false)).unwrap());
    if let Err(e) = capsa::container::exec_process(spec, &req) {
        let m = e.to_string();
        assert!(m.starts_with("--user") || m.starts_with("--cap"), "{m}");
    }
}

/// `linux.cgroupsPath` in its forms (absolute, relative, systemd's
/// slice:prefix:name) and runc's size strings.
pub fn cgroup_path(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (id, path) = text.split_once('\0').unwrap_or(("fuzz", &text));
    // capsa validates the id before it builds any path from it.
    let id = if capsa::state::validate_id(id).is_ok() {
        id
    } else {
        "fuzz"
    };
    let systemd = first & 1 == 1;
    if let Ok(inner) = capsa::cgroups::path::inner(Some(path), id, systemd) {
        let own = "/own/cgroup";
        let p = inner.within(own);
        assert!(p.is_absolute(), "{p:?}");
        assert!(
            !p.components().any(|c| c == std::path::Component::ParentDir),
            "{path:?} gave {p:?}"
        );
        assert_ne!(p, Path::new("/"), "{path:?} is the root cgroup");
        if let capsa::cgroups::path::Inner::Relative(_) = inner {
            assert!(p.starts_with(own), "{path:?} gave {p:?}");
        }
    }
    let _ = capsa::cgroups::parse_size(&text);
}

/// Container ids: an accepted one is a single, plain path component.
pub fn id(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if capsa::state::validate_id(s).is_ok() {
        let root = Path::new("/run/capsa");
        let dir = root.join(s);
        assert_eq!(dir.parent(), Some(root), "{s:?}");
        assert!(!s.is_empty() && s != "." && s != ".." && s.len() <= 1024);
        assert!(!s.contains('/') && !s.contains('\0'));
    }
}

/// `update --resources FILE`: merged into the resources in force.
pub fn update(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    static BASE: OnceLock<oci_spec::runtime::LinuxResources> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1000, "swap": 2000},
            "cpu": {"shares": 100, "cpus": "0"},
            "blockIO": {"throttleReadBpsDevice": [{"major": 1, "minor": 2, "rate": 3}]},
            "devices": [{"allow": false, "access": "rwm"}]
        }))
        .unwrap()
    });
    for current in [None, Some(base)] {
        if let Err(e) = capsa::cgroups::merge_resources(current, &v) {
            error_names(&e, "linux.resources");
        }
    }
}

/// /proc files capsa parses: mountinfo (for the cgroup hierarchies) and
/// /proc/PID/cgroup; the input is split at the first NUL into the two.
pub fn proc_files(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (mountinfo, cgroup) = text.split_once('\0').unwrap_or((&text, ""));
    let hs = capsa::cgroups::mounts::parse_mountinfo(mountinfo);
    for h in &hs {
        let _ = capsa::cgroups::mounts::cgroup_in(h, cgroup);
        let _ = h.names();
    }
    let _ = capsa::cgroups::mounts::unified(&hs);
}

/// A container's state.json as a later command reads it.
pub fn state(data: &[u8]) {
    let Ok(st) = serde_json::from_slice::<capsa::state::State>(data) else {
        return;
    };
    let rt = capsa::container::Runtime::new(bundle().join("state"));
    let status = rt.status(&st);
    let v = rt.state_json(&st, status);
    assert_eq!(v["id"], st.id.as_str());
    // Saved again, it reads back the same.
    let again: capsa::state::State =
        serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&st).unwrap()
    );
}
