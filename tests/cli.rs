//! The parts of the command line that clients parse: --version, spec,
//! features, list formats, Go-style single-dash flags.

mod common;
use common::*;

#[test]
fn version_has_the_lines_docker_parses() {
    let ctx = Ctx::new("version");
    let out = ctx.capsa(&["--version"]);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("capsa version "), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("commit: ")), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("spec: {}", capsa::spec::OCI_VERSION)),
        "{text}"
    );
}

#[test]
fn spec_writes_runc_defaults_and_refuses_to_overwrite() {
    let ctx = Ctx::new("spec");
    let dir = ctx.dir.join("newbundle");
    std::fs::create_dir_all(&dir).unwrap();
    assert_ok(&ctx.capsa(&["spec", "--bundle", dir.to_str().unwrap()]));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    assert_eq!(v["mounts"].as_array().unwrap().len(), 7);
    assert!(
        v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&"/proc/kcore".into())
    );
    let out = ctx.capsa(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert_fails_with(&out, "exists");

    let rl = ctx.dir.join("rootless");
    std::fs::create_dir_all(&rl).unwrap();
    assert_ok(&ctx.capsa(&["spec", "--rootless", "-b", rl.to_str().unwrap()]));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rl.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["linux"]["uidMappings"][0]["containerID"], 0);
    assert!(
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user")
    );
    assert!(
        !v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network")
    );
}

#[test]
fn features_document_is_honest_json() {
    let ctx = Ctx::new("features");
    let out = ctx.capsa(&["features"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.contains(&"pid".into()) && ns.contains(&"time".into()));
    assert!(
        v["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"CAP_SYS_ADMIN".into())
    );
    let opts = v["mountOptions"].as_array().unwrap();
    for o in ["rbind", "idmap", "ridmap"] {
        assert!(opts.contains(&o.into()), "{o} missing in {opts:?}");
    }
    assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    // Both applied (tests/compat.rs observes them inside containers).
    assert_eq!(v["linux"]["netDevices"]["enabled"], true);
    let modes = v["linux"]["memoryPolicy"]["modes"].as_array().unwrap();
    assert!(modes.contains(&"MPOL_INTERLEAVE".into()), "{modes:?}");
}

#[test]
fn go_style_single_dash_flags_and_list_formats() {
    let ctx = Ctx::new("flags");
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["create", "-bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["list"]);
    assert_ok(&out);
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], id);
    assert_eq!(row[2], "created");
    let q = ctx.capsa(&["list", "-q"]);
    assert_eq!(stdout(&q), format!("{id}\n"));
    assert_ok(&ctx.capsa(&["delete", "-force", &id]));
    assert_eq!(stdout(&ctx.capsa(&["list", "--format", "json"])), "[]\n");
}

/// Go's boolean flags take `=value` forms (docker's runtimeArgs, older
/// daemons): `--flag=true` is the flag, `--flag=false` is its absence.
#[test]
fn go_style_boolean_values() {
    let ctx = Ctx::new("gobool");
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    ctx.write_config(&c);
    // --systemd-cgroup=false: the plain cgroupsPath stays valid (with
    // =true it would have to be slice:prefix:name).
    assert_ok(&ctx.capsa(&[
        "--debug=false",
        "--systemd-cgroup=false",
        "run",
        "--detach=true",
        "--no-pivot=false",
        "-no-new-keyring=true",
        "--bundle",
        ctx.bundle_str(),
        &id,
    ]));
    assert_eq!(ctx.status(&id), "running");
    // --detach=false on exec: the foreground, so its output comes back.
    let out = ctx.capsa(&["exec", "--detach=false", "--tty=false", &id, "echo", "fg"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "fg\n");
    let out = ctx.capsa(&["exec", "-d=1", &id, "true"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    // A bad boolean is a usage error naming the flag.
    let out = ctx.capsa(&["delete", "--force=maybe", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(ctx.status(&id), "running");
    // --force=false: a running container is not deleted.
    assert_fails_with(&ctx.capsa(&["delete", "--force=false", &id]), "not stopped");
    assert_ok(&ctx.capsa(&["delete", "-f=true", &id]));
    assert!(ctx.state_entries().is_empty());
    // --systemd-cgroup=true is the flag: a plain cgroupsPath is refused.
    let id2 = ctx.id("sd");
    c["linux"]["cgroupsPath"] = format!("/{id2}").into();
    ctx.write_config(&c);
    let out = ctx.capsa(&[
        "--systemd-cgroup=true",
        "create",
        "--bundle",
        ctx.bundle_str(),
        &id2,
    ]);
    assert_fails_with(&out, "slice:prefix:name");
    assert!(ctx.state_entries().is_empty());
}

/// Usage errors exit 1, as runc's; help still exits 0.
#[test]
fn usage_errors_exit_1() {
    let ctx = Ctx::new("usage");
    for args in [
        &["create", "--no-such-flag", "x"][..],
        &["kill"],
        &["list", "--format", "yaml"],
        &["--log-format", "xml", "list"],
    ] {
        let out = ctx.capsa(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?}");
    }
    let out = ctx.capsa(&["--help"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("create"));
    // With --log (as containerd's shim and conmon call), the error is in
    // the log file too: one JSON object, which podman decodes whole.
    let log = ctx.dir.join("log.json");
    let out = ctx.capsa(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format=json",
        "create",
        "--no-such-flag",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("--no-such-flag"), "{v}");
}

/// `list --format json` names the owner, as its table does.
#[test]
fn list_json_names_the_owner() {
    let ctx = Ctx::new("owner");
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["list", "--format", "json"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The test runs as root: the state directory is root's.
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["owner"], "root");
    let table = stdout(&ctx.capsa(&["list"]));
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[5], "root");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// `kill ID 0` checks that the container is alive: it succeeds while it
/// runs and fails once it has stopped.
#[test]
fn kill_0_checks_liveness() {
    let ctx = Ctx::new("kill0");
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["kill", &id, "0"]);
    assert_ok(&out);
    assert_eq!(ctx.status(&id), "running");
    assert_ok(&ctx.capsa(&["kill", &id, "KILL"]));
    ctx.wait_status(&id, "stopped");
    assert_fails_with(&ctx.capsa(&["kill", &id, "0"]), "container not running");
}

/// A container without a PID namespace of its own: SIGKILL reaches every
/// process of its cgroup, not only the init (whose death would leave the
/// others running).
#[test]
fn kill_without_pid_namespace_reaches_every_process() {
    let ctx = Ctx::new("killshared");
    let id = ctx.id("c");
    let mut c = ctx.sh_config("sleep 1000 & exec sleep 1001");
    let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let mut pids: Vec<i64> = Vec::new();
    for _ in 0..200 {
        let out = ctx.capsa(&["ps", "--format", "json", &id]);
        assert_ok(&out);
        pids = serde_json::from_slice(&out.stdout).unwrap();
        if pids.len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_ok(&ctx.capsa(&["kill", &id, "KILL"]));
    for _ in 0..500 {
        if !pids.iter().any(|p| alive(*p)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let left: Vec<&i64> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "still alive after kill KILL: {left:?}");

    // Left over after the init exited: the container is stopped, and
    // SIGKILL still reaches what is left of it (signal 0 does not).
    let id2 = ctx.id("left");
    let mut c = ctx.sh_config("sleep 1002 >/dev/null 2>&1 & echo $!");
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id2]));
    ctx.wait_status(&id2, "stopped");
    let out = ctx.capsa(&["ps", "--format", "json", &id2]);
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_fails_with(&ctx.capsa(&["kill", &id2, "0"]), "container not running");
    assert!(alive(pids[0]));
    assert_ok(&ctx.capsa(&["kill", &id2, "KILL"]));
    for _ in 0..500 {
        if !alive(pids[0]) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!alive(pids[0]), "leftover {} still alive", pids[0]);
}

/// A failed exec exits 255 with `exec failed: ...`, as runc's, so that it
/// is told from the exit status of the process itself.
#[test]
fn exec_failures_exit_255() {
    let ctx = Ctx::new("exec255");
    let out = ctx.capsa(&["exec", "nosuchcontainer", "true"]);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(stderr(&out).contains("exec failed: "), "{}", stderr(&out));
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["exec", &id, "/no/such/program"]);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(stderr(&out).contains("exec failed: "), "{}", stderr(&out));
    // The process's own status is passed through as it is.
    let out = ctx.capsa(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
}

/// The seccomp flags this kernel accepts, asked of it here the way
/// libseccomp does (flags checked before the program is read).
fn kernel_seccomp_flags() -> Vec<String> {
    let accepts = |flags: u64| {
        // SAFETY: a null program: EFAULT once the flags are accepted.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1u64,
                flags,
                std::ptr::null::<libc::sock_fprog>(),
            )
        };
        r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
    };
    [
        ("SECCOMP_FILTER_FLAG_LOG", 2),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
        ("SECCOMP_FILTER_FLAG_TSYNC", 1),
        ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 32 | 8),
    ]
    .into_iter()
    .filter(|(_, f)| accepts(*f))
    .map(|(n, _)| n.to_string())
    .collect()
}

/// `features` claims only what works: every seccomp architecture it lists
/// compiles into a filter a container runs with, its supported flags are
/// the kernel's, and every listed supported flag is accepted in a profile.
#[test]
fn features_seccomp_and_annotations_match_what_works() {
    let ctx = Ctx::new("features2");
    let out = ctx.capsa(&["features"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMax"], capsa::spec::OCI_VERSION);
    assert!(
        v["potentiallyUnsafeConfigAnnotations"].is_array(),
        "{}",
        v["potentiallyUnsafeConfigAnnotations"]
    );
    let sc = &v["linux"]["seccomp"];
    let flags: Vec<String> = serde_json::from_value(sc["supportedFlags"].clone()).unwrap();
    assert_eq!(flags, kernel_seccomp_flags());
    let known: Vec<String> = serde_json::from_value(sc["knownFlags"].clone()).unwrap();
    assert!(
        flags.iter().all(|f| known.contains(f)),
        "{flags:?} {known:?}"
    );
    let archs: Vec<String> = serde_json::from_value(sc["archs"].clone()).unwrap();
    for a in ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_RISCV64"] {
        assert!(archs.iter().any(|x| x == a), "{a} missing in {archs:?}");
    }
    // Each listed architecture and flag works in a real container: the
    // filter (mkdir refused on the native architecture) is loaded.
    let native = match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        _ => "SCMP_ARCH_RISCV64",
    };
    for arch in &archs {
        let mut c = ctx.sh_config("mkdir /tmp/x 2>/dev/null && echo made || echo refused");
        c["root"]["readonly"] = false.into();
        let mut list = vec![arch.clone()];
        if arch != native {
            list.push(native.to_string());
        }
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": list,
            "flags": flags,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
        let out = ctx.run(&c);
        assert_ok(&out);
        assert_eq!(stdout(&out), "refused\n", "{arch}");
    }
}
