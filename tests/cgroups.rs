//! cgroups on real containers (this machine's v1/hybrid hierarchy): every
//! resource read back from the host's cgroup files and, where it shows,
//! observed from inside; update, pause/resume, ps, events, kill --all,
//! delete and failed creates leave no cgroup behind.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cgroup directories capsa recorded for a container.
fn cgroup_dirs(ctx: &Ctx, id: &str) -> Value {
    let st: Value =
        serde_json::from_slice(&std::fs::read(ctx.root.join(id).join("state.json")).unwrap())
            .unwrap();
    st["cgroup"]["paths"].clone()
}

fn dir(paths: &Value, ctrl: &str) -> PathBuf {
    PathBuf::from(
        paths[ctrl]
            .as_str()
            .unwrap_or_else(|| panic!("no {ctrl} in {paths}")),
    )
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// Every line of a process's /proc/PID/cgroup names the container's own
/// directory of that hierarchy (the unified one included).
#[track_caller]
fn assert_in_container_cgroups(proc_cgroup: &str, paths: &Value, id: &str) {
    for line in proc_cgroup.lines() {
        let f: Vec<&str> = line.splitn(3, ':').collect();
        let key = if f[1].is_empty() { "unified" } else { f[1] };
        let d = dir(paths, key.split(',').next().unwrap());
        assert!(
            d.to_str().unwrap().ends_with(f[2]) && f[2].ends_with(id),
            "{line} vs {}",
            d.display()
        );
    }
}

/// Every directory of the container's cgroups, to check they are gone.
fn all_dirs(paths: &Value) -> Vec<PathBuf> {
    paths
        .as_object()
        .unwrap()
        .values()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect()
}

#[track_caller]
fn assert_gone(dirs: &[PathBuf]) {
    for d in dirs {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}

/// This host mounts v1 controllers (legacy or hybrid): what these tests
/// are written for. On a pure v2 host they are skipped (the v2 backend
/// has its own tests in cgroups_backends.rs).
fn v1_host() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1 = info.lines().any(|l| l.contains(" - cgroup cgroup "));
    if !v1 {
        eprintln!("skipped: no cgroup v1 controllers on this host");
    }
    v1
}

fn v1_mounted(ctrl: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - cgroup cgroup "))
        .any(|l| l.rsplit(' ').next().unwrap().split(',').any(|o| o == ctrl))
}

/// Where the v1 hierarchy of `ctrl` is mounted.
fn v1_mount(ctrl: &str) -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - cgroup cgroup "))
        .find(|l| l.rsplit(' ').next().unwrap().split(',').any(|o| o == ctrl))
        .map(|l| PathBuf::from(l.split(' ').nth(4).unwrap()))
}

/// A cgroup the probe makes, removed when dropped.
struct ProbeCgroup(PathBuf);

impl Drop for ProbeCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Which of `files` a new cgroup of v1 controller `ctrl` has on this host:
/// the optional kernel features (BFQ's weights, swap accounting, RT group
/// scheduling, ...) differ between machines of the same kind. Looked up
/// in a cgroup made for the purpose (some files are not on the root).
fn v1_file(ctrl: &str, files: &[&'static str]) -> Option<&'static str> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let probe =
        ProbeCgroup(v1_mount(ctrl)?.join(format!("capsa-test-probe-{}-{n}", std::process::id())));
    std::fs::create_dir(&probe.0).unwrap();
    files.iter().copied().find(|f| probe.0.join(f).exists())
}

/// A resource that depends on an optional kernel feature: its controller,
/// the files that hold it (any one), where it goes in LinuxResources, its
/// value and the flag of `update` that sets it.
struct Optional {
    ctrl: &'static str,
    files: &'static [&'static str],
    pointer: &'static str,
    value: i64,
    flag: &'static str,
}

/// Checks on a host without `o`'s feature that a create asking for it is
/// refused naming the field, and leaves nothing behind.
#[track_caller]
fn assert_create_refuses(ctx: &Ctx, o: &Optional) {
    let mut c = sleeper(ctx);
    let mut res = json!({});
    let (group, key) = o.pointer.trim_start_matches('/').split_once('/').unwrap();
    res[group] = json!({ key: o.value });
    c["linux"]["resources"] = res;
    ctx.write_config(&c);
    let id = ctx.id(&format!("no-{key}"));
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    let field = format!("config.json: linux.resources.{group}.{key}");
    assert_fails_with(&out, &field);
    assert!(stderr(&out).contains("host"), "{}", stderr(&out));
    assert!(ctx.state_entries().is_empty(), "{:?}", ctx.state_entries());
}

/// The optional resources these tests set, with this host's file for each
/// (`None`: the host lacks the feature).
fn optionals() -> Vec<(Optional, Option<&'static str>)> {
    [
        Optional {
            ctrl: "blkio",
            files: &["blkio.weight", "blkio.bfq.weight"],
            pointer: "/blockIO/weight",
            value: 300,
            flag: "--blkio-weight",
        },
        Optional {
            ctrl: "memory",
            files: &["memory.memsw.limit_in_bytes"],
            pointer: "/memory/swap",
            value: 134217728,
            flag: "--memory-swap",
        },
        Optional {
            ctrl: "memory",
            files: &["memory.kmem.tcp.limit_in_bytes"],
            pointer: "/memory/kernelTCP",
            value: 16777216,
            flag: "--kernel-memory-tcp",
        },
        Optional {
            ctrl: "cpu",
            files: &["cpu.cfs_burst_us"],
            pointer: "/cpu/burst",
            value: 1000,
            flag: "--cpu-burst",
        },
        Optional {
            ctrl: "cpu",
            files: &["cpu.rt_period_us"],
            pointer: "/cpu/realtimePeriod",
            value: 1000000,
            flag: "--cpu-rt-period",
        },
        Optional {
            ctrl: "cpu",
            files: &["cpu.rt_runtime_us"],
            pointer: "/cpu/realtimeRuntime",
            value: 10000,
            flag: "--cpu-rt-runtime",
        },
    ]
    .into_iter()
    .map(|o| {
        let f = v1_file(o.ctrl, o.files);
        if f.is_none() {
            eprintln!("this host has none of {:?}: checking the refusal", o.files);
        }
        (o, f)
    })
    .collect()
}

/// Each optional resource the host has shows its value in its file.
#[track_caller]
fn assert_optionals_set(optionals: &[(Optional, Option<&'static str>)], paths: &Value) {
    for (o, file) in optionals {
        if let Some(f) = file {
            let v = read(&dir(paths, o.ctrl), f);
            assert!(v.ends_with(&o.value.to_string()), "{f}: {v}");
        }
    }
}

/// The first whole disk of the host (`major:minor`), for block I/O rules.
fn a_disk() -> (u64, u64) {
    let parts = std::fs::read_to_string("/proc/partitions").unwrap();
    parts
        .lines()
        .skip(2)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[1] == "0").then(|| (f[0].parse().unwrap(), 0))
        })
        .expect("a block device in /proc/partitions")
}

/// Creates a container from `config` and returns its init's pid.
fn create(ctx: &Ctx, id: &str, config: &Value) -> i64 {
    ctx.write_config(config);
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), id]));
    ctx.state(id)["pid"].as_i64().unwrap()
}

fn sleeper(ctx: &Ctx) -> Value {
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["sleep", "1000"]);
    c
}

#[test]
fn every_resource_is_in_the_cgroup_files_before_the_process_runs() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-res");
    let (major, minor) = a_disk();
    let mut c = sleeper(&ctx);
    c["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}],
        "memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 20,
                   "disableOOMKiller": true, "useHierarchy": true},
        "cpu": {"shares": 512, "quota": 20000, "period": 50000,
                "cpus": "0", "mems": "0", "idle": 0},
        "pids": {"limit": 33},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                    "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2097152}],
                    "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 400}]}
    });
    // What depends on optional kernel features: set where the host has
    // it, else its refusal checked.
    let optionals = optionals();
    for (o, file) in &optionals {
        match file {
            Some(_) => {
                let (group, key) = o.pointer[1..].split_once('/').unwrap();
                c["linux"]["resources"][group][key] = json!(o.value);
            }
            None => assert_create_refuses(&ctx, o),
        }
    }
    let id = ctx.id("c");
    let pid = create(&ctx, &id, &c);
    let paths = cgroup_dirs(&ctx, &id);
    assert_optionals_set(&optionals, &paths);

    // The init (not yet running the user's program) sits in the
    // container's cgroup in every hierarchy, the unified one included.
    let proc_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_in_container_cgroups(&proc_cg, &paths, &id);

    let mem = dir(&paths, "memory");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(&mem, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(&mem, "memory.swappiness"), "20");
    assert!(read(&mem, "memory.oom_control").contains("oom_kill_disable 1"));
    let cpu = dir(&paths, "cpu");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "50000");
    if cpu.join("cpu.idle").exists() {
        assert_eq!(read(&cpu, "cpu.idle"), "0");
    }
    let cpuset = dir(&paths, "cpuset");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    assert_eq!(read(&dir(&paths, "pids"), "pids.max"), "33");
    let blkio = dir(&paths, "blkio");
    let dev = format!("{major}:{minor}");
    assert_eq!(
        read(&blkio, "blkio.throttle.read_bps_device"),
        format!("{dev} 1048576")
    );
    assert_eq!(
        read(&blkio, "blkio.throttle.write_bps_device"),
        format!("{dev} 2097152")
    );
    assert_eq!(
        read(&blkio, "blkio.throttle.read_iops_device"),
        format!("{dev} 300")
    );
    assert_eq!(
        read(&blkio, "blkio.throttle.write_iops_device"),
        format!("{dev} 400")
    );
    // Deny-all, the config's rule, then runc's defaults, in that order.
    let list = read(&dir(&paths, "devices"), "devices.list");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "c 10:229 rw", "{list}");
    assert!(lines.contains(&"c 1:3 rwm") && lines.contains(&"c 136:* rwm"));
    assert!(!list.contains("a *:*"), "{list}");

    let all = all_dirs(&paths);
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert_gone(&all);
}

/// An `exec` process joins the container's cgroups by itself before it
/// runs (the v1 ones by writing to `tasks`, the cgroup2 one by being born
/// there): host-side, /proc/PID/cgroup of the exec'd process names the
/// container's directory in every hierarchy, the limits apply to it, and
/// the pids controller counts it.
#[test]
fn exec_processes_are_in_every_cgroup_of_the_container() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-exec");
    let mut c = sleeper(&ctx);
    c["linux"]["resources"] = json!({"pids": {"limit": 2}});
    let id = ctx.id("c");
    let init = create(&ctx, &id, &c);
    assert_ok(&ctx.capsa(&["start", &id]));
    let paths = cgroup_dirs(&ctx, &id);
    let pid_file = ctx.dir.join("exec.pid");
    let out = ctx.capsa(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    assert_ok(&out);
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, init);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let init_cg = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert_eq!(own, init_cg);
    assert_in_container_cgroups(&own, &paths, &id);
    let pids = dir(&paths, "pids");
    assert_eq!(read(&pids, "pids.current"), "2");
    // The limit of 2 holds for exec'd processes too: a third is refused.
    let out = ctx.capsa(&["exec", &id, "sh", "-c", "sleep 1 & wait"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let all = all_dirs(&paths);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert_gone(&all);
}

#[test]
fn the_container_sees_its_own_cgroup_and_limits() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-inside");
    let script = "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
                  /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/pids/cgroup.procs";
    let mut c = ctx.sh_config(script);
    c["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 21}});
    let out = ctx.run(&c);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // A cgroup namespace rooted at the container's cgroup.
    assert!(
        lines.contains(&"0::/") && lines.iter().any(|l| l.ends_with(":memory:/")),
        "{text}"
    );
    let n = lines.len();
    assert_eq!(&lines[n - 3..n - 1], &["33554432", "21"], "{text}");

    // Without a cgroup namespace /sys/fs/cgroup shows the container's own
    // cgroups, bind mounted.
    // (sh execs cat: the one process of the container.)
    let mut c = ctx.sh_config("cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids/cgroup.procs");
    c["linux"]["resources"] = json!({"pids": {"limit": 22}});
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "22\n1\n");
}

#[test]
fn a_fork_beyond_pids_limit_fails() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-pids");
    let mut c = ctx.sh_config(
        // The forks in a subshell (sh gives up at the first failed one),
        // then builtins only.
        "(for i in 1 2 3 4 5 6; do sleep 5 & done) 2>&1; read n < /sys/fs/cgroup/pids/pids.current; echo current=$n",
    );
    c["linux"]["resources"] = json!({"pids": {"limit": 4}});
    let out = ctx.run(&c);
    let text = stdout(&out) + &stderr(&out);
    assert!(text.contains("can't fork"), "{text}");
    let current: u32 = text
        .split("current=")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((1..=4).contains(&current), "{text}");
}

#[test]
fn a_memory_hog_is_oom_killed_and_events_reports_it() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-oom");
    let mut c = ctx
        .sh_config("sleep 0.5; dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?; sleep 0.5");
    c["linux"]["resources"] = json!({"memory": {"limit": 16777216}});
    let id = ctx.id("c");
    create(&ctx, &id, &c);
    let paths = cgroup_dirs(&ctx, &id);
    let events = ctx
        .cmd(&["events", "--interval", "100ms", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert_ok(&ctx.capsa(&["start", &id]));
    // events returns by itself once the container has stopped.
    let out = events.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let evs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        evs.iter().any(|e| *e == json!({"type": "oom", "id": id})),
        "{text}"
    );
    let stats = evs
        .iter()
        .find(|e| e["type"] == "stats")
        .expect("a stats event");
    assert_eq!(stats["data"]["memory"]["usage"]["limit"], 16777216);
    let oom = read(&dir(&paths, "memory"), "memory.oom_control");
    assert!(!oom.contains("oom_kill 0"), "{oom}");
    ctx.wait_status(&id, "stopped");
    let all = all_dirs(&paths);
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert_gone(&all);
}

#[test]
fn devices_outside_the_rules_cannot_be_opened() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-dev");
    let script = "(: < /dev/loop0) 2>&1 && echo loop-read-ok; (: >> /dev/loop0) 2>&1 || echo loop-write-denied; \
                  head -c 1 /dev/zero | wc -c; : > /dev/null && echo null-ok";
    let mut c = ctx.sh_config(script);
    c["linux"]["devices"] =
        json!([{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0, "fileMode": 0o666}]);
    // The default config denies everything but runc's default devices.
    let out = ctx.run(&c);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(!text.contains("loop-read-ok"), "{text}");
    assert!(text.contains("1\nnull-ok"), "{text}");

    // Allowed for reading only: reading opens, writing does not.
    c["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}
    ]);
    let out = ctx.run(&c);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("loop-read-ok") && text.contains("loop-write-denied"),
        "{text}"
    );
}

/// The CPU time (user + system, in clock ticks) a process has used.
fn cpu_ticks(pid: i64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<u64> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    f[0] + f[1]
}

#[test]
fn paused_processes_do_not_run_until_resumed() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-pause");
    let c = ctx.sh_config("while true; do :; done");
    let id = ctx.id("c");
    let pid = create(&ctx, &id, &c);
    let paths = cgroup_dirs(&ctx, &id);
    assert_ok(&ctx.capsa(&["start", &id]));
    std::thread::sleep(Duration::from_millis(200));
    assert!(cpu_ticks(pid) > 0);

    assert_ok(&ctx.capsa(&["pause", &id]));
    assert_eq!(ctx.status(&id), "paused");
    assert_eq!(read(&dir(&paths, "freezer"), "freezer.state"), "FROZEN");
    let list = ctx.capsa(&["list"]);
    assert!(stdout(&list).contains("paused"));
    let n = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), n, "a paused process ran");
    assert_fails_with(&ctx.capsa(&["pause", &id]), "container not running");
    assert_fails_with(&ctx.capsa(&["start", &id]), "paused");
    assert_fails_with(&ctx.capsa(&["delete", &id]), "not stopped: paused");

    assert_ok(&ctx.capsa(&["resume", &id]));
    assert_eq!(ctx.status(&id), "running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_ticks(pid) > n, "a resumed process did not run");
    assert_fails_with(&ctx.capsa(&["resume", &id]), "container not paused");

    // A paused container can be force-deleted.
    assert_ok(&ctx.capsa(&["pause", &id]));
    let all = all_dirs(&paths);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert!(!alive(pid));
    assert_gone(&all);
    assert_fails_with(&ctx.capsa(&["pause", &id]), "does not exist");
}

#[test]
fn update_changes_every_flag_and_resources_documents() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-update");
    let mut c = sleeper(&ctx);
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 10}});
    let id = ctx.id("c");
    create(&ctx, &id, &c);
    assert_ok(&ctx.capsa(&["start", &id]));
    let paths = cgroup_dirs(&ctx, &id);
    let (mem, cpu, cpuset) = (
        dir(&paths, "memory"),
        dir(&paths, "cpu"),
        dir(&paths, "cpuset"),
    );
    // The flags of optional kernel features: given where the host has
    // them, else each one's refusal checked.
    let optionals = optionals();
    let values: Vec<String> = optionals.iter().map(|(o, _)| o.value.to_string()).collect();
    let mut args = vec![
        "update",
        "--memory",
        "128m",
        "--memory-reservation",
        "64m",
        "--cpu-shares",
        "300",
        "--cpu-quota",
        "25000",
        "--cpu-period",
        "50000",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--pids-limit",
        "42",
    ];
    for ((o, file), v) in optionals.iter().zip(&values) {
        if file.is_some() {
            args.extend([o.flag, v.as_str()]);
        } else {
            let (group, key) = o.pointer[1..].split_once('/').unwrap();
            let out = ctx.capsa(&["update", o.flag, v, &id]);
            assert_fails_with(&out, &format!("linux.resources.{group}.{key}"));
            assert!(stderr(&out).contains("host"), "{}", stderr(&out));
        }
    }
    args.push(&id);
    assert_ok(&ctx.capsa(&args));
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "134217728");
    assert_eq!(read(&mem, "memory.soft_limit_in_bytes"), "67108864");
    assert_eq!(read(&cpu, "cpu.shares"), "300");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "25000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "50000");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&dir(&paths, "pids"), "pids.max"), "42");
    assert_optionals_set(&optionals, &paths);
    let swap = optionals
        .iter()
        .any(|(o, f)| o.flag == "--memory-swap" && f.is_some());

    // Lowering memory below memory+swap works in either order, and -1
    // lifts both; only what is given changes.
    assert_ok(&ctx.capsa(&["update", "--memory", "32m", &id]));
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "33554432");
    if swap {
        assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "134217728");
    }
    assert_ok(&ctx.capsa(&["update", "--memory", "-1", "--pids-limit", "-1", &id]));
    assert!(read(&mem, "memory.limit_in_bytes").parse::<u64>().unwrap() > 1 << 60);
    if swap {
        assert!(
            read(&mem, "memory.memsw.limit_in_bytes")
                .parse::<u64>()
                .unwrap()
                > 1 << 60
        );
    }
    assert_eq!(read(&dir(&paths, "pids"), "pids.max"), "max");
    assert_eq!(read(&cpu, "cpu.shares"), "300");

    // A LinuxResources document on stdin, as containerd sends it.
    let mut child = ctx
        .cmd(&["update", "--resources", "-", &id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let doc = if swap {
        r#"{"memory": {"limit": 50331648, "swap": 100663296}, "cpu": {"shares": 700}, "pids": {"limit": 77}}"#
    } else {
        r#"{"memory": {"limit": 50331648}, "cpu": {"shares": 700}, "pids": {"limit": 77}}"#
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "50331648");
    if swap {
        assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "100663296");
    }
    assert_eq!(read(&cpu, "cpu.shares"), "700");
    assert_eq!(read(&dir(&paths, "pids"), "pids.max"), "77");
    // An idle group keeps later updates working; leaving idle restores
    // shares.
    if cpu.join("cpu.idle").exists() {
        assert_ok(&ctx.capsa(&["update", "--cpu-idle", "1", &id]));
        assert_eq!(read(&cpu, "cpu.idle"), "1");
        assert_ok(&ctx.capsa(&["update", "--pids-limit", "78", &id]));
        assert_eq!(read(&dir(&paths, "pids"), "pids.max"), "78");
        assert_ok(&ctx.capsa(&["update", "--cpu-idle", "0", "--cpu-shares", "400", &id]));
        assert_eq!(read(&cpu, "cpu.idle"), "0");
        assert_eq!(read(&cpu, "cpu.shares"), "400");
    } else {
        assert_fails_with(
            &ctx.capsa(&["update", "--cpu-idle", "1", &id]),
            "linux.resources.cpu.idle",
        );
    }
    // And from a file, with checkBeforeUpdate refusing a limit below usage.
    let f = ctx.dir.join("res.json");
    std::fs::write(
        &f,
        r#"{"memory": {"limit": 4096, "checkBeforeUpdate": true}}"#,
    )
    .unwrap();
    assert_fails_with(
        &ctx.capsa(&["update", "-r", f.to_str().unwrap(), &id]),
        "linux.resources.memory.limit: rejecting memory limit 4096 below the current usage",
    );
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "50331648");

    // What the host cannot do is named.
    if !v1_mounted("net_cls") {
        std::fs::write(&f, r#"{"network": {"classID": 1048577}}"#).unwrap();
        assert_fails_with(
            &ctx.capsa(&["update", "-r", f.to_str().unwrap(), &id]),
            "linux.resources.network.classID: the net_cls cgroup controller is not mounted on this host",
        );
    }
    assert_fails_with(
        &ctx.capsa(&["update", "--memory", "lots", &id]),
        "invalid value for --memory",
    );
    std::fs::write(&f, r#"{"memory": {"limit": "x"}}"#).unwrap();
    assert_fails_with(
        &ctx.capsa(&["update", "-r", f.to_str().unwrap(), &id]),
        "linux.resources.memory.limit",
    );

    assert_ok(&ctx.capsa(&["kill", &id, "KILL"]));
    ctx.wait_status(&id, "stopped");
    assert_fails_with(
        &ctx.capsa(&["update", "--pids-limit", "5", &id]),
        "container not running",
    );
}

#[test]
fn ps_lists_the_processes_of_the_cgroup() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-ps");
    let c = ctx.sh_config("sleep 1000 & sleep 1000 & wait");
    let id = ctx.id("c");
    let pid = create(&ctx, &id, &c);
    let pids_of = |ctx: &Ctx| -> Vec<i64> {
        let out = ctx.capsa(&["ps", "--format", "json", &id]);
        assert_ok(&out);
        let mut v: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
        v.sort();
        v
    };
    assert_eq!(pids_of(&ctx), [pid]);
    assert_ok(&ctx.capsa(&["start", &id]));
    let mut all = Vec::new();
    for _ in 0..200 {
        all = pids_of(&ctx);
        if all.len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&pid));
    let procs = read(&dir(&cgroup_dirs(&ctx, &id), "pids"), "cgroup.procs");
    let mut from_cg: Vec<i64> = procs.lines().map(|l| l.parse().unwrap()).collect();
    from_cg.sort();
    assert_eq!(all, from_cg);

    let out = ctx.capsa(&["ps", &id]);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("PID") && lines[0].contains("CMD"),
        "{text}"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("sleep 1000")).count(),
        2
    );
    let out = ctx.capsa(&["ps", &id, "-o", "pid,comm"]);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("PID") && lines[0].contains("COMMAND"),
        "{text}"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert_fails_with(
        &ctx.capsa(&["ps", "--format", "json", "nosuch"]),
        "does not exist",
    );
}

#[test]
fn events_stats_reports_usage_in_runc_format() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-stats");
    let mut c = sleeper(&ctx);
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    let id = ctx.id("c");
    create(&ctx, &id, &c);
    assert_ok(&ctx.capsa(&["start", &id]));
    let out = ctx.capsa(&["events", "--stats", &id]);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    let d = &v["data"];
    for k in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ] {
        assert!(d.get(k).is_some(), "{k} missing in {d}");
    }
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert!(d["cpu"]["usage"]["percpu"].as_array().is_some());
    assert_eq!(d["memory"]["usage"]["limit"], 67108864);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(d["memory"]["raw"]["total_rss"].is_u64());
    assert_eq!(d["pids"]["current"], 1);
    assert_eq!(d["pids"]["limit"], 50);
    assert!(!d["cpuset"]["cpus"].as_array().unwrap().is_empty());
    assert_fails_with(
        &ctx.capsa(&["events", "--interval", "0s", &id]),
        "must be greater than 0",
    );
    assert_fails_with(
        &ctx.capsa(&["events", "--interval", "soon", &id]),
        "invalid value \"soon\" for --interval",
    );
    assert_ok(&ctx.capsa(&["kill", &id, "KILL"]));
    ctx.wait_status(&id, "stopped");
    assert_fails_with(&ctx.capsa(&["events", "--stats", &id]), "is not running");
}

/// The process exists and is not a zombie waiting for its reaper.
fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn kill_all_and_delete_reach_every_process_of_the_cgroup() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-killall");
    // No PID namespace: the init's death does not take the others along.
    let mut c = ctx.sh_config("sleep 1000 & sleep 1000 & echo started; wait");
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    let id = ctx.id("c");
    create(&ctx, &id, &c);
    assert_ok(&ctx.capsa(&["start", &id]));
    let paths = cgroup_dirs(&ctx, &id);
    let procs = |paths: &Value| -> Vec<i64> {
        std::fs::read_to_string(dir(paths, "pids").join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while procs(&paths).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = procs(&paths);
    assert_eq!(before.len(), 3);
    assert_ok(&ctx.capsa(&["kill", "--all", &id, "KILL"]));
    ctx.wait_status(&id, "stopped");
    let deadline = Instant::now() + Duration::from_secs(5);
    while before.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!before.iter().any(|p| alive(*p)), "{before:?} survived");
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert_gone(&all_dirs(&paths));

    // An init that exits leaves its children in the cgroup: delete of the
    // stopped container kills them before removing the cgroup.
    let mut c2 = c.clone();
    c2["process"]["args"] = json!(["sh", "-c", "setsid sleep 1000 & exit 0"]);
    let id = ctx.id("c2");
    create(&ctx, &id, &c2);
    let paths = cgroup_dirs(&ctx, &id);
    assert_ok(&ctx.capsa(&["start", &id]));
    ctx.wait_status(&id, "stopped");
    let left = procs(&paths);
    assert_eq!(left.len(), 1, "the orphan sleep: {left:?}");
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert!(!alive(left[0]));
    assert_gone(&all_dirs(&paths));
}

/// containerd's shim runs `kill --all ID 9` when the init of a container
/// without a PID namespace of its own exits (a pod's shared or the host's
/// namespace): the children the init left in the cgroup must die then, not
/// at delete, and the stopped container must not make it an error.
#[test]
fn kill_all_of_a_stopped_container_reaches_what_its_init_left() {
    let ctx = Ctx::new("capsa-cg-killall-stopped");
    let mut c = ctx.sh_config("sleep 1000 & echo $! > /tmp/orphan; exit 0");
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    c["root"]["readonly"] = false.into();
    let id = ctx.id("c");
    create(&ctx, &id, &c);
    let paths = cgroup_dirs(&ctx, &id);
    assert_ok(&ctx.capsa(&["start", &id]));
    ctx.wait_status(&id, "stopped");
    // Without a PID namespace the pid the container saw is the host's.
    let file = ctx.bundle.join("rootfs/tmp/orphan");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.ends_with('\n'))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let orphan: i64 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(orphan), "the orphan sleep {orphan} is not running");
    let in_cgroup = all_dirs(&paths).iter().any(|d| {
        std::fs::read_to_string(d.join("cgroup.procs"))
            .is_ok_and(|t| t.lines().any(|l| l == orphan.to_string()))
    });
    assert!(in_cgroup, "the orphan {orphan} is not in {paths}");

    // Only the init is signalled without --all (SIGKILL aside, which
    // reaches every process of a container without a PID namespace, as in
    // runc 1.2: tests/cli.rs), and it is gone.
    assert_fails_with(&ctx.capsa(&["kill", &id, "TERM"]), "container not running");
    assert!(alive(orphan), "a plain kill reached the orphan {orphan}");
    assert_ok(&ctx.capsa(&["kill", "--all", &id, "KILL"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(orphan) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !alive(orphan),
        "kill --all left the orphan {orphan} running"
    );
    // Nothing left to signal is no error either.
    assert_ok(&ctx.capsa(&["kill", "--all", &id, "TERM"]));
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert_gone(&all_dirs(&paths));
}

#[test]
fn a_failed_create_leaves_no_cgroup() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-fail");
    let leftovers = |id: &str| -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let own = own_cgroup(&e.file_name().to_string_lossy());
            for p in [
                e.path().join(id),
                e.path().join(own.trim_start_matches('/')).join(id),
            ] {
                if p.exists() {
                    out.push(p);
                }
            }
        }
        out
    };
    let check = |c: &Value, id: &str, msg: &str| {
        ctx.write_config(c);
        let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), id]);
        assert_fails_with(&out, msg);
        assert!(leftovers(id).is_empty(), "{:?}", leftovers(id));
        assert!(ctx.state_entries().is_empty());
    };
    // A value the kernel refuses.
    let mut c = sleeper(&ctx);
    c["linux"]["resources"] = json!({"pids": {"limit": 5}, "cpu": {"cpus": "0-4095"}});
    check(
        &c,
        &ctx.id("cpus"),
        "config.json: linux.resources.cpu.cpus: write \"0-4095\" to ",
    );
    // A controller this host lacks.
    if !v1_mounted("hugetlb") {
        c["linux"]["resources"] =
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]});
        check(
            &c,
            &ctx.id("huge"),
            "config.json: linux.resources.hugepageLimits[0]: the hugetlb cgroup controller is not mounted on this host",
        );
    }
    if !v1_mounted("net_prio") {
        c["linux"]["resources"] =
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}});
        check(
            &c,
            &ctx.id("prio"),
            "config.json: linux.resources.network.priorities[0]: the net_prio cgroup controller is not mounted",
        );
    }
    if !v1_mounted("rdma") {
        c["linux"]["resources"] = json!({"rdma": {"mlx5_0": {"hcaHandles": 3}}});
        check(
            &c,
            &ctx.id("rdma"),
            "config.json: linux.resources.rdma[\"mlx5_0\"]: the rdma cgroup controller is not mounted",
        );
    }
    // A file the kernel removed (CFQ's leaf weights), and v2-only files.
    c["linux"]["resources"] = json!({"blockIO": {"leafWeight": 300}});
    check(
        &c,
        &ctx.id("leaf"),
        "config.json: linux.resources.blockIO.leafWeight: this host does not support it",
    );
    c["linux"]["resources"] = json!({"unified": {"memory.high": "1000000"}});
    check(
        &c,
        &ctx.id("unified"),
        "config.json: linux.resources.unified: raw cgroup v2 files need a cgroup v2 host",
    );
    c["linux"]["resources"] = json!({"memory": {"swappiness": 101}});
    check(
        &c,
        &ctx.id("swappiness"),
        "config.json: linux.resources.memory.swappiness: 101 is not in the range 0-100",
    );
    c["linux"]["resources"] = json!({"devices": [{"allow": true, "type": "c", "access": "rwx"}]});
    check(
        &c,
        &ctx.id("devaccess"),
        "config.json: linux.resources.devices[0].access: \"rwx\" is not a combination of r, w and m",
    );
    // The cgroup is made, then the init fails: it goes too.
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["/no/such/program"]);
    c["linux"]["resources"] = json!({"pids": {"limit": 5}});
    check(&c, &ctx.id("noprog"), "no such file or directory");
}

/// The test process's own cgroup in the v1 hierarchy `ctrl` (or the
/// unified one).
fn own_cgroup(ctrl: &str) -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.splitn(3, ':').collect();
            let hit = if ctrl == "unified" {
                f[1].is_empty()
            } else {
                f[1].split(',')
                    .any(|c| c == ctrl || c == format!("name={ctrl}"))
            };
            hit.then(|| f[2].to_string())
        })
        .unwrap_or_else(|| "/".into())
}

#[test]
fn cgroups_path_absolute_relative_default_and_systemd() {
    if !v1_host() {
        return;
    }
    let ctx = Ctx::new("capsa-cg-path");
    let tag = format!("capsa-test-{}", std::process::id());
    let path_of = |ctx: &Ctx, id: &str, cfg: &Value, extra: &[&str]| -> Value {
        ctx.write_config(cfg);
        let mut args = extra.to_vec();
        args.extend(["create", "--bundle", ctx.bundle_str(), id]);
        assert_ok(&ctx.capsa(&args));
        cgroup_dirs(ctx, id)
    };
    let mem_root = Path::new("/sys/fs/cgroup/memory");
    let own_mem = own_cgroup("memory");

    // Default: the id, below the runtime's own cgroup in each hierarchy.
    let c = sleeper(&ctx);
    let id = ctx.id("default");
    let p = path_of(&ctx, &id, &c, &[]);
    assert_eq!(
        dir(&p, "memory"),
        mem_root.join(own_mem.trim_start_matches('/')).join(&id)
    );
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert_gone(&all_dirs(&p));

    // Absolute: from each hierarchy's root; the parents it made go too.
    let mut c = sleeper(&ctx);
    c["linux"]["cgroupsPath"] = format!("/{tag}/abs/ctr").into();
    let id = ctx.id("abs");
    let p = path_of(&ctx, &id, &c, &[]);
    assert_eq!(dir(&p, "memory"), mem_root.join(&tag).join("abs/ctr"));
    assert_eq!(
        dir(&p, "pids"),
        Path::new("/sys/fs/cgroup/pids").join(&tag).join("abs/ctr")
    );
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert!(!mem_root.join(&tag).exists());

    // Relative: below the runtime's own cgroup.
    c["linux"]["cgroupsPath"] = format!("{tag}/rel").into();
    let id = ctx.id("rel");
    let p = path_of(&ctx, &id, &c, &[]);
    let own_base = mem_root.join(own_mem.trim_start_matches('/'));
    assert_eq!(dir(&p, "memory"), own_base.join(&tag).join("rel"));
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert!(!own_base.join(&tag).exists());

    // systemd's slice:prefix:name: a malformed one is refused before
    // capsa talks to systemd (the unit itself, in a real systemd, is
    // integration/systemd.rs's).
    c["linux"]["cgroupsPath"] = "not-a-systemd-path".into();
    ctx.write_config(&c);
    assert_fails_with(
        &ctx.capsa(&[
            "--systemd-cgroup",
            "create",
            "--bundle",
            ctx.bundle_str(),
            &ctx.id("bad"),
        ]),
        "config.json: linux.cgroupsPath: expected \"slice:prefix:name\"",
    );
    c["linux"]["cgroupsPath"] = "/".into();
    ctx.write_config(&c);
    assert_fails_with(
        &ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &ctx.id("root")]),
        "config.json: linux.cgroupsPath: \"/\" names the root cgroup",
    );
}

/// A cgroup made before the test (not by capsa) holding a host process:
/// what a cgroupsPath shared with something else looks like. Dropping it
/// kills the process and removes the directory.
struct SharedCgroup {
    dir: PathBuf,
    host: std::process::Child,
}

impl SharedCgroup {
    fn new(ctrl: &str, name: &str) -> SharedCgroup {
        let dir = Path::new("/sys/fs/cgroup").join(ctrl).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let host = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let shared = SharedCgroup { dir, host };
        std::fs::write(
            shared.dir.join("cgroup.procs"),
            shared.host.id().to_string(),
        )
        .unwrap();
        shared
    }

    fn procs(&self) -> Vec<i64> {
        read(&self.dir, "cgroup.procs")
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }
}

impl Drop for SharedCgroup {
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err_and(|e| e.raw_os_error() == Some(libc::EBUSY))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn delete_spares_the_other_processes_of_a_cgroup_it_did_not_make() {
    if !v1_host() {
        return;
    }
    let name = format!("capsa-test-shared-{}", std::process::id());
    // Declared before the context, so dropped after its containers.
    let shared = SharedCgroup::new("pids", &name);
    let host = i64::from(shared.host.id());
    let ctx = Ctx::new("capsa-cg-shared");
    // A PID namespace of its own (the default): the container's processes
    // are its init and the init's children.
    let mut c = ctx.sh_config("sleep 1000 & exec sleep 1000");
    c["linux"]["cgroupsPath"] = format!("/{name}").into();
    let id = ctx.id("running");
    let init = create(&ctx, &id, &c);
    assert_ok(&ctx.capsa(&["start", &id]));
    let paths = cgroup_dirs(&ctx, &id);
    assert_eq!(dir(&paths, "pids"), shared.dir);
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.procs().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut ours = shared.procs();
    ours.retain(|p| *p != host);
    assert_eq!(ours.len(), 2, "the init and its child: {ours:?}");
    assert!(ours.contains(&init));
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert!(!ours.iter().any(|p| alive(*p)), "{ours:?} survived");
    assert!(
        alive(host),
        "delete killed a host process in the shared cgroup"
    );
    assert_eq!(shared.procs(), vec![host]);
    assert!(
        shared.dir.exists(),
        "a busy cgroup capsa did not make was removed"
    );
    // The directories create made in the other hierarchies are gone.
    let made: Vec<PathBuf> = all_dirs(&paths)
        .into_iter()
        .filter(|d| *d != shared.dir)
        .collect();
    assert!(!made.is_empty());
    assert_gone(&made);

    // The same for run in the foreground, whose container ends by itself.
    let mut c = ctx.sh_config("echo done");
    c["linux"]["cgroupsPath"] = format!("/{name}").into();
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "done");
    assert!(
        alive(host),
        "run killed a host process in the shared cgroup"
    );
    assert_eq!(shared.procs(), vec![host]);
}
