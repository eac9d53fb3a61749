//! Hostile configs, round 2 (issue 16): settings that, taken at face
//! value, would make capsa act as root or on the host: ids the kernel
//! treats specially, namespaces capsa did not create (a joined mount
//! namespace, the runtime's own network or IPC namespace), rootfs
//! restrictions without a mount namespace to apply them in, procfs writes
//! through a joined mount namespace, and images whose symlinks dangle
//! inside the rootfs. Each case checks what the container or the host
//! shows, that the error names the field, and that a refused create
//! leaves no state and no process.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// After a refused `create` of `id`: no state entry and no process.
#[track_caller]
fn assert_nothing_left(ctx: &Ctx, id: &str) {
    assert!(
        ctx.state_entries().is_empty(),
        "state left: {:?}",
        ctx.state_entries()
    );
    let procs = processes_mentioning(id);
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

/// `create` of `config` under a fresh id must fail naming `needle`, and
/// leave nothing.
#[track_caller]
fn refused(ctx: &Ctx, config: &Value, suffix: &str, needle: &str) {
    ctx.write_config(config);
    let id = ctx.id(suffix);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, needle);
    assert_nothing_left(ctx, &id);
}

/// uid/gid 4294967295 is (uid_t)-1, "leave unchanged" to setresuid: taken
/// as is, the process would stay root. Every place an id comes from refuses
/// it, and anything above 2^31-1.
#[test]
fn ids_the_kernel_treats_specially_are_refused() {
    let ctx = Ctx::new("hcfg-ids");
    // What the container shows with a valid id, so the refusal is the
    // only difference.
    let mut c = ctx.sh_config("id -u; id -g");
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    assert_eq!(stdout(&ctx.run(&c)), "1000\n1000\n");

    let minus_one = u32::MAX as u64;
    for (n, (user, field)) in [
        (
            json!({"uid": minus_one, "gid": minus_one}),
            "process.user.uid: 4294967295 is out of range",
        ),
        (
            json!({"uid": 1000, "gid": minus_one}),
            "process.user.gid: 4294967295 is out of range",
        ),
        (
            json!({"uid": 2147483648u64, "gid": 0}),
            "process.user.uid: 2147483648 is out of range",
        ),
        (
            json!({"uid": 1000, "gid": 1000, "additionalGids": [5, minus_one]}),
            "process.user.additionalGids[1]: 4294967295 is out of range",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = ctx.sh_config("id -u; id -g");
        c["process"]["user"] = user;
        refused(&ctx, &c, &format!("u{n}"), &format!("config.json: {field}"));
    }

    // A mapping reaching (uid_t)-1.
    let mut c = ctx.default_config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 4294967294u64, "size": 2}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    refused(
        &ctx,
        &c,
        "map",
        "config.json: linux.uidMappings[0]: range goes past id 2147483647",
    );

    // A mount's uid= option.
    let mut c = ctx.default_config();
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["uid=4294967295"]
    }));
    refused(
        &ctx,
        &c,
        "mnt",
        "config.json: mounts[7].options: \"uid=4294967295\": uid must be a number from 0 to 2147483647",
    );

    // A device's owner.
    let mut c = ctx.default_config();
    c["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
        "uid": minus_one}]);
    refused(
        &ctx,
        &c,
        "dev",
        "config.json: linux.devices[0].uid: 4294967295 is out of range",
    );

    // exec --user, --additional-gids and a process.json.
    let mut c = ctx.sh_config("sleep 1000000");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("exec");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&[
        "exec",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "1000\n1000\n");
    for user in ["4294967295:4294967295", "4294967295", "1000:4294967295"] {
        let out = ctx.capsa(&["exec", "--user", user, &id, "sh", "-c", "id -u; id -g"]);
        assert_fails_with(&out, &format!("--user \"{user}\""));
        assert_fails_with(&out, "4294967295 is out of range");
        assert_eq!(stdout(&out), "");
    }
    let out = ctx.capsa(&[
        "exec",
        "--user",
        "1000:1000",
        "--additional-gids",
        "4294967295",
        &id,
        "id",
    ]);
    assert_fails_with(&out, "--additional-gids: 4294967295 is out of range");
    let process = ctx.dir.join("process.json");
    std::fs::write(
        &process,
        json!({"args": ["id", "-u"], "cwd": "/", "user": {"uid": minus_one, "gid": 0}}).to_string(),
    )
    .unwrap();
    let out = ctx.capsa(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_fails_with(&out, "user.uid: 4294967295 is out of range");
    assert_eq!(stdout(&out), "");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// A process of ours holding new namespaces (`unshare FLAGS sleep`),
/// killed when dropped.
struct NsHolder(std::process::Child);

impl NsHolder {
    fn new(flag: &str, ns: &str) -> NsHolder {
        Self::running(&[flag, "sleep", "1000000"], ns)
    }

    /// `unshare ARGS`, once it is in a new `ns` namespace and runs sleep.
    fn running(args: &[&str], ns: &str) -> NsHolder {
        let child = std::process::Command::new("unshare")
            .args(args)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("run unshare");
        let h = NsHolder(child);
        let own = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        for _ in 0..500 {
            let comm = std::fs::read_to_string(format!("/proc/{}/comm", h.0.id()));
            if std::fs::read_link(h.ns(ns)).is_ok_and(|l| l != own)
                && comm.is_ok_and(|c| c == "sleep\n")
            {
                return h;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("unshare {args:?} made no new {ns} namespace");
    }

    fn ns(&self, ns: &str) -> String {
        format!("/proc/{}/ns/{ns}", self.0.id())
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn set_namespace(c: &mut Value, typ: &str, path: Option<&str>) {
    let list = c["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|n| n["type"] != typ);
    if let Some(p) = path {
        list.push(json!({"type": typ, "path": p}));
    }
}

/// Without a mount namespace capsa cannot make the root read-only, mask or
/// protect paths, create devices or write sysctls: each is refused, naming
/// the field, instead of silently left undone (the container could write
/// its rootfs and read what it was meant not to).
#[test]
fn no_mount_namespace_refuses_rootfs_restrictions() {
    let ctx = Ctx::new("hcfg-nomnt");
    let base = || {
        let mut c = ctx.sh_config("echo hi > /written && cat /written");
        set_namespace(&mut c, "mount", None);
        c["root"]["readonly"] = false.into();
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        c
    };
    // None of them asked for: the container runs (chrooted in the rootfs).
    let out = ctx.run(&base());
    assert_ok(&out);
    assert_eq!(stdout(&out), "hi\n");
    let why = "needs a private mount namespace";
    let mut c = base();
    c["root"]["readonly"] = true.into();
    refused(
        &ctx,
        &c,
        "ro",
        &format!("config.json: root.readonly: {why}"),
    );
    let mut c = base();
    c["linux"]["maskedPaths"] = json!(["/written"]);
    refused(
        &ctx,
        &c,
        "mask",
        &format!("config.json: linux.maskedPaths: {why}"),
    );
    let mut c = base();
    c["linux"]["readonlyPaths"] = json!(["/bin"]);
    refused(
        &ctx,
        &c,
        "rop",
        &format!("config.json: linux.readonlyPaths: {why}"),
    );
    let mut c = base();
    c["linux"]["sysctl"] = json!({"kernel.shmmni": "4096"});
    refused(
        &ctx,
        &c,
        "sysctl",
        &format!("config.json: linux.sysctl: {why}"),
    );
    let mut c = base();
    c["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3}]);
    refused(
        &ctx,
        &c,
        "dev",
        &format!("config.json: linux.devices: {why}"),
    );
}

/// A mount namespace joined by a path that is the runtime's own or the
/// host's must not get a rootfs set-up (propagation, mounts, pivot: the
/// host's `/` would become the container's rootfs): refused, and a config
/// that asks for nothing of the rootfs gets a chroot into it. Another
/// process's namespace is set up as asked.
#[test]
fn a_joined_mount_namespace_gets_no_rootfs_setup() {
    let ctx = Ctx::new("hcfg-joinmnt");
    let why = "needs a mount namespace that is not the host's";
    let host_mounts_of_the_bundle = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(ctx.bundle_str()))
            .count()
    };
    std::fs::write(ctx.bundle.join("rootfs/marker"), "inside\n").unwrap();

    // The runtime's own namespace and PID 1's (the host's): every rootfs
    // set-up is refused before anything is done...
    // (PID 1's only where this test may look at it: not in every sandbox.)
    for own in ["/proc/self/ns/mnt", "/proc/1/ns/mnt"]
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok())
    {
        let mut c = ctx.sh_config("cat /marker");
        set_namespace(&mut c, "mount", Some(own));
        refused(
            &ctx,
            &c,
            "ro",
            &format!("config.json: root.readonly: {why}"),
        );
        c["root"]["readonly"] = false.into();
        refused(
            &ctx,
            &c,
            "mask",
            &format!("config.json: linux.maskedPaths: {why}"),
        );
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        refused(&ctx, &c, "mounts", &format!("config.json: mounts: {why}"));
        c["mounts"] = json!([]);
        c["linux"]["rootfsPropagation"] = "private".into();
        refused(
            &ctx,
            &c,
            "prop",
            &format!("config.json: linux.rootfsPropagation: {why}"),
        );
        // ...and with nothing asked of the rootfs, a chroot into it: the
        // host gets no mount of the container's.
        c["linux"]
            .as_object_mut()
            .unwrap()
            .remove("rootfsPropagation");
        let out = ctx.run(&c);
        assert_ok(&out);
        assert_eq!(stdout(&out), "inside\n");
        assert_eq!(
            host_mounts_of_the_bundle(),
            0,
            "{own}: a mount reached the host"
        );
    }

    // Another process's mount namespace is set up as asked (runc does the
    // same, and runtime-tools' linux_ns_path expects it): the default
    // config, read-only root and all, runs in it.
    let holder = NsHolder::new("-m", "mnt");
    let mut c = ctx.sh_config("cat /marker; touch /x 2>/dev/null || echo read-only");
    set_namespace(&mut c, "mount", Some(&holder.ns("mnt")));
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "inside\nread-only\n");
    assert_eq!(host_mounts_of_the_bundle(), 0, "a mount reached the host");
}

/// Namespaced sysctls and the hostname, in a network, IPC or UTS namespace
/// joined by a path that is the runtime's own (the host's): refused, the
/// host's values untouched. (The values asked for are the host's current
/// ones, so that even a runtime that wrongly applied them changes nothing.)
/// In a joined namespace that is not the runtime's, they are applied there.
#[test]
fn sysctls_and_hostname_in_the_runtimes_own_namespaces_are_refused() {
    let ctx = Ctx::new("hcfg-sysctl");
    let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
    let forward = read("/proc/sys/net/ipv4/ip_forward");
    let shmmni = read("/proc/sys/kernel/shmmni");
    let hostname = read("/proc/sys/kernel/hostname");
    let why = "namespace joined is the runtime's own (the host's)";

    let mut paths = vec!["/proc/self/ns/net".to_string()];
    let same = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        let b = std::fs::metadata("/proc/self/ns/net").unwrap();
        std::fs::metadata(p).is_ok_and(|a| a.dev() == b.dev() && a.ino() == b.ino())
    };
    if same("/proc/1/ns/net") {
        paths.push("/proc/1/ns/net".into());
    }
    for (n, p) in paths.iter().enumerate() {
        let mut c = ctx.sh_config("cat /proc/sys/net/ipv4/ip_forward");
        set_namespace(&mut c, "network", Some(p));
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": forward});
        refused(
            &ctx,
            &c,
            &format!("net{n}"),
            &format!("config.json: linux.sysctl[\"net.ipv4.ip_forward\"]: the network {why}"),
        );
    }
    let mut c = ctx.default_config();
    set_namespace(&mut c, "ipc", Some("/proc/self/ns/ipc"));
    c["linux"]["sysctl"] = json!({"kernel.shmmni": shmmni});
    refused(
        &ctx,
        &c,
        "ipc",
        &format!("config.json: linux.sysctl[\"kernel.shmmni\"]: the IPC {why}"),
    );
    let mut c = ctx.default_config();
    set_namespace(&mut c, "uts", Some("/proc/self/ns/uts"));
    c["hostname"] = hostname.clone().into();
    refused(
        &ctx,
        &c,
        "uts",
        &format!("config.json: hostname: the UTS {why}"),
    );
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), forward);
    assert_eq!(read("/proc/sys/kernel/hostname"), hostname);

    // A procfs file of the host's bind-mounted over the sysctl's entry in
    // the container's /proc: the write would reach the host's namespace.
    let mut c = ctx.default_config();
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/kernel/shmmni", "type": "bind",
        "source": "/proc/sys/kernel/shmmni", "options": ["bind"]
    }));
    c["linux"]["sysctl"] = json!({"kernel.shmmni": shmmni});
    refused(
        &ctx,
        &c,
        "bound",
        &format!(
            "config.json: linux.sysctl[\"kernel.shmmni\"]: write \"{shmmni}\" to \
             /proc/sys/kernel/shmmni: crosses a mount or is not on procfs"
        ),
    );
    assert_eq!(read("/proc/sys/kernel/shmmni"), shmmni);

    // A joined network namespace that is not the runtime's: set there.
    let holder = NsHolder::new("-n", "net");
    let want = if forward == "1" { "0" } else { "1" };
    let mut c = ctx.sh_config("cat /proc/sys/net/ipv4/ip_forward");
    set_namespace(&mut c, "network", Some(&holder.ns("net")));
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), want);
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), forward);
}

/// A joined mount namespace whose /proc is a host directory bind-mounted
/// over (CVE-2025-52881's class): `oomScoreAdj` and `linux.timeOffsets`
/// land on the init's real procfs files, opened before the namespace was
/// joined, and the host directory keeps its bytes.
#[test]
fn procfs_writes_do_not_follow_a_joined_mount_namespaces_proc() {
    let ctx = Ctx::new("hcfg-fakeproc");
    let fake = ctx.dir.join("fakeproc");
    std::fs::create_dir_all(fake.join("self")).unwrap();
    for f in ["oom_score_adj", "timens_offsets"] {
        std::fs::write(fake.join("self").join(f), "untouched\n").unwrap();
    }
    let script = format!(
        "mount --bind {} /proc && exec sleep 1000000",
        fake.display()
    );
    let holder = NsHolder::running(&["-m", "sh", "-c", &script], "mnt");

    let mut c = ctx.sh_config("true");
    set_namespace(&mut c, "mount", Some(&holder.ns("mnt")));
    c["root"]["readonly"] = false.into();
    c["linux"]["maskedPaths"] = json!([]);
    c["linux"]["readonlyPaths"] = json!([]);
    c["mounts"] = json!([]);
    c["process"]["oomScoreAdj"] = 517.into();
    let timens = Path::new("/proc/self/ns/time").exists();
    if timens {
        set_namespace(&mut c, "time", None);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400, "nanosecs": 0}});
    }
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    let offsets = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap();
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert_eq!(adj.trim(), "517");
    if timens {
        let boottime: Vec<String> = offsets
            .lines()
            .find(|l| l.starts_with("boottime"))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(boottime, ["boottime", "86400", "0"], "{offsets}");
    }
    for f in ["oom_score_adj", "timens_offsets"] {
        assert_eq!(
            std::fs::read_to_string(fake.join("self").join(f)).unwrap(),
            "untouched\n",
            "{f} was written into the host directory"
        );
    }
}

/// Images whose symlinks dangle inside the rootfs (`/var/run -> /run`
/// without `/run`, `/etc/resolv.conf` pointing into a missing directory):
/// mount and device destinations through them are created where they
/// point inside the rootfs, as runc does, instead of failing; one that
/// climbs out with `..` still lands inside; a loop is a clear error.
#[test]
fn destinations_through_symlinks_dangling_inside_the_rootfs() {
    let ctx = Ctx::new("hcfg-dangling");
    let rootfs = ctx.bundle.join("rootfs");
    let marker = format!("capsa-dangling-{}", std::process::id());
    std::os::unix::fs::symlink("/run", rootfs.join("var/run")).unwrap();
    std::fs::remove_file(rootfs.join("etc/hostname")).unwrap();
    std::os::unix::fs::symlink("../run/uts/hostname", rootfs.join("etc/hostname")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../tmp/{marker}"),
        rootfs.join("tmp/out"),
    )
    .unwrap();
    let src = ctx.dir.join("payload");
    std::fs::write(&src, "payload\n").unwrap();

    let mut c = ctx.sh_config(
        "ls -d /run/t1 /tmp/$M/t2; cat /run/uts/hostname; cat /etc/hostname; ls -l /run/dev/mynull",
    );
    c["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(format!("M={marker}").into());
    c["root"]["readonly"] = false.into();
    c["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/var/run/t1", "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": "/etc/hostname", "type": "bind", "source": src, "options": ["bind"]}),
        json!({"destination": "/tmp/out/t2", "type": "tmpfs", "source": "tmpfs"}),
    ]);
    c["linux"]["devices"] =
        json!([{"path": "/var/run/dev/mynull", "type": "c", "major": 1, "minor": 3}]);
    let out = ctx.run(&c);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("/run/t1\n/tmp/{marker}/t2\npayload\npayload\ncrw")),
        "{text}"
    );
    assert!(text.contains("1,   3"), "{text}");
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "created on the host"
    );
    assert!(rootfs.join("tmp").join(&marker).join("t2").is_dir());

    // A loop: refused with the cause, nothing left.
    std::os::unix::fs::symlink("loop2/x", rootfs.join("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1/y", rootfs.join("loop2")).unwrap();
    let mut c = ctx.default_config();
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/loop1/t", "type": "tmpfs", "source": "tmpfs"}));
    refused(
        &ctx,
        &c,
        "loop",
        "mounts[7] (/loop1/t): open /loop1/t: too many symbolic links encountered",
    );
}
