//! Both cgroup backends on every run, whatever the host: each against a
//! temporary directory tree that mimics cgroupfs (what is written where,
//! conversions, errors), and the v2 backend against the host's real cgroup2
//! mount too (controllers enabled, the eBPF device filter enforced, freeze,
//! kill, removal).

use capsa::cgroups::{self, Fields, Manager, Record, Version, v1::V1, v2::V2};
use oci_spec::runtime::LinuxResources;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A temporary directory, removed with everything in it at the end.
struct TempTree(PathBuf);

impl TempTree {
    fn new(name: &str) -> TempTree {
        let d = std::env::temp_dir().join(format!("capsa-cgtree-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempTree(d)
    }

    /// A fake cgroup directory holding `files` (name, content).
    fn cgroup(&self, rel: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.0.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        for (f, v) in files {
            std::fs::write(d.join(f), v).unwrap();
        }
        d
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(d: &Path, f: &str) -> String {
    std::fs::read_to_string(d.join(f))
        .unwrap_or_else(|e| panic!("{}/{f}: {e}", d.display()))
        .trim()
        .to_string()
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn record(version: Version, paths: &[(&str, &Path)]) -> Record {
    Record {
        version,
        paths: paths
            .iter()
            .map(|(k, p)| (k.to_string(), p.to_path_buf()))
            .collect::<BTreeMap<_, _>>(),
        created: Vec::new(),
        resources: None,
        systemd: false,
        unit: None,
    }
}

#[track_caller]
fn fails_with(r: capsa::Result<()>, needle: &str) {
    let e = r.expect_err("expected an error").to_string();
    assert!(e.contains(needle), "{e:?} lacks {needle:?}");
}

const V2_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.freeze",
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "memory.high",
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
    "hugetlb.2MB.rsvd.max",
    "rdma.max",
];

#[test]
fn v2_backend_on_a_fake_tree() {
    let t = TempTree::new("v2");
    let ctrls = "cpuset cpu io memory hugetlb pids rdma";
    let root = t.cgroup(
        "",
        &[
            ("cgroup.controllers", ctrls),
            ("cgroup.subtree_control", ""),
        ],
    );
    t.cgroup(
        "p",
        &[
            ("cgroup.controllers", ctrls),
            ("cgroup.subtree_control", "cpu"),
        ],
    );
    let files: Vec<(&str, &str)> = V2_FILES.iter().map(|f| (*f, "")).collect();
    let leaf = t.cgroup("p/ctr", &files);
    std::fs::write(leaf.join("cgroup.controllers"), ctrls).unwrap();

    let mut m = V2::new(
        record(Version::V2, &[("unified", &leaf)]),
        Some(root.clone()),
    );
    m.create().unwrap();
    assert!(m.record().created.is_empty(), "the leaf existed");
    // Every controller enabled on the way down, the ones already on kept.
    assert_eq!(
        read(&root, "cgroup.subtree_control"),
        "+cpuset +cpu +io +memory +hugetlb +pids +rdma"
    );
    assert_eq!(
        read(&root.join("p"), "cgroup.subtree_control"),
        "+cpuset +io +memory +hugetlb +pids +rdma"
    );

    let r = res(json!({
        "memory": {"limit": 104857600, "swap": 314572800, "reservation": 52428800,
                   "kernel": 1048576, "useHierarchy": true},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 1,
                "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 99},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 4}},
        "unified": {"memory.high": "123456"}
    }));
    m.set(&r, &Fields::config()).unwrap();
    for (f, v) in [
        ("memory.max", "104857600"),
        ("memory.swap.max", "209715200"),
        ("memory.low", "52428800"),
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "1000"),
        ("cpu.idle", "1"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "99"),
        ("io.weight", "default 4950"),
        ("io.max", "8:0 rbps=1000"),
        ("hugetlb.2MB.max", "4194304"),
        ("hugetlb.2MB.rsvd.max", "4194304"),
        ("rdma.max", "mlx5_0 hca_handle=3 hca_object=4"),
        ("memory.high", "123456"),
    ] {
        assert_eq!(read(&leaf, f), v, "{f}");
    }
    // Unlimited values.
    m.set(
        &res(json!({"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}})),
        &Fields::config(),
    )
    .unwrap();
    assert_eq!(read(&leaf, "memory.max"), "max");
    assert_eq!(read(&leaf, "memory.swap.max"), "max");
    assert_eq!(read(&leaf, "cpu.max"), "max");
    assert_eq!(read(&leaf, "pids.max"), "max");

    // What v2 cannot do is an error naming the field.
    let f = Fields::config();
    for (r, msg) in [
        (
            json!({"network": {"classID": 1}}),
            "config.json: linux.resources.network: not supported on cgroup v2",
        ),
        (
            json!({"cpu": {"realtimeRuntime": 100}}),
            "linux.resources.cpu.realtimeRuntime: not supported on cgroup v2",
        ),
        (
            json!({"memory": {"swappiness": 10}}),
            "linux.resources.memory.swappiness: not supported",
        ),
        (
            json!({"memory": {"disableOOMKiller": true}}),
            "linux.resources.memory.disableOOMKiller: not supported",
        ),
        (
            json!({"blockIO": {"leafWeight": 10}}),
            "linux.resources.blockIO.leafWeight: not supported",
        ),
        (
            json!({"memory": {"swap": 100, "limit": 200}}),
            "linux.resources.memory.swap: memory+swap (100) must not be below the memory limit (200)",
        ),
        (
            json!({"unified": {"../x": "1"}}),
            "linux.resources.unified[\"../x\"]: not a cgroup control file name",
        ),
        (
            json!({"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]}),
            "linux.resources.hugepageLimits[0].pageSize: \"2XB\" is not a page size",
        ),
    ] {
        fails_with(m.set(&res(r), &f), msg);
    }
    // A controller not delegated to the cgroup, a file the kernel lacks.
    std::fs::write(leaf.join("cgroup.controllers"), "cpu memory").unwrap();
    std::fs::remove_file(leaf.join("pids.max")).unwrap();
    fails_with(
        m.set(&res(json!({"pids": {"limit": 5}})), &f),
        "linux.resources.pids.limit: the pids controller is not available in cgroup",
    );
    fails_with(
        m.set(&res(json!({"unified": {"memory.nosuch": "1"}})), &f),
        "linux.resources.unified[\"memory.nosuch\"]: this host does not support it",
    );
    // checkBeforeUpdate, on update only.
    std::fs::write(leaf.join("memory.current"), "1000000").unwrap();
    let r = res(json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}}));
    fails_with(
        m.set(&r, &Fields::update()),
        "linux.resources.memory.limit: rejecting memory limit 4096 below the current usage 1000000",
    );
    m.set(&r, &Fields::config()).unwrap();

    // Freezing waits for the kernel's word in cgroup.events.
    std::fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    assert!(m.can_freeze());
    m.freeze(true).unwrap();
    assert_eq!(read(&leaf, "cgroup.freeze"), "1");
    assert!(m.is_frozen());
    std::fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    m.freeze(false).unwrap();
    assert!(!m.is_frozen());

    // Processes, in the cgroup and below it.
    std::fs::write(leaf.join("cgroup.procs"), "10\n11\n").unwrap();
    t.cgroup("p/ctr/sub", &[("cgroup.procs", "12\n")]);
    let mut pids = cgroups::pids(&m).unwrap();
    pids.sort();
    assert_eq!(pids, [10, 11, 12]);

    // Stats from the v2 files, in runc's format.
    for (f, v) in [
        (
            "cpu.stat",
            "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 5\nnr_throttled 2\nthrottled_usec 7\n",
        ),
        ("memory.current", "4096\n"),
        ("memory.max", "max\n"),
        ("memory.stat", "anon 1\nfile 2\n"),
        ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
        ("pids.current", "2\n"),
        ("pids.max", "max\n"),
        (
            "io.stat",
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
        ),
    ] {
        std::fs::write(leaf.join(f), v).unwrap();
    }
    let s = serde_json::to_value(m.stats().unwrap()).unwrap();
    assert_eq!(
        s["cpu"]["usage"],
        json!({"total": 100000, "kernel": 40000, "user": 60000})
    );
    assert_eq!(
        s["cpu"]["throttling"],
        json!({"periods": 5, "throttledPeriods": 2, "throttledTime": 7000})
    );
    assert_eq!(
        s["memory"]["usage"],
        json!({"limit": u64::MAX, "usage": 4096, "failcnt": 3})
    );
    assert_eq!(s["memory"]["cache"], 2);
    assert_eq!(s["memory"]["raw"], json!({"anon": 1, "file": 2}));
    assert_eq!(s["pids"], json!({"current": 2}));
    assert_eq!(
        s["blkio"]["ioServiceBytesRecursive"],
        json!([{"major": 8, "op": "Read", "value": 10}, {"major": 8, "op": "Write", "value": 20}])
    );
    assert_eq!(s["blkio"]["ioServicedRecursive"][1]["value"], 2);

    // OOM kills show through inotify on memory.events.
    let mut w = m.oom_watch().unwrap().expect("memory.events exists");
    assert_eq!(w.take(), Some(0));
    std::fs::write(leaf.join("memory.events"), "max 4\noom 2\noom_kill 3\n").unwrap();
    let mut fds = [nix::poll::PollFd::new(w.fd(), nix::poll::PollFlags::POLLIN)];
    assert_eq!(nix::poll::poll(&mut fds, 2000u16).unwrap(), 1);
    assert_eq!(w.take(), Some(2));
}

#[test]
fn v1_backend_on_a_fake_tree() {
    let t = TempTree::new("v1");
    let ctrls = [
        "memory", "cpu", "cpuset", "pids", "blkio", "hugetlb", "net_cls", "net_prio", "rdma",
        "freezer", "devices",
    ];
    let dirs: Vec<PathBuf> = ctrls.iter().map(|c| t.0.join(c).join("ctr")).collect();
    let paths: Vec<(&str, &Path)> = ctrls
        .iter()
        .zip(&dirs)
        .map(|(c, d)| (*c, d.as_path()))
        .collect();
    let mut m = V1::new(record(Version::V1, &paths));
    m.create().unwrap();
    assert_eq!(
        m.record().created.len(),
        2 * ctrls.len(),
        "each hierarchy's dir and parent"
    );
    let file =
        |c: &str, f: &str, v: &str| std::fs::write(t.0.join(c).join("ctr").join(f), v).unwrap();
    for f in [
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
        "memory.soft_limit_in_bytes",
        "memory.kmem.tcp.limit_in_bytes",
        "memory.swappiness",
        "memory.oom_control",
        "memory.use_hierarchy",
    ] {
        file("memory", f, "");
    }
    for f in [
        "cpu.shares",
        "cpu.cfs_period_us",
        "cpu.cfs_quota_us",
        "cpu.cfs_burst_us",
        "cpu.rt_period_us",
        "cpu.rt_runtime_us",
        "cpu.idle",
    ] {
        file("cpu", f, "");
    }
    file("cpuset", "cpuset.cpus", "");
    file("cpuset", "cpuset.mems", "");
    file("pids", "pids.max", "");
    // No CFQ here: the weights go to BFQ's files.
    for f in [
        "blkio.bfq.weight",
        "blkio.bfq.weight_device",
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_iops_device",
    ] {
        file("blkio", f, "");
    }
    file("hugetlb", "hugetlb.1GB.limit_in_bytes", "");
    file("net_cls", "net_cls.classid", "");
    file("net_prio", "net_prio.ifpriomap", "");
    file("rdma", "rdma.max", "");
    file("freezer", "freezer.state", "THAWED");

    let r = res(json!({
        "memory": {"limit": 100000000, "swap": 200000000, "reservation": 50000000,
                   "kernel": 1048576, "kernelTCP": 2097152, "swappiness": 30,
                   "disableOOMKiller": true, "useHierarchy": true},
        "cpu": {"shares": 2048, "quota": 30000, "period": 60000, "burst": 500,
                "realtimePeriod": 1000000, "realtimeRuntime": 2000, "idle": 0,
                "cpus": "1", "mems": "0"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 700, "weightDevice": [{"major": 8, "minor": 16, "weight": 600}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 5000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 60}]},
        "hugepageLimits": [{"pageSize": "1GB", "limit": 1073741824}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx4_0": {"hcaObjects": 7}}
    }));
    m.set(&r, &Fields::config()).unwrap();
    let d = |c: &str| t.0.join(c).join("ctr");
    for (c, f, v) in [
        ("memory", "memory.limit_in_bytes", "100000000"),
        ("memory", "memory.memsw.limit_in_bytes", "200000000"),
        ("memory", "memory.soft_limit_in_bytes", "50000000"),
        ("memory", "memory.kmem.tcp.limit_in_bytes", "2097152"),
        ("memory", "memory.swappiness", "30"),
        ("memory", "memory.oom_control", "1"),
        ("memory", "memory.use_hierarchy", "1"),
        ("cpu", "cpu.shares", "2048"),
        ("cpu", "cpu.cfs_quota_us", "30000"),
        ("cpu", "cpu.cfs_period_us", "60000"),
        ("cpu", "cpu.cfs_burst_us", "500"),
        ("cpu", "cpu.rt_period_us", "1000000"),
        ("cpu", "cpu.rt_runtime_us", "2000"),
        ("cpu", "cpu.idle", "0"),
        ("cpuset", "cpuset.cpus", "1"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "max"),
        ("blkio", "blkio.bfq.weight", "700"),
        ("blkio", "blkio.bfq.weight_device", "8:16 600"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 5000"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 60"),
        ("hugetlb", "hugetlb.1GB.limit_in_bytes", "1073741824"),
        ("net_cls", "net_cls.classid", "1048577"),
        ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ("rdma", "rdma.max", "mlx4_0 hca_object=7"),
    ] {
        assert_eq!(read(&d(c), f), v, "{c}/{f}");
    }

    let f = Fields::config();
    fails_with(
        m.set(&res(json!({"blockIO": {"leafWeight": 10}})), &f),
        "config.json: linux.resources.blockIO.leafWeight: this host does not support it",
    );
    fails_with(
        m.set(&res(json!({"unified": {"memory.high": "1"}})), &f),
        "linux.resources.unified: raw cgroup v2 files need a cgroup v2 host",
    );
    std::fs::remove_file(d("memory").join("memory.memsw.limit_in_bytes")).unwrap();
    fails_with(
        m.set(&res(json!({"memory": {"swap": 1000}})), &f),
        "linux.resources.memory.swap: swap accounting is not enabled on this host",
    );
    // A controller the host does not mount.
    let mut rec = m.record().clone();
    rec.paths.remove("pids");
    let m2 = V1::new(rec);
    fails_with(
        m2.set(&res(json!({"pids": {"limit": 3}})), &f),
        "config.json: linux.resources.pids.limit: the pids cgroup controller is not mounted on this host",
    );

    // The freezer: FROZEN is asked for until it reads back.
    m.freeze(true).unwrap();
    assert!(m.is_frozen());
    m.freeze(false).unwrap();
    assert_eq!(read(&d("freezer"), "freezer.state"), "THAWED");
}

/// The host's cgroup2 mount, if any.
fn cgroup2_mount() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .map(|l| PathBuf::from(l.split(' ').nth(4).unwrap()))
}

/// Undoes what the real-mount test did even when it fails half-way.
struct V2Cleanup {
    mount: PathBuf,
    base: PathBuf,
    root_controllers: String,
    children: Vec<std::process::Child>,
}

impl Drop for V2Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::write(self.base.join("ctr/cgroup.freeze"), "0");
        let _ = std::fs::remove_dir(self.base.join("ctr"));
        let _ = std::fs::remove_dir(&self.base);
        // Controllers the test enabled at the root go off again.
        let now =
            std::fs::read_to_string(self.mount.join("cgroup.subtree_control")).unwrap_or_default();
        for c in now.split_whitespace() {
            if !self.root_controllers.split_whitespace().any(|o| o == c) {
                let _ = std::fs::write(self.mount.join("cgroup.subtree_control"), format!("-{c}"));
            }
        }
    }
}

#[test]
fn v2_backend_on_the_real_cgroup2_mount() {
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 mount on this host");
        return;
    };
    let base = mount.join(format!("capsa-test-v2-{}", std::process::id()));
    let leaf = base.join("ctr");
    let mut guard = V2Cleanup {
        mount: mount.clone(),
        base: base.clone(),
        root_controllers: read(&mount, "cgroup.subtree_control"),
        children: Vec::new(),
    };
    let hugetlb = read(&mount, "cgroup.controllers")
        .split_whitespace()
        .any(|c| c == "hugetlb");
    let mut r = json!({
        "devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}],
        "unified": {"cgroup.max.descendants": "1"}
    });
    if hugetlb {
        r["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    }
    let mut rec = record(Version::V2, &[("unified", &leaf)]);
    rec.resources = Some(res(r));
    let mut m = V2::new(rec, Some(mount.clone()));
    let pid_of = |c: &std::process::Child| c.id() as i32;

    // prepare: directories, controllers from the root down, limits; then a
    // process joins by itself through the files it returns (as the init
    // does when clone3 cannot put it there).
    let join = cgroups::prepare(&mut m).unwrap();
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("100");
    // SAFETY: the closure only writes to fds opened before the fork (the
    // error path, which formats a message, never runs in this test).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            join.join_self(capsa::sys::Born::WithParent)
                .map_err(|e| std::io::Error::other(e.to_string()))
        });
    }
    let sleeper = cmd.spawn().unwrap();
    let pid = pid_of(&sleeper);
    guard.children.push(sleeper);
    assert_eq!(m.record().created, [base.clone(), leaf.clone()]);
    assert_eq!(read(&leaf, "cgroup.max.descendants"), "1");
    if hugetlb {
        assert_eq!(read(&leaf, "hugetlb.2MB.max"), "4194304");
    }
    assert_eq!(cgroups::pids(&m).unwrap(), [pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = leaf.strip_prefix(&mount).unwrap();
    assert!(own.contains(&format!("0::/{}\n", rel.display())), "{own}");

    // The eBPF filter: runc's defaults (null, zero...) and the rule for
    // loop0 reads pass, everything else is refused.
    let script = format!(
        "echo $$ > {}/cgroup.procs; \
         (: < /dev/null) && echo null-ok; (: < /dev/zero) && echo zero-ok; \
         (: < /dev/loop0) && echo loop-read-ok; (: >> /dev/loop0) 2>/dev/null || echo loop-write-denied; \
         (: < /dev/kmsg) 2>/dev/null || echo kmsg-denied",
        leaf.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "null-ok\nzero-ok\nloop-read-ok\nloop-write-denied\nkmsg-denied\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Freeze and thaw, then kill every process.
    m.freeze(true).unwrap();
    assert!(m.is_frozen());
    assert!(read(&leaf, "cgroup.events").contains("frozen 1"));
    m.freeze(false).unwrap();
    assert!(!m.is_frozen());
    let s = serde_json::to_value(m.stats().unwrap()).unwrap();
    assert!(s["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{s}");
    cgroups::signal_all(&m, libc::SIGKILL).unwrap();
    let st = guard.children[0].wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));

    // Removal takes the directories create made.
    cgroups::destroy(m.record()).unwrap();
    assert!(!leaf.exists() && !base.exists());
}
