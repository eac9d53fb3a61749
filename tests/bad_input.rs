//! Bad input gets one clear line naming the file, field or id and the
//! cause, a non-zero exit, no panic, and a failed create leaves nothing
//! behind: no state entry, no process, no mount.

mod common;
use common::*;
use serde_json::json;

/// Asserts a failed `create` left no state dir, process or mount behind.
#[track_caller]
fn assert_nothing_left(ctx: &Ctx, id: &str) {
    assert!(
        ctx.state_entries().is_empty(),
        "state left: {:?}",
        ctx.state_entries()
    );
    let procs: Vec<String> = processes_mentioning(id)
        .into_iter()
        .filter(|c| c.contains("capsa"))
        .collect();
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(ctx.dir.to_str().unwrap()),
        "mounts left:\n{mounts}"
    );
}

/// Writes `config` and creates a container from it, expecting failure
/// with `needle` in the message.
#[track_caller]
fn create_fails(ctx: &Ctx, config: &serde_json::Value, needle: &str) {
    ctx.write_config(config);
    let id = ctx.id("bad");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, needle);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert_nothing_left(ctx, &id);
}

#[test]
fn malformed_config_files() {
    let ctx = Ctx::new("badjson");
    let id = ctx.id("bad");
    std::fs::write(ctx.bundle.join("config.json"), "{\"ociVersion\": ").unwrap();
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "config.json: EOF while parsing");
    assert_nothing_left(&ctx, &id);

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(ctx.bundle.join("config.json"), deep).unwrap();
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "config.json: recursion limit exceeded");

    let mut big = ctx.default_config();
    big["annotations"] = json!({"pad": "x".repeat(10 << 20)});
    big["process"]["args"] = json!(["nosuchprog"]);
    create_fails(&ctx, &big, "executable file not found in $PATH");

    std::fs::remove_file(ctx.bundle.join("config.json")).unwrap();
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "config.json: open ");
    assert_fails_with(&out, "no such file or directory");
    assert_nothing_left(&ctx, &id);
}

#[test]
fn fields_of_the_wrong_type_or_value_are_named() {
    let ctx = Ctx::new("badfield");
    let mut c = ctx.default_config();
    c["process"]["user"]["uid"] = "root".into();
    create_fails(
        &ctx,
        &c,
        "config.json: process.user.uid: invalid type: string \"root\"",
    );

    let mut c = ctx.default_config();
    c["linux"]["namespaces"][2]["type"] = "foo".into();
    create_fails(
        &ctx,
        &c,
        "config.json: linux.namespaces[2].type: unknown variant `foo`",
    );

    let mut c = ctx.default_config();
    c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "pid"}]);
    create_fails(
        &ctx,
        &c,
        "linux.namespaces[2].type: duplicate namespace \"pid\"",
    );

    let mut c = ctx.default_config();
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/x", "type": "foofs", "source": "x"}));
    create_fails(
        &ctx,
        &c,
        "config.json: mounts[7].type: unknown filesystem type \"foofs\"",
    );

    let mut c = ctx.default_config();
    c["ociVersion"] = "2.0.0".into();
    create_fails(&ctx, &c, "ociVersion: unsupported version \"2.0.0\"");

    let mut c = ctx.default_config();
    c["process"]["cwd"] = "relative".into();
    create_fails(
        &ctx,
        &c,
        "process.cwd: \"relative\" is not an absolute path",
    );

    let mut c = ctx.default_config();
    c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}]);
    create_fails(
        &ctx,
        &c,
        "hostname: setting the hostname needs a private UTS namespace",
    );

    let mut c = ctx.default_config();
    c["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    create_fails(
        &ctx,
        &c,
        "linux.sysctl[\"vm.swappiness\"]: not a namespaced sysctl",
    );

    let mut c = ctx.default_config();
    c.as_object_mut().unwrap().remove("process");
    create_fails(&ctx, &c, "config.json: process: missing");

    let mut c = ctx.default_config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "network", "path": "/nonexistent/ns"}));
    c["linux"]["namespaces"].as_array_mut().unwrap().remove(1);
    create_fails(&ctx, &c, "/nonexistent/ns: no such file or directory");

    let mut c = ctx.default_config();
    c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
    create_fails(
        &ctx,
        &c,
        "process.rlimits[0]: soft limit is above the hard limit",
    );
}

#[test]
fn missing_rootfs_and_programs() {
    let ctx = Ctx::new("missing");
    let mut c = ctx.default_config();
    c["root"]["path"] = "nope".into();
    create_fails(&ctx, &c, "config.json: root.path: stat ");
    create_fails(&ctx, &c, "nope: no such file or directory");

    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["foo"]);
    create_fails(
        &ctx,
        &c,
        "exec: \"foo\": executable file not found in $PATH",
    );

    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["/bin/nope"]);
    create_fails(
        &ctx,
        &c,
        "exec: \"/bin/nope\": stat /bin/nope: no such file or directory",
    );

    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["/etc/passwd"]);
    create_fails(&ctx, &c, "permission denied");

    let mut c = ctx.default_config();
    c["process"]["cwd"] = "/does/not/exist".into();
    create_fails(
        &ctx,
        &c,
        "chdir to cwd (/does/not/exist) set in config.json failed: no such file or directory",
    );

    // A mount that fails half way through setup leaves no mounts behind.
    let mut c = ctx.default_config();
    c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "bind", "source": "/nonexistent/src", "options": ["bind"]}));
    create_fails(
        &ctx,
        &c,
        "mounts[7] (/mnt): stat /nonexistent/src: no such file or directory",
    );
}

#[test]
fn unknown_and_invalid_ids() {
    let ctx = Ctx::new("ids");
    for cmd in ["state", "start", "delete"] {
        assert_fails_with(
            &ctx.capsa(&[cmd, "no-such-ctr"]),
            "container \"no-such-ctr\" does not exist",
        );
    }
    assert_fails_with(
        &ctx.capsa(&["kill", "no-such-ctr", "KILL"]),
        "does not exist",
    );
    // delete --force of a missing container succeeds, as with runc
    assert_ok(&ctx.capsa(&["delete", "--force", "no-such-ctr"]));

    let outside = ctx.dir.join("x");
    for bad in ["../x", "a/b", "", "..", "a b"] {
        let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), bad]);
        assert_fails_with(&out, "invalid container id");
        for cmd in ["state", "start", "delete"] {
            assert_fails_with(&ctx.capsa(&[cmd, bad]), "invalid container id");
        }
    }
    assert!(!outside.exists());
    assert!(ctx.state_entries().is_empty());

    let id = ctx.id("dup");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "already exists");
    assert_eq!(
        ctx.status(&id),
        "created",
        "a refused duplicate must not touch the original"
    );
    assert_ok(&ctx.capsa(&["delete", &id]));
}

#[test]
fn json_log_has_runc_error_lines() {
    let ctx = Ctx::new("jsonlog");
    let log = ctx.dir.join("log.json");
    let out = ctx.capsa(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert!(!out.status.success());
    // conmon's form: --log-format=json after the command
    let out2 = ctx.capsa(&[
        "delete",
        "--log-format=json",
        "--log",
        log.to_str().unwrap(),
        "nope",
    ]);
    assert!(!out2.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"nope\" does not exist");
        let t = v["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(t).is_ok(), "{t}");
    }
}

#[test]
fn unsupported_features_are_refused_clearly() {
    let ctx = Ctx::new("unsupported");
    // Time offsets without a new time namespace, or for a clock a time
    // namespace cannot offset.
    let mut c = ctx.default_config();
    c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 5}});
    create_fails(&ctx, &c, "linux.timeOffsets: needs a new time namespace");
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 5}});
    create_fails(
        &ctx,
        &c,
        "linux.timeOffsets[\"realtime\"]: only \"monotonic\" and \"boottime\" can be offset",
    );
    let mut c = ctx.default_config();
    c["process"]["apparmorProfile"] = "docker-default".into();
    create_fails(
        &ctx,
        &c,
        "config.json: process.apparmorProfile: AppArmor is not enabled on this host",
    );
    let mut c = ctx.default_config();
    c["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into();
    create_fails(
        &ctx,
        &c,
        "config.json: process.selinuxLabel: SELinux is not enabled on this host",
    );
    let out = ctx.capsa(&["checkpoint", "x"]);
    assert_fails_with(&out, "command \"checkpoint\" is not supported yet");
}

/// A file at the root of the container's rootfs, with that mode.
fn write_program(ctx: &Ctx, name: &str, text: &str, mode: u32) {
    let path = ctx.bundle.join("rootfs").join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A program that exists but the container's user may not execute (the
/// exec, with the process's final user and groups, fails in capsa's exec
/// stub, which reports it): `start` and `run` say so; the container is then
/// stopped and `delete` removes it.
#[test]
fn a_program_the_user_may_not_execute_is_reported_by_start() {
    let ctx = Ctx::new("noexec-user");
    write_program(&ctx, "rootonly.sh", "#!/bin/sh\necho ran\n", 0o700);
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["/rootonly.sh"]);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["start", &id]);
    assert_fails_with(&out, "exec \"/rootonly.sh\": permission denied");
    assert_eq!(stdout(&out), "");
    ctx.wait_status(&id, "stopped");
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert_nothing_left(&ctx, &id);

    let out = ctx.capsa(&["run", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "exec \"/rootonly.sh\": permission denied");
    assert_nothing_left(&ctx, &id);

    // As root it runs.
    c["process"]["user"] = json!({"uid": 0, "gid": 0});
    ctx.write_config(&c);
    let out = ctx.capsa(&["run", "--bundle", ctx.bundle_str(), &id]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "ran\n");
    assert_nothing_left(&ctx, &id);
}

/// A program the kernel cannot execute (text without a `#!` line) or
/// whose interpreter is missing: the exec fails in capsa's sealed stub,
/// which reports the error back, so `start`, `run` and `exec` say so as a
/// direct exec would have; `run` leaves nothing behind.
#[test]
fn a_program_the_kernel_cannot_execute_is_reported() {
    let ctx = Ctx::new("enoexec");
    write_program(&ctx, "notaprogram", "just text\n", 0o755);
    write_program(&ctx, "badinterp", "#!/nonexistent/sh\n", 0o755);
    let mut c = ctx.default_config();
    let id = ctx.id("c");
    for (prog, err) in [
        ("/notaprogram", "exec format error"),
        ("/badinterp", "no such file or directory"),
    ] {
        c["process"]["args"] = json!([prog]);
        ctx.write_config(&c);
        let out = ctx.capsa(&["run", "--bundle", ctx.bundle_str(), &id]);
        assert_fails_with(&out, &format!("exec \"{prog}\": {err}"));
        assert_nothing_left(&ctx, &id);
    }
    // exec into a running container.
    c["process"]["args"] = json!(["sleep", "100"]);
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["exec", &id, "/notaprogram"]);
    assert_fails_with(&out, "exec \"/notaprogram\": exec format error");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert_nothing_left(&ctx, &id);
}
