//! Fields of the runtime-spec real clients send beyond the basics:
//! each is honoured (observed from inside the container) or refused by
//! name, never accepted and dropped.

mod common;
use common::*;
use serde_json::json;

#[test]
fn intel_rdt_is_refused_by_name() {
    let ctx = Ctx::new("rdt");
    let mut c = ctx.default_config();
    c["linux"]["intelRdt"] = json!({"closID": "capsa-test", "l3CacheSchema": "L3:0=f"});
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    let resctrl = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/resctrl ") && l.contains(" - resctrl "));
    if resctrl {
        assert_fails_with(&out, "linux.intelRdt: capsa does not implement");
    } else {
        assert_fails_with(&out, "linux.intelRdt: this host has no resctrl filesystem");
    }
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn a_rootfs_that_is_a_symlink_is_refused() {
    let ctx = Ctx::new("rootlink");
    std::fs::rename(ctx.bundle.join("rootfs"), ctx.bundle.join("real")).unwrap();
    std::os::unix::fs::symlink("real", ctx.bundle.join("rootfs")).unwrap();
    let id = ctx.id("c");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "root.path: rootfs is a symlink or passes through one");
    assert!(ctx.state_entries().is_empty());
    // The real directory, named as such, runs; so does a bundle reached
    // through a symlink (only what root.path adds must be free of links).
    let mut c = ctx.sh_config("echo ok");
    c["root"]["path"] = json!("real");
    let link = ctx.dir.join("bundle-link");
    std::os::unix::fs::symlink(&ctx.bundle, &link).unwrap();
    ctx.write_config(&c);
    let out = ctx.capsa(&["run", "--bundle", link.to_str().unwrap(), &id]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "ok\n");
}

/// A veth pair the test makes on the host, deleted when the test ends.
struct Veth(String);

impl Veth {
    fn new(tag: char) -> Veth {
        let name = format!("cpv{}{tag}", std::process::id() % 100_000);
        let _ = ip(&["link", "del", &name]);
        let peer = format!("{name}p");
        let out = ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        assert!(out.status.success(), "ip link add: {}", stderr(&out));
        Veth(name)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)")
}

/// Asserts that `dev` is in the host's network namespace with `addr`.
#[track_caller]
fn assert_on_host_with(dev: &str, addr: &str) {
    let out = ip(&["-o", "addr", "show", "dev", dev]);
    assert!(
        out.status.success(),
        "{dev} is not on the host: {}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("inet {addr}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn net_devices_move_into_the_container_with_their_addresses_and_back() {
    let ctx = Ctx::new("netdev");
    let veth = Veth::new('a');
    let dev = veth.0.as_str();
    assert!(
        ip(&["addr", "add", "10.199.77.1/24", "dev", dev])
            .status
            .success()
    );
    assert!(ip(&["link", "set", dev, "up"]).status.success());
    let mut c =
        ctx.sh_config("ip -o addr show dev eth7; ip -o link show dev eth7; echo done; sleep 100");
    c["linux"]["netDevices"] = json!({ dev: {"name": "eth7"} });
    ctx.write_config(&c);
    let id = ctx.id("c");
    let log = ctx.dir.join("out.txt");
    ctx.create_logged(&id, &log);
    // Gone from the host while the container has it.
    assert!(!ip(&["link", "show", dev]).status.success());
    let text = ctx.start_and_wait_for(&id, &log, "done\n");
    assert!(
        text.contains("eth7") && text.contains("inet 10.199.77.1/24"),
        "{text}"
    );
    let link = text.lines().find(|l| l.contains("<")).unwrap_or("");
    assert!(
        link.contains(",UP") || link.contains("<UP"),
        "eth7 is not up: {text}"
    );
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    // Back on the host, under its own name, with its address.
    assert_on_host_with(dev, "10.199.77.1/24");
}

#[test]
fn net_devices_are_refused_without_a_network_namespace_or_device() {
    let ctx = Ctx::new("netdevbad");
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["linux"]["netDevices"] = json!({ "cpvnosuchdev0": {} });
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(
        &out,
        "linux.netDevices[\"cpvnosuchdev0\"]: no interface cpvnosuchdev0",
    );
    assert!(ctx.state_entries().is_empty());
    let veth = Veth::new('b');
    c["linux"]["netDevices"] = json!({ veth.0.as_str(): {} });
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(
        &out,
        "linux.netDevices: moving network devices needs a network namespace",
    );
    assert!(ctx.state_entries().is_empty());
    assert!(ip(&["link", "show", &veth.0]).status.success());
    // A create that fails after moving the device gives it back.
    assert!(
        ip(&["addr", "add", "10.199.78.1/24", "dev", &veth.0])
            .status
            .success()
    );
    let mut c = ctx.default_config();
    c["linux"]["netDevices"] = json!({ veth.0.as_str(): {"name": "eth8"} });
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": ctx.dir.join("no-such-dir"),
        "options": ["rbind"]}));
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "no-such-dir");
    assert!(ctx.state_entries().is_empty());
    assert_on_host_with(&veth.0, "10.199.78.1/24");
}

#[test]
fn io_priority_scheduler_and_personality_are_seen_inside() {
    let ctx = Ctx::new("attrs");
    let mut c = ctx.sh_config(
        "ionice; grep -E '^(policy|prio) ' /proc/self/sched | tr -s ' '; cat /proc/self/personality",
    );
    c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 5});
    c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    c["linux"]["personality"] = json!({"domain": "LINUX32"});
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "best-effort: prio 5\npolicy : 3\nprio : 127\n00000008\n"
    );
}

#[test]
fn bad_scheduling_attributes_are_refused_by_name() {
    let ctx = Ctx::new("attrsbad");
    let id = ctx.id("c");
    for (field, value, needle) in [
        (
            "ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 9}),
            "process.ioPriority.priority: 9 is not in 0..7",
        ),
        (
            "scheduler",
            json!({"policy": "SCHED_FIFO", "priority": 0}),
            "process.scheduler.priority: 0 is not in 1..99",
        ),
        (
            "scheduler",
            json!({"policy": "SCHED_OTHER", "nice": 40}),
            "process.scheduler.nice: 40 is not in -20..19",
        ),
        (
            "execCPUAffinity",
            json!({"final": "0-5000"}),
            "process.execCPUAffinity.final: \"0-5000\" is not a range below",
        ),
    ] {
        let mut c = ctx.default_config();
        c["process"][field] = value;
        ctx.write_config(&c);
        let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
        assert_fails_with(&out, needle);
        assert!(ctx.state_entries().is_empty());
    }
    let mut c = ctx.default_config();
    c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"});
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "linux.memoryPolicy.nodes: MPOL_BIND needs nodes");
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn memory_policy_is_seen_inside_or_refused() {
    let ctx = Ctx::new("mempol");
    let mut c = ctx.sh_config("head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2");
    c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    let out = ctx.run(&c);
    if std::path::Path::new("/proc/self/numa_maps").exists() {
        assert_ok(&out);
        assert_eq!(stdout(&out), "interleave:0\n");
    } else {
        assert_fails_with(&out, "linux.memoryPolicy: set_mempolicy MPOL_INTERLEAVE");
    }
}

/// The CPUs this test may run on.
fn allowed_cpus() -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .collect()
}

#[test]
fn exec_cpu_affinity_final_and_io_priority_hold_for_the_init_and_exec() {
    let cpus = allowed_cpus();
    let first = cpus[0].to_string();
    let last = cpus[cpus.len() - 1].to_string();
    let ctx = Ctx::new("affinity");
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["process"]["execCPUAffinity"] = json!({"initial": first, "final": last});
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    assert_ok(&ctx.capsa(&["start", &id]));
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(status_field(&status, "Cpus_allowed_list"), last);
    // exec --process with its own final affinity.
    let mut p = c["process"].clone();
    p["args"] = json!([
        "sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status; ionice"
    ]);
    p["execCPUAffinity"] = json!({"initial": last, "final": first});
    p["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    let file = ctx.dir.join("process.json");
    std::fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = ctx.capsa(&["exec", "--process", file.to_str().unwrap(), &id]);
    assert_ok(&out);
    assert_eq!(status_field(&stdout(&out), "Cpus_allowed_list"), first);
    assert!(stdout(&out).ends_with("idle\n"), "{}", stdout(&out));
    // A bad value in the exec's process is refused by name.
    p["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
    std::fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = ctx.capsa(&["exec", "--process", file.to_str().unwrap(), &id]);
    assert_fails_with(&out, "exec process.ioPriority.priority: 9 is not in 0..7");
    // A plain exec runs the config's process, with its affinity.
    let out = ctx.capsa(&[
        "exec",
        &id,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert_ok(&out);
    assert_eq!(status_field(&stdout(&out), "Cpus_allowed_list"), last);
}

#[test]
fn exec_env_replaces_a_variable_the_config_sets() {
    let ctx = Ctx::new("execenv");
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!("FOO=config"));
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    assert_ok(&ctx.capsa(&["start", &id]));
    let out = ctx.capsa(&[
        "exec",
        "--env",
        "FOO=cli",
        &id,
        "sh",
        "-c",
        "env | grep -c '^FOO='; echo $FOO",
    ]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "1\ncli\n");
}

#[test]
fn time_offsets_work_with_a_new_user_namespace() {
    const DAYS_10: u64 = 864_000;
    let ctx = Ctx::new("timeuserns");
    let mut c = ctx.sh_config("cut -d. -f1 /proc/uptime; id -u");
    let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
    nss.push(json!({"type": "user"}));
    nss.push(json!({"type": "time"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 210_000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 210_000, "size": 65536}]);
    c["linux"]["timeOffsets"] = json!({"boottime": {"secs": DAYS_10}});
    let out = ctx.run(&c);
    assert_ok(&out);
    let text = stdout(&out);
    let mut lines = text.lines();
    let uptime: u64 = lines.next().unwrap().parse().unwrap();
    assert!(uptime >= DAYS_10, "{text}");
    assert_eq!(lines.next(), Some("0"));
}

/// Whether the host has a cgroup mount at `path`.
fn cgroup_mounted_at(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path) && l.contains(" - cgroup"))
}

#[test]
fn a_cgroup_mount_hidden_by_a_tmpfs_is_not_used() {
    let ctx = Ctx::new("shadowcg");
    // Hide what this host has: the cgroup2 mount of a hybrid host, and a
    // v1 controller the default config sets no limit for.
    let mut hide: Vec<&str> = Vec::new();
    for p in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids"] {
        if cgroup_mounted_at(p) {
            hide.push(p);
        }
    }
    if hide.is_empty() {
        eprintln!("no hybrid or v1 cgroup mounts to hide on this host");
        return;
    }
    let setup: String = hide
        .iter()
        .map(|p| format!("mount -t tmpfs capsa-shadow-test {p}\n"))
        .collect();
    // No cgroup namespace: /proc/self/cgroup shows the host's paths.
    let mut c = ctx.sh_config("cat /proc/self/cgroup; echo ran");
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
    let id = ctx.id("run");
    let out = ctx.run_in_private_mountns(&setup, &c);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.ends_with("ran\n"), "{text}");
    // It still got a cgroup of its own where the controllers are visible.
    assert!(
        text.lines()
            .any(|l| l.contains(":memory:") && l.contains(&id)),
        "{text}"
    );
}

#[test]
fn net_devices_come_back_after_a_foreground_run() {
    let ctx = Ctx::new("netdevrun");
    let veth = Veth::new('c');
    let dev = veth.0.as_str();
    assert!(
        ip(&["addr", "add", "10.199.79.1/24", "dev", dev])
            .status
            .success()
    );
    let mut c = ctx.sh_config("ip -o addr show dev inner0 | grep -c 10.199.79.1/24");
    c["linux"]["netDevices"] = json!({ dev: {"name": "inner0"} });
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "1\n");
    // The init has exited: the veth came back (a virtual device would have
    // died with the namespace) under its own name, with its address.
    assert_on_host_with(dev, "10.199.79.1/24");
}
