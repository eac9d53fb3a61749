//! User namespaces created by a root caller: the container's root is an
//! unprivileged id on the host, observed from both sides.

mod common;
use common::*;
use serde_json::json;

const HOST_BASE: u32 = 200_000;

fn userns_config(ctx: &Ctx, script: &str) -> serde_json::Value {
    let mut c = ctx.sh_config(script);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]);
    c
}

#[test]
fn root_inside_is_a_mapped_id_outside() {
    let ctx = Ctx::new("userns");
    let shared = ctx.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // The rootfs belongs to the host's root, which the container's root is
    // not: the mount point must exist already (as with runc).
    std::fs::create_dir_all(ctx.bundle.join("rootfs/shared")).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut c = userns_config(
        &ctx,
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; echo x > /dev/null && echo null-ok; \
         touch /shared/by-root; touch /shared/by-user; chown 1000:1000 /shared/by-user; hostname; sleep 0.3",
    );
    let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    c["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/shared", "type": "bind", "source": shared, "options": ["bind"]}),
    );
    let id = ctx.id("c");
    ctx.write_config(&c);
    let child = ctx
        .cmd(&["run", "--bundle", ctx.bundle_str(), &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    ctx.wait_status(&id, "running");
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status_field(&status, "Uid");
    assert_eq!(
        uids.split_whitespace().next().unwrap(),
        HOST_BASE.to_string(),
        "{uids}"
    );
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let map = format!("{:>10} {:>10} {:>10}", 0, HOST_BASE, 65536);
    assert_eq!(
        stdout(&out),
        format!("0\n0\n{map}\n{map}\nnull-ok\ncapsa\n")
    );
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(shared.join("by-root")).unwrap();
    assert_eq!((m.uid(), m.gid()), (HOST_BASE, HOST_BASE));
    let m = std::fs::metadata(shared.join("by-user")).unwrap();
    assert_eq!((m.uid(), m.gid()), (HOST_BASE + 1000, HOST_BASE + 1000));
}

#[test]
fn exec_joins_the_user_namespace() {
    let ctx = Ctx::new("usernsexec");
    let mut c = userns_config(&ctx, "");
    c["process"]["args"] = json!(["sleep", "100"]);
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let init = ctx.state(&id)["pid"].as_i64().unwrap();
    let out = ctx.capsa(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; readlink /proc/self/ns/user",
    ]);
    assert_ok(&out);
    let want = std::fs::read_link(format!("/proc/{init}/ns/user")).unwrap();
    assert_eq!(stdout(&out), format!("0\n{}\n", want.display()));
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

#[test]
fn bad_mappings_are_refused() {
    let ctx = Ctx::new("usernsbad");
    let id = ctx.id("c");
    let try_create = |c: &serde_json::Value, needle: &str| {
        ctx.write_config(c);
        assert_fails_with(
            &ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]),
            needle,
        );
        assert!(ctx.state_entries().is_empty());
    };
    let mut c = userns_config(&ctx, "true");
    c["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": HOST_BASE, "size": 100},
        {"containerID": 50, "hostID": HOST_BASE + 1000, "size": 100}
    ]);
    try_create(&c, "linux.uidMappings[1]: overlaps linux.uidMappings[0]");

    let mut c = userns_config(&ctx, "true");
    c["linux"].as_object_mut().unwrap().remove("gidMappings");
    try_create(&c, "linux.gidMappings: a new user namespace needs mappings");

    let mut c = ctx.sh_config("true");
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": HOST_BASE, "size": 1}]);
    try_create(&c, "linux.uidMappings: mappings need a user namespace");

    // Container uid 0 unmapped: the init cannot become root inside.
    let mut c = userns_config(&ctx, "true");
    c["linux"]["uidMappings"] = json!([{"containerID": 1, "hostID": HOST_BASE, "size": 10}]);
    try_create(&c, "is uid 0 in linux.uidMappings?");
}

#[test]
fn without_a_mount_namespace_nothing_is_mounted_on_the_host() {
    let ctx = Ctx::new("nomntns");
    let mut c = ctx.sh_config("ls /bin/busybox; readlink /proc/1/ns/mnt 2>/dev/null; echo done");
    c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "uts"}]);
    // What needs a mount namespace is refused without one (hostile_config.rs).
    c["root"]["readonly"] = false.into();
    c["linux"]["maskedPaths"] = json!([]);
    c["linux"]["readonlyPaths"] = json!([]);
    let before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let out = ctx.run(&c);
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("/bin/busybox\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("no mount namespace of its own"),
        "{}",
        stderr(&out)
    );
    let after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(before, after, "mounts leaked onto the host");
}

/// The host's uptime in whole seconds.
fn host_uptime() -> u64 {
    let t = std::fs::read_to_string("/proc/uptime").unwrap();
    t.split('.').next().unwrap().parse().unwrap()
}

#[test]
fn time_namespace_offsets_boottime_for_init_and_exec() {
    const DAYS_10: u64 = 864_000;
    let ctx = Ctx::new("timens");
    let mut c = ctx.default_config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    c["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": DAYS_10, "nanosecs": 0},
        "monotonic": {"secs": 3600}
    });
    c["process"]["args"] = json!(["sh", "-c", "cut -d. -f1 /proc/uptime; sleep 100"]);
    ctx.write_config(&c);
    let id = ctx.id("t");
    let before = host_uptime();
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let init = ctx.state(&id)["pid"].as_i64().unwrap();
    // The init's own time namespace, not the host's.
    let host_ns = std::fs::read_link("/proc/self/ns/time").unwrap();
    let ns = std::fs::read_link(format!("/proc/{init}/ns/time")).unwrap();
    assert_ne!(ns, host_ns);
    // /proc/uptime inside reads the boottime clock, offset by 10 days.
    let out = ctx.capsa(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cut -d. -f1 /proc/uptime; readlink /proc/self/ns/time",
    ]);
    assert_ok(&out);
    let after = host_uptime();
    let text = stdout(&out);
    let mut lines = text.lines();
    let inside: u64 = lines.next().unwrap().parse().unwrap();
    assert!(
        inside >= before + DAYS_10 && inside <= after + DAYS_10 + 1,
        "uptime inside {inside}, host {before}..{after}"
    );
    assert_eq!(
        lines.next().unwrap(),
        ns.to_str().unwrap(),
        "exec joined it"
    );
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}
