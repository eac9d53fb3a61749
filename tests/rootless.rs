//! Rootless mode: capsa run by an ordinary user. The test makes that user
//! (useradd, with subordinate id ranges in /etc/subuid and /etc/subgid),
//! runs `capsa spec --rootless` and the container as that user, and removes
//! the user at the end. What is checked is seen from inside the container
//! (uid 0, the id maps) and on the host (the init's real uid, the owners
//! of files the container created in a bind mount).

mod common;
#[path = "common/users.rs"]
mod users;
use common::*;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use users::TestUser;

const SUB_START: u32 = 300000;
const SUB_COUNT: u32 = 65536;

/// The unprivileged user (removed with its subordinate ids and processes
/// on drop) and its XDG_RUNTIME_DIR. Each test has its own
/// (`capsarl<tag><pid>`), so tests run in parallel.
struct User {
    user: TestUser,
    xdg: PathBuf,
}

impl std::ops::Deref for User {
    type Target = TestUser;
    fn deref(&self) -> &TestUser {
        &self.user
    }
}

impl User {
    fn create(dir: &Path, tag: &str) -> User {
        let name = format!("capsarl{tag}{}", std::process::id());
        let user = User {
            user: TestUser::create(&name, SUB_START, SUB_COUNT),
            xdg: dir.join("xdg"),
        };
        std::fs::create_dir_all(&user.xdg).unwrap();
        std::os::unix::fs::chown(&user.xdg, Some(user.uid), Some(user.gid)).unwrap();
        std::fs::set_permissions(&user.xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        user
    }

    /// A command run as this user, with its own XDG_RUNTIME_DIR (so
    /// capsa's default state root is `$XDG_RUNTIME_DIR/capsa`).
    fn command(&self, dir: &Path, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .env("HOME", &self.xdg)
            .env("USER", &self.name)
            .current_dir(dir)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null());
        c
    }

    /// capsa as this user, stdio to files.
    fn capsa(&self, dir: &Path, args: &[&str]) -> Output {
        self.output(self.command(dir, CAPSA).args(args), dir)
    }

    /// capsa as root of a new user namespace that maps this user to root
    /// (`unshare --user --map-root-user`): capsa must see by itself that
    /// it is not root on the host.
    fn capsa_in_userns(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = self.command(dir, "unshare");
        c.args(["--user", "--map-root-user", CAPSA]).args(args);
        self.output(&mut c, dir)
    }

    /// Runs `c` to completion, its stdout and stderr to files (a created
    /// container inherits them).
    fn output(&self, c: &mut Command, dir: &Path) -> Output {
        let out = dir.join(".user-out");
        let err = dir.join(".user-err");
        let status = c
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .expect("run capsa as the user");
        Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        }
    }

    fn state_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.xdg.join("capsa"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A map of the user's own id to 0 and of its subordinate ids to 1...
fn sub_maps(own: u32) -> serde_json::Value {
    json!([
        {"containerID": 0, "hostID": own, "size": 1},
        {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}
    ])
}

fn write(ctx: &Ctx, config: &serde_json::Value) {
    ctx.write_config(config);
}

#[test]
fn rootless_spec_run_lifecycle_and_subordinate_ids() {
    let ctx = Ctx::new("rootless");
    let user = User::create(&ctx.dir, "a");
    // A rootless user's bundle and rootfs are their own.
    std::os::unix::fs::chown(&ctx.dir, Some(user.uid), Some(user.gid)).unwrap();
    let owner = format!("{}:{}", user.uid, user.gid);
    let st = Command::new("chown")
        .args(["-hR", &owner, ctx.bundle_str()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = std::fs::remove_file(ctx.bundle.join("config.json"));
    let bundle = ctx.bundle_str();

    // `spec --rootless` as the user: a config mapping that user to root.
    assert_ok(&user.capsa(&ctx.dir, &["spec", "--rootless", "--bundle", bundle]));
    let text = std::fs::read_to_string(ctx.bundle.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        config["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": user.uid, "size": 1}])
    );
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; hostname; exit 3"
    ]);
    write(&ctx, &config);

    // run, end to end, as the user; the state root is under XDG_RUNTIME_DIR.
    let out = user.capsa(&ctx.dir, &["run", "--bundle", bundle, "rl-run"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "0", "uid inside: {lines:?}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &user.uid.to_string(), "1"]);
    let root = user.xdg.join("capsa");
    let meta = std::fs::metadata(&root).expect("state root under XDG_RUNTIME_DIR");
    assert_eq!(meta.uid(), user.uid);
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert!(
        user.state_entries().is_empty(),
        "{:?}",
        user.state_entries()
    );

    // create/start/kill/delete: on the host, the init runs as the user.
    config["process"]["args"] = json!(["sleep", "1000"]);
    write(&ctx, &config);
    assert_ok(&user.capsa(&ctx.dir, &["create", "--bundle", bundle, "rl-life"]));
    let state = user.capsa(&ctx.dir, &["state", "rl-life"]);
    assert_ok(&state);
    let st: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        status_field(&status, "Uid"),
        format!("{0}\t{0}\t{0}\t{0}", user.uid),
        "the init's uid on the host"
    );
    assert_ok(&user.capsa(&ctx.dir, &["start", "rl-life"]));
    assert_ok(&user.capsa(&ctx.dir, &["kill", "rl-life", "KILL"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = user.capsa(&ctx.dir, &["state", "rl-life"]);
        if stdout(&out).contains("\"stopped\"") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never stopped");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_ok(&user.capsa(&ctx.dir, &["delete", "rl-life"]));
    // The dead init is reaped by whoever adopted it, soon.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pid_exists(pid) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "init still running after delete: {stat}"
        );
        assert!(std::time::Instant::now() < deadline, "init never reaped");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(user.state_entries().is_empty());

    // More than the user's own id: newuidmap/newgidmap with the ranges of
    // /etc/subuid. Files the container's root and uid 1000 create in a
    // bind mount carry the mapped owners on the host.
    let data = ctx.dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(user.uid), Some(user.gid)).unwrap();
    config["linux"]["uidMappings"] = sub_maps(user.uid);
    config["linux"]["gidMappings"] = sub_maps(user.gid);
    for set in ["bounding", "effective", "permitted"] {
        config["process"]["capabilities"][set] = json!(["CAP_CHOWN", "CAP_DAC_OVERRIDE"]);
    }
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]
    }));
    config["process"]["args"] = json!([
        "sh",
        "-c",
        "cat /proc/self/uid_map; touch /data/by-root /data/by-1000 && chown 1000:1000 /data/by-1000"
    ]);
    write(&ctx, &config);
    let out = user.capsa(&ctx.dir, &["run", "--bundle", bundle, "rl-sub"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["1", &SUB_START.to_string(), &SUB_COUNT.to_string()]),
        "{text}"
    );
    let by_root = std::fs::metadata(data.join("by-root")).unwrap();
    assert_eq!((by_root.uid(), by_root.gid()), (user.uid, user.gid));
    let by_1000 = std::fs::metadata(data.join("by-1000")).unwrap();
    assert_eq!(
        (by_1000.uid(), by_1000.gid()),
        (SUB_START + 999, SUB_START + 999)
    );

    // Ids the user was not granted: newuidmap refuses, capsa says so and
    // leaves nothing behind.
    config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": user.uid, "size": 1},
        {"containerID": 1, "hostID": 900000, "size": 10}
    ]);
    config["process"]["args"] = json!(["true"]);
    write(&ctx, &config);
    let out = user.capsa(&ctx.dir, &["run", "--bundle", bundle, "rl-bad"]);
    assert_fails_with(&out, "linux.uidMappings: newuidmap refused the mapping");
    assert!(user.state_entries().is_empty());
    assert_eq!(user.processes(), "", "processes left behind");

    // Idmapped mounts: the kernel lets only a user privileged over the
    // source's filesystem make them; capsa refuses them up front.
    config["linux"]["uidMappings"] = sub_maps(user.uid);
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({
        "destination": "/idmapped", "type": "bind", "source": data,
        "options": ["rbind", "idmap"]
    }));
    let i = mounts.len() - 1;
    write(&ctx, &config);
    let out = user.capsa(&ctx.dir, &["run", "--bundle", bundle, "rl-idmap"]);
    assert_fails_with(
        &out,
        &format!("config.json: mounts[{i}]: idmapped mounts need capsa to run as root"),
    );
    assert!(user.state_entries().is_empty());
}

/// Gives the bundle to the user and returns the config `spec --rootless`
/// writes for it, run as that user (`in_userns`: as root of a user
/// namespace of its own), with no terminal.
fn user_bundle(ctx: &Ctx, user: &User, in_userns: bool) -> serde_json::Value {
    let owner = format!("{}:{}", user.uid, user.gid);
    let st = Command::new("chown")
        .args(["-hR", &owner, ctx.dir.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = std::fs::remove_file(ctx.bundle.join("config.json"));
    let args = ["spec", "--rootless", "--bundle", ctx.bundle_str()];
    assert_ok(&if in_userns {
        user.capsa_in_userns(&ctx.dir, &args)
    } else {
        user.capsa(&ctx.dir, &args)
    });
    let text = std::fs::read_to_string(ctx.bundle.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["process"]["terminal"] = json!(false);
    config
}

/// Waits (up to 10 s) until `f` holds.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The uid a process runs as on the host, from /proc/PID/status.
fn host_uids(pid: i64) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status_field(&status, "Uid")
}

#[test]
fn rootless_exec_status_terminal_and_user() {
    let ctx = Ctx::new("rl-exec");
    let user = User::create(&ctx.dir, "e");
    let mut config = user_bundle(&ctx, &user, false);
    // Root is the user, 1.. its subordinate ids: uid 1000 exists inside.
    config["linux"]["uidMappings"] = sub_maps(user.uid);
    config["linux"]["gidMappings"] = sub_maps(user.gid);
    config["process"]["args"] = json!(["sleep", "1000"]);
    write(&ctx, &config);
    let bundle = ctx.bundle_str();
    assert_ok(&user.capsa(&ctx.dir, &["run", "-d", "--bundle", bundle, "rl-ex"]));

    // exec joins the container (its user namespace first: the user has no
    // privilege over the container's PID namespace from outside it), and
    // its exit status comes back.
    let out = user.capsa(
        &ctx.dir,
        &[
            "exec",
            "rl-ex",
            "sh",
            "-c",
            "id -u; tr '\\0' ' ' </proc/1/cmdline; echo; \
             [ $(readlink /proc/self/ns/pid) = $(readlink /proc/1/ns/pid) ] && echo same-pid; \
             [ $(readlink /proc/self/ns/user) = $(readlink /proc/1/ns/user) ] && echo same-user; \
             exit 5",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "0\nsleep 1000 \nsame-pid\nsame-user\n",
        "{}",
        stderr(&out)
    );

    // --user: inside uid 1000, on the host the subordinate id it maps to.
    let out = user.capsa(
        &ctx.dir,
        &[
            "exec",
            "--user",
            "1000:1000",
            "rl-ex",
            "sh",
            "-c",
            "id -u; id -g",
        ],
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "1000\n1000\n");
    let pid_file = ctx.dir.join("exec.pid");
    assert_ok(&user.capsa(
        &ctx.dir,
        &[
            "exec",
            "-d",
            "--user",
            "1000:1000",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "rl-ex",
            "sleep",
            "500",
        ],
    ));
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        host_uids(pid),
        format!("{0}\t{0}\t{0}\t{0}", SUB_START + 999)
    );

    // exec -t: a pty of the container's, at capsa's terminal (`script`).
    let cmd = format!("{CAPSA} exec -t rl-ex sh -c 'tty; [ -t 0 ] && echo in-is-tty; exit 6'");
    let out = user.output(
        user.command(&ctx.dir, "script")
            .args(["-qec", &cmd, "/dev/null"]),
        &ctx.dir,
    );
    let text = stdout(&out).replace('\r', "");
    assert_eq!(out.status.code(), Some(6), "{text}{}", stderr(&out));
    assert!(text.contains("/dev/pts/0\nin-is-tty\n"), "{text}");

    // The state is the user's: list shows them as the owner.
    let out = user.capsa(&ctx.dir, &["list"]);
    assert_ok(&out);
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with("rl-ex "))
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(row.last(), Some(&user.name), "{}", stdout(&out));

    // A container without a cgroup of its own cannot be paused: it says so.
    let out = user.capsa(&ctx.dir, &["pause", "rl-ex"]);
    assert_fails_with(&out, "has no cgroup: it was created without one");

    assert_ok(&user.capsa(&ctx.dir, &["delete", "--force", "rl-ex"]));
    assert!(user.state_entries().is_empty());
    wait_until("the user's processes to end", || {
        user.processes().is_empty()
    });
}

#[test]
fn in_a_user_namespace_capsa_picks_the_rootless_defaults() {
    let ctx = Ctx::new("rl-ns");
    let user = User::create(&ctx.dir, "n");
    // Made as root of `unshare --user --map-root-user`: that root is the
    // user on the host.
    let mut config = user_bundle(&ctx, &user, true);
    assert_eq!(
        config["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": 0, "size": 1}])
    );
    config["process"]["args"] = json!(["sh", "-c", "id -u; cat /proc/self/uid_map; exit 4"]);
    // No limits asked (podman writes an empty object): nothing to warn of.
    config["linux"]["resources"] = json!({});
    write(&ctx, &config);
    let bundle = ctx.bundle_str();

    // euid 0, but not host root: the state goes under XDG_RUNTIME_DIR
    // (not /run/capsa), and the cgroups it may not create are skipped.
    let out = user.capsa_in_userns(&ctx.dir, &["run", "--bundle", bundle, "rl-ns-run"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "0", "{lines:?}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "1"]
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let meta = std::fs::metadata(user.xdg.join("capsa")).expect("state root under XDG_RUNTIME_DIR");
    assert_eq!(meta.uid(), user.uid);
    assert!(
        user.state_entries().is_empty(),
        "{:?}",
        user.state_entries()
    );

    // Limits without a cgroup to hold them: said, and the container runs.
    config["linux"]["resources"] = json!({"pids": {"limit": 50}});
    write(&ctx, &config);
    let out = user.capsa_in_userns(&ctx.dir, &["run", "--bundle", bundle, "rl-ns-lim"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("linux.resources (pids...) are not applied"),
        "{}",
        stderr(&out)
    );
    config["linux"]["resources"] = json!(null);

    // A detached one: listed with its owner (root inside such a
    // namespace, the user's name outside), exec'd into by the user.
    config["process"]["args"] = json!(["sleep", "1000"]);
    write(&ctx, &config);
    let out = user.capsa_in_userns(&ctx.dir, &["run", "-d", "--bundle", bundle, "rl-ns-d"]);
    assert_ok(&out);
    let owner_of = |out: &Output| {
        stdout(out)
            .lines()
            .find(|l| l.starts_with("rl-ns-d "))
            .and_then(|l| l.split_whitespace().last().map(String::from))
    };
    let inside = user.capsa_in_userns(&ctx.dir, &["list"]);
    assert_eq!(
        owner_of(&inside).as_deref(),
        Some("root"),
        "{}",
        stdout(&inside)
    );
    let outside = user.capsa(&ctx.dir, &["list"]);
    assert_eq!(
        owner_of(&outside),
        Some(user.name.clone()),
        "{}",
        stdout(&outside)
    );
    let out = user.capsa(&ctx.dir, &["exec", "rl-ns-d", "sh", "-c", "id -u; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n");

    // --rootless false: act as root (the state root /run/capsa), which
    // this root is not.
    let out = user.capsa_in_userns(&ctx.dir, &["--rootless", "false", "state", "rl-ns-d"]);
    assert_fails_with(&out, "/run/capsa");
    let out = user.capsa_in_userns(&ctx.dir, &["--rootless", "maybe", "list"]);
    assert_fails_with(&out, "invalid value \"maybe\" for --rootless");

    assert_ok(&user.capsa_in_userns(&ctx.dir, &["delete", "--force", "rl-ns-d"]));
    assert!(user.state_entries().is_empty());
}

#[test]
fn cgroup_manager_disabled_runs_without_a_cgroup() {
    let ctx = Ctx::new("rl-nocg");
    let mut config = ctx.default_config();
    // The container's view of its cgroups is the host's, to compare.
    if let Some(ns) = config["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "cgroup");
    }
    config["process"]["args"] = json!(["cat", "/proc/self/cgroup"]);
    ctx.write_config(&config);
    let out = ctx.capsa(&[
        "--cgroup-manager",
        "disabled",
        "run",
        "--bundle",
        ctx.bundle_str(),
        &ctx.id("r"),
    ]);
    assert_ok(&out);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(stdout(&out), own, "the container has the caller's cgroups");

    // Limits cannot be applied: refused, naming the field; nothing left.
    config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    ctx.write_config(&config);
    let out = ctx.capsa(&[
        "--cgroup-manager",
        "disabled",
        "run",
        "--bundle",
        ctx.bundle_str(),
        &ctx.id("l"),
    ]);
    assert_fails_with(
        &out,
        "linux.resources.pids: cannot be applied with --cgroup-manager disabled",
    );
    assert!(ctx.state_entries().is_empty(), "{:?}", ctx.state_entries());

    // pause says why it cannot.
    config["linux"]["resources"] = json!(null);
    config["process"]["args"] = json!(["sleep", "100"]);
    ctx.write_config(&config);
    let id = ctx.id("p");
    assert_ok(&ctx.capsa(&[
        "--cgroup-manager",
        "disabled",
        "run",
        "-d",
        "--bundle",
        ctx.bundle_str(),
        &id,
    ]));
    let out = ctx.capsa(&["pause", &id]);
    assert_fails_with(&out, "has no cgroup: it was created without one");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    let out = ctx.capsa(&["--cgroup-manager", "nosuch", "list"]);
    assert!(!out.status.success());

    // `--cgroup-manager systemd` is `--systemd-cgroup`: the same outcome
    // (the same cgroups, or the same refusal) for a systemd-style path.
    config["process"]["args"] = json!(["cat", "/proc/self/cgroup"]);
    let name = format!("capsa-rl-{}", std::process::id());
    config["linux"]["cgroupsPath"] = json!(format!("system.slice:{name}:c"));
    ctx.write_config(&config);
    let with = |flags: &[&str], id: &str| {
        let mut args = flags.to_vec();
        args.extend(["run", "--bundle", ctx.bundle_str(), id]);
        let out = ctx.capsa(&args);
        (out.status.code(), stdout(&out), stderr(&out))
    };
    let a = with(&["--systemd-cgroup"], &ctx.id("s1"));
    let b = with(&["--cgroup-manager", "systemd"], &ctx.id("s2"));
    assert_eq!(a, b);
    let c = with(&["--cgroup-manager", "cgroupfs"], &ctx.id("s3"));
    assert_ne!(a.1, c.1, "the systemd path was not taken: {a:?}");
}

#[test]
fn rootless_create_joins_namespaces_by_path_user_first() {
    let ctx = Ctx::new("rl-join");
    let user = User::create(&ctx.dir, "j");
    let mut config = user_bundle(&ctx, &user, false);
    config["process"]["args"] = json!(["sleep", "1000"]);
    write(&ctx, &config);
    let bundle = ctx.bundle_str();
    assert_ok(&user.capsa(&ctx.dir, &["run", "-d", "--bundle", bundle, "rl-j-a"]));
    let state = user.capsa(&ctx.dir, &["state", "rl-j-a"]);
    let st: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap();

    // A second container in the first one's user and PID namespaces (as a
    // pod's containers join its infra container): the user has no
    // privilege over that PID namespace until it is in its user namespace.
    let ns = config["linux"]["namespaces"].as_array_mut().unwrap();
    for n in ns.iter_mut() {
        if n["type"] == "user" || n["type"] == "pid" {
            n["path"] = json!(format!("/proc/{pid}/ns/{}", n["type"].as_str().unwrap()));
        }
    }
    config["linux"]["uidMappings"] = json!(null);
    config["linux"]["gidMappings"] = json!(null);
    config["process"]["args"] = json!([
        "sh",
        "-c",
        "id -u; tr '\\0' ' ' </proc/1/cmdline; echo; readlink /proc/self/ns/user; readlink /proc/self/ns/pid"
    ]);
    write(&ctx, &config);
    let out = user.capsa(&ctx.dir, &["run", "--bundle", bundle, "rl-j-b"]);
    assert_ok(&out);
    let link = |n: &str| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap();
    let want = format!(
        "0\nsleep 1000 \n{}\n{}\n",
        link("user").display(),
        link("pid").display()
    );
    assert_eq!(stdout(&out), want);
    assert_ok(&user.capsa(&ctx.dir, &["delete", "--force", "rl-j-a"]));
    assert!(user.state_entries().is_empty());
}

#[test]
fn rootless_true_as_root_uses_the_rootless_state_root() {
    let ctx = Ctx::new("rl-flag");
    let mut config = ctx.default_config();
    config["process"]["args"] = json!(["sleep", "100"]);
    ctx.write_config(&config);
    let xdg = ctx.dir.join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    let id = ctx.id("c");
    // Should a capsa put it elsewhere, it is removed from there too.
    struct Gone(String, PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            for root in [self.1.join("capsa"), PathBuf::from("/run/capsa")] {
                if root.join(&self.0).exists() {
                    let _ = Command::new(CAPSA)
                        .arg("--root")
                        .arg(&root)
                        .args(["delete", "--force", &self.0])
                        .output();
                }
            }
        }
    }
    let _gone = Gone(id.clone(), xdg.clone());
    // No --root: the root is chosen by the rootless decision.
    // (stderr to a file: a detached container keeps what it is given.)
    let err = ctx.dir.join(".flag-err");
    let capsa = |args: &[&str]| {
        let status = Command::new(CAPSA)
            .args(args)
            .env("XDG_RUNTIME_DIR", &xdg)
            .env("USER", "capsa-rl-nobody")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        }
    };
    let out = capsa(&[
        "--rootless",
        "true",
        "run",
        "-d",
        "--bundle",
        ctx.bundle_str(),
        &id,
    ]);
    assert_ok(&out);
    assert!(
        xdg.join("capsa").join(&id).is_dir(),
        "not under XDG_RUNTIME_DIR"
    );
    assert!(!Path::new("/run/capsa").join(&id).exists());
    assert_ok(&capsa(&["--rootless", "true", "delete", "--force", &id]));
    assert!(!xdg.join("capsa").join(&id).exists());
}
