//! What a container sees from inside: namespaces, mounts, devices,
//! capabilities, limits, user, masked and read-only paths, sysctls.

mod common;
use common::*;
use serde_json::json;

#[test]
fn has_only_loopback_and_its_own_namespaces() {
    let ctx = Ctx::new("ns");
    let out = ctx.run_sh("ls /sys/class/net; for n in net uts ipc mnt pid cgroup; do readlink /proc/self/ns/$n; done");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"));
    for (l, kind) in lines.zip(["net", "uts", "ipc", "mnt", "pid", "cgroup"]) {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert!(l.starts_with(kind), "{l}");
        assert_ne!(
            l,
            host.to_str().unwrap(),
            "{kind} namespace shared with the host"
        );
    }
}

#[test]
fn mounts_of_the_default_config() {
    let ctx = Ctx::new("mounts");
    let info = ctx.run_sh("cat /proc/self/mountinfo");
    let find = |mp: &str| {
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("{mp} not mounted:\n{info}"))
            .to_string()
    };
    assert!(find("/").contains(" ro,"), "root.readonly: {}", find("/"));
    assert!(find("/proc").contains(" - proc "));
    assert!(find("/dev").contains(" - tmpfs ") && find("/dev").contains("nosuid"));
    let pts = find("/dev/pts");
    assert!(
        pts.contains(" - devpts ") && pts.contains("ptmxmode=666") && pts.contains("gid=5"),
        "{pts}"
    );
    assert!(find("/dev/shm").contains("nodev,noexec"));
    assert!(find("/dev/mqueue").contains(" - mqueue "));
    assert!(find("/sys").starts_with(&find("/sys")[..2]) && find("/sys").contains(" ro,"));
    let cg = find("/sys/fs/cgroup");
    assert!(cg.contains(" ro,"), "{cg}");
    // masked and read-only paths
    assert!(find("/proc/sys").contains(" ro,"));
    assert!(
        find("/proc/keys").contains("/null"),
        "{}",
        find("/proc/keys")
    );
    assert!(find("/sys/firmware").contains(" - tmpfs "));
}

#[test]
fn default_devices_and_links() {
    let ctx = Ctx::new("devices");
    let out = ctx.run_sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; \
         echo hi > /dev/null && head -c 4 /dev/zero | od -An -tx1",
    );
    let want = [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
        "pts/ptmx",
        "/proc/self/fd",
        "/proc/self/fd/0",
        "/proc/self/fd/1",
        "/proc/self/fd/2",
        " 00 00 00 00",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

#[test]
fn linux_devices_are_created_with_mode_and_owner() {
    let ctx = Ctx::new("linuxdev");
    let mut c =
        ctx.sh_config("stat -c '%n %F %t:%T %a %u:%g' /dev/fuse /dev/sub/loopx /dev/myfifo");
    c["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
        {"path": "/dev/sub/loopx", "type": "b", "major": 7, "minor": 0, "fileMode": 432, "uid": 1000, "gid": 5},
        {"path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0}
    ]);
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "/dev/fuse character special file a:e5 666 0:0\n/dev/sub/loopx block special file 7:0 660 1000:5\n/dev/myfifo fifo 0:0 666 0:0\n"
    );
}

#[test]
fn capabilities_and_no_new_privileges() {
    let ctx = Ctx::new("caps");
    let out = ctx.run_sh("grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    // CAP_AUDIT_WRITE(29), CAP_KILL(5), CAP_NET_BIND_SERVICE(10)
    let want = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    for f in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_field(&out, f), want, "{f}");
    }
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");

    let mut c = ctx.sh_config("grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    let caps = json!(["CAP_CHOWN", "CAP_NET_RAW"]);
    c["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
        "effective": caps, "permitted": caps, "inheritable": caps, "ambient": ["CAP_NET_RAW"]
    });
    c["process"]["noNewPrivileges"] = false.into();
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = ctx.run(&c);
    assert_ok(&out);
    let out = stdout(&out);
    // A non-root process keeps across exec only its ambient capabilities
    // (the kernel's rule), so effective and permitted are the ambient set.
    let two = format!("{:016x}", (1u64 << 0) | (1 << 13));
    let amb = format!("{:016x}", 1u64 << 13);
    assert_eq!(status_field(&out, "CapEff"), amb);
    assert_eq!(status_field(&out, "CapPrm"), amb);
    assert_eq!(status_field(&out, "CapInh"), two);
    assert_eq!(status_field(&out, "CapAmb"), format!("{:016x}", 1u64 << 13));
    assert_eq!(
        status_field(&out, "CapBnd"),
        format!("{:016x}", (1u64 << 0) | (1 << 13) | (1 << 21))
    );
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
}

#[test]
fn user_groups_umask_cwd_and_env() {
    let ctx = Ctx::new("user");
    let mut c = ctx.sh_config(
        "id; umask; pwd; echo \"$FOO $HOME\"; touch /tmp/f && stat -c '%a %u:%g' /tmp/f",
    );
    c["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 65534], "umask": 63});
    c["process"]["cwd"] = "/home/user".into();
    c["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    c["root"]["readonly"] = false.into();
    c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}));
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "uid=1000(user) gid=1000(user) groups=5(tty),65534(nogroup)\n0077\n/home/user\nbar /home/user\n600 1000:1000\n"
    );
}

#[test]
fn rlimits_and_oom_score_adj() {
    let ctx = Ctx::new("rlimits");
    let mut c = ctx.sh_config(
        "grep -E 'open files|core file' /proc/self/limits; cat /proc/self/oom_score_adj",
    );
    c["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}
    ]);
    c["process"]["oomScoreAdj"] = 432.into();
    let out = ctx.run(&c);
    assert_ok(&out);
    let out = stdout(&out);
    // soft and hard are the two columns before the unit
    let limits = |l: &str| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w[w.len() - 3].to_string(), w[w.len() - 2].to_string())
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(limits(lines[0]), ("0".into(), "4096".into()), "{out}");
    assert_eq!(limits(lines[1]), ("512".into(), "768".into()), "{out}");
    assert_eq!(lines[2], "432");
}

#[test]
fn hostname_domainname_and_sysctl() {
    let ctx = Ctx::new("uts");
    let mut c = ctx.sh_config("hostname; cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    c["hostname"] = "box1".into();
    c["domainname"] = "example.org".into();
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "box1\nexample.org\n1\n1234\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
}

#[test]
fn masked_paths_read_empty_and_readonly_paths_refuse_writes() {
    let ctx = Ctx::new("mask");
    let mut c = ctx.sh_config(
        "wc -c < /etc/secret; ls /etc/secretdir | wc -l; \
         echo x > /etc/rodir/f 2>/dev/null && echo wrote || echo refused; \
         echo 1 > /proc/sys/kernel/shmmni 2>/dev/null && echo wrote || echo refused; \
         cat /etc/rodir/g",
    );
    c["root"]["readonly"] = false.into();
    let rootfs = ctx.bundle.join("rootfs");
    std::fs::write(rootfs.join("etc/secret"), "top secret\n").unwrap();
    std::fs::create_dir_all(rootfs.join("etc/secretdir")).unwrap();
    std::fs::write(rootfs.join("etc/secretdir/a"), "a").unwrap();
    std::fs::create_dir_all(rootfs.join("etc/rodir")).unwrap();
    std::fs::write(rootfs.join("etc/rodir/g"), "readable\n").unwrap();
    c["linux"]["maskedPaths"] = json!(["/etc/secret", "/etc/secretdir", "/does/not/exist"]);
    c["linux"]["readonlyPaths"] = json!(["/etc/rodir", "/proc/sys", "/nope"]);
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "0\n0\nrefused\nrefused\nreadable\n");
    // The host's files are untouched.
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/secret")).unwrap(),
        "top secret\n"
    );
}

#[test]
fn bind_mounts_with_options_and_propagation() {
    let ctx = Ctx::new("bind");
    let src = ctx.dir.join("shared");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello"), "from host\n").unwrap();
    std::fs::write(ctx.dir.join("file"), "a file\n").unwrap();
    let mut c = ctx.sh_config(
        "cat /mnt/ro/hello; echo x > /mnt/ro/new 2>/dev/null && echo wrote || echo refused; \
         echo y > /mnt/rw/new && echo wrote; cat /opt/deep/file.txt; \
         grep -E ' /mnt/(ro|rw) ' /proc/self/mountinfo | cut -d' ' -f5,6,7",
    );
    c["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/mnt/ro", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "private"]}),
        json!({"destination": "/mnt/rw", "type": "none", "source": src, "options": ["bind", "rw", "shared"]}),
        json!({"destination": "/opt/deep/file.txt", "type": "bind", "source": ctx.dir.join("file"), "options": ["bind", "ro"]}),
    ]);
    let out = ctx.run(&c);
    assert_ok(&out);
    let out = stdout(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..4],
        ["from host", "refused", "wrote", "a file"],
        "{out}"
    );
    assert!(lines[4].starts_with("/mnt/ro ro,nosuid"), "{out}");
    assert!(!lines[4].contains("shared:"), "{out}");
    assert!(
        lines[5].starts_with("/mnt/rw rw") && lines[5].contains("shared:"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(src.join("new")).unwrap(), "y\n");
}

#[test]
fn rootfs_propagation_and_no_pivot() {
    let ctx = Ctx::new("prop");
    for (prop, want) in [("shared", true), ("private", false), ("slave", false)] {
        let mut c = ctx.sh_config("grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo");
        c["linux"]["rootfsPropagation"] = prop.into();
        let out = ctx.run(&c);
        assert_ok(&out);
        assert_eq!(
            stdout(&out).contains("shared:"),
            want,
            "{prop}: {}",
            stdout(&out)
        );
    }
    let c = ctx.sh_config("echo pid=$$; ls /");
    ctx.write_config(&c);
    let id = ctx.id("np");
    let out = ctx.capsa(&["run", "--no-pivot", "--bundle", ctx.bundle_str(), &id]);
    assert_ok(&out);
    assert!(stdout(&out).starts_with("pid=1\nbin\n"), "{}", stdout(&out));
}

#[test]
fn joins_namespaces_by_path() {
    let ctx = Ctx::new("nspath");
    let mut holder = ctx.default_config();
    holder["process"]["args"] = json!(["sleep", "100"]);
    holder["hostname"] = "holder".into();
    ctx.write_config(&holder);
    let hid = ctx.id("holder");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &hid]));
    let hpid = ctx.state(&hid)["pid"].as_i64().unwrap();

    let mut c = ctx.sh_config("hostname; for n in net uts ipc; do readlink /proc/self/ns/$n; done");
    c.as_object_mut().unwrap().remove("hostname");
    c["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": format!("/proc/{hpid}/ns/net")},
        {"type": "uts", "path": format!("/proc/{hpid}/ns/uts")},
        {"type": "ipc", "path": format!("/proc/{hpid}/ns/ipc")}
    ]);
    let out = ctx.run(&c);
    assert_ok(&out);
    let want: Vec<String> = ["net", "uts", "ipc"]
        .iter()
        .map(|k| {
            std::fs::read_link(format!("/proc/{hpid}/ns/{k}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(stdout(&out), format!("holder\n{}\n", want.join("\n")));

    // A path to a namespace of another type is refused clearly.
    c["linux"]["namespaces"][2]["path"] = format!("/proc/{hpid}/ns/uts").into();
    let out = ctx.run(&c);
    assert_fails_with(&out, "not a network namespace");
    assert_ok(&ctx.capsa(&["delete", "--force", &hid]));
}

#[test]
fn stdio_is_passed_through_and_no_fds_leak() {
    let ctx = Ctx::new("stdio");
    let c = ctx.sh_config("read line; echo \"got $line\"; echo err >&2; ls /proc/self/fd");
    ctx.write_config(&c);
    let id = ctx.id("c");
    // An fd the caller leaves open without close-on-exec must not reach the container.
    let leak = std::fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leak);
    nix::fcntl::fcntl(
        &leak,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let mut child = ctx
        .cmd(&["run", "--bundle", ctx.bundle_str(), &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(leak);
    assert_ok(&out);
    let o = stdout(&out);
    assert!(o.starts_with("got hello\n"), "{o}");
    let fds: Vec<&str> = o.lines().skip(1).collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "fd {raw} leaked? {o}"); // 3 is ls's own directory fd
    assert_eq!(stderr(&out), "err\n");
}

#[test]
fn preserve_fds_passes_exactly_the_range() {
    let ctx = Ctx::new("preserve");
    let c = ctx.sh_config("cat <&3; cat <&4; ls /proc/self/fd | tr '\\n' ' '");
    ctx.write_config(&c);
    let id = ctx.id("c");
    std::fs::write(ctx.dir.join("a"), "three\n").unwrap();
    std::fs::write(ctx.dir.join("b"), "four\n").unwrap();
    std::fs::write(ctx.dir.join("c"), "five\n").unwrap();
    let script = format!(
        "exec 3<{a} 4<{b} 5<{c}; exec {capsa} --root {root} run --preserve-fds 2 --bundle {bundle} {id}",
        a = ctx.dir.join("a").display(),
        b = ctx.dir.join("b").display(),
        c = ctx.dir.join("c").display(),
        capsa = CAPSA,
        root = ctx.root.display(),
        bundle = ctx.bundle_str(),
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(stdout(&out), "three\nfour\n0 1 2 3 4 5 ");
}
