//! Rootless mode: capsa run by an ordinary user. The test makes that user
//! (useradd, with subordinate id ranges in /etc/subuid and /etc/subgid),
//! runs `capsa spec --rootless` and the container as that user, and removes
//! the user at the end. What is checked is seen from inside the container
//! (uid 0, the id maps) and on the host (the init's real uid, the owners
//! of files the container created in a bind mount).

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const USER: &str = "capsa-rootless";
const SUB_START: u32 = 300000;
const SUB_COUNT: u32 = 65536;

/// The unprivileged user, removed (with its subordinate ids) on drop.
struct User {
    uid: u32,
    gid: u32,
    xdg: PathBuf,
}

impl User {
    fn create(dir: &Path) -> User {
        let _ = Command::new("userdel").arg(USER).output();
        let st = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", USER])
            .status()
            .expect("run useradd");
        assert!(st.success(), "useradd {USER} failed");
        let range = format!("{SUB_START}-{}", SUB_START + SUB_COUNT - 1);
        let st = Command::new("usermod")
            .args(["--add-subuids", &range, "--add-subgids", &range, USER])
            .status()
            .expect("run usermod");
        assert!(st.success(), "usermod --add-subuids failed");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, USER]).output().unwrap();
            stdout(&o).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let xdg = dir.join("xdg");
        std::fs::create_dir_all(&xdg).unwrap();
        std::os::unix::fs::chown(&xdg, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        User { uid, gid, xdg }
    }

    /// capsa as this user, with its own XDG_RUNTIME_DIR (so the default
    /// state root is `$XDG_RUNTIME_DIR/capsa`), stdio to files.
    fn capsa(&self, dir: &Path, args: &[&str]) -> Output {
        let out = dir.join(".user-out");
        let err = dir.join(".user-err");
        let status = Command::new(CAPSA)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .env("HOME", &self.xdg)
            .current_dir(dir)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null())
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

impl Drop for User {
    fn drop(&mut self) {
        // Whatever the user still runs goes first (userdel refuses a user
        // with processes).
        let _ = Command::new("pkill").args(["-KILL", "-u", USER]).status();
        let _ = Command::new("userdel").arg(USER).status();
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = std::fs::read_to_string(f) {
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{USER}:")))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = std::fs::write(f, kept);
            }
        }
    }
}

fn write(ctx: &Ctx, config: &serde_json::Value) {
    ctx.write_config(config);
}

#[test]
fn rootless_spec_run_lifecycle_and_subordinate_ids() {
    let ctx = Ctx::new("rootless");
    let user = User::create(&ctx.dir);
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
    let maps = |own: u32| {
        json!([
            {"containerID": 0, "hostID": own, "size": 1},
            {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}
        ])
    };
    config["linux"]["uidMappings"] = maps(user.uid);
    config["linux"]["gidMappings"] = maps(user.gid);
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
    let left = Command::new("pgrep").args(["-u", USER]).output().unwrap();
    assert_eq!(stdout(&left), "", "processes left behind");

    // Idmapped mounts: the kernel lets only a user privileged over the
    // source's filesystem make them; capsa refuses them up front.
    config["linux"]["uidMappings"] = maps(user.uid);
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
