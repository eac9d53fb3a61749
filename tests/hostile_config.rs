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

/// After a refused `create` of `id`: no state entry and no process.
#[track_caller]
fn assert_nothing_left(ctx: &Ctx, id: &str) {
    assert!(
        ctx.state_entries().is_empty(),
        "state left: {:?}",
        ctx.state_entries()
    );
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(id))
        .collect();
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
