//! Tampered files around the container (issue 16): pid files whose
//! temporary name was planted as a symlink to a host file, state
//! directories replaced by symlinks, and state.json files edited to point
//! at host processes and host cgroups. capsa must neither write, signal
//! nor remove anything of the host's, must not hang, and must say why it
//! refuses.

mod common;
use common::*;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs capsa with `args`, killing it (and failing the test) if it has not
/// ended within `secs` seconds.
#[track_caller]
fn capsa_within(ctx: &Ctx, args: &[&str], secs: u64) -> Output {
    let out_path = ctx.dir.join(".bounded.out");
    let err_path = ctx.dir.join(".bounded.err");
    let mut child = ctx
        .cmd(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("capsa {args:?} still runs after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// A container of `ctx` sleeping, made with `how` ("create", "run -d",
/// with options; split at spaces); returns its id.
fn sleeper(ctx: &Ctx, how: &str) -> String {
    let mut c = ctx.sh_config("sleep 1000000");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    let mut args: Vec<&str> = how.split(' ').collect();
    args.extend(["--bundle", ctx.bundle_str(), &id]);
    assert_ok(&ctx.capsa(&args));
    id
}

/// `create --pid-file D/init.pid` and `exec --pid-file D/e.pid` with the
/// temporary names (`D/.init.pid.tmp`, `D/.e.pid.tmp`) planted as
/// symlinks to a host file: the host file keeps its bytes, the pid files
/// hold the pids.
#[test]
fn pid_files_are_not_written_through_planted_symlinks() {
    let ctx = Ctx::new("hstate-pidfile");
    let victim = ctx.dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let dangling = ctx.dir.join("created-through-link");
    let d = ctx.dir.join("pids");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::symlink(&victim, d.join(".init.pid.tmp")).unwrap();
    std::os::unix::fs::symlink(&dangling, d.join(".e.pid.tmp")).unwrap();

    let pid_file = d.join("init.pid");
    let id = sleeper(&ctx, &format!("create --pid-file {}", pid_file.display()));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(!d.join(".init.pid.tmp").exists());
    assert_ok(&ctx.capsa(&["start", &id]));

    let e_pid = d.join("e.pid");
    assert_ok(&ctx.capsa(&[
        "exec",
        "--detach",
        "--pid-file",
        e_pid.to_str().unwrap(),
        &id,
        "sleep",
        "1000000",
    ]));
    assert!(!dangling.exists(), "exec wrote through the planted symlink");
    let exec_pid: i64 = std::fs::read_to_string(&e_pid).unwrap().parse().unwrap();
    assert!(
        std::fs::read_to_string(format!("/proc/{exec_pid}/cmdline"))
            .unwrap()
            .starts_with("sleep\0"),
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// `mv ROOT/ID X; ln -s X ROOT/ID`: every command refuses at once with a
/// clear error (they used to spin at 100% CPU), and nothing reaches the
/// container through the link.
#[test]
fn a_symlinked_state_dir_is_refused_without_spinning() {
    let ctx = Ctx::new("hstate-link");
    let id = sleeper(&ctx, "create");
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let dir = ctx.root.join(&id);
    let moved = ctx.dir.join("moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &dir).unwrap();
    // Put back, whatever happens below, so the container can be deleted.
    struct Restore<'a>(&'a Path, &'a Path);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
            let _ = std::fs::rename(self.1, self.0);
        }
    }
    let restore = Restore(&dir, &moved);

    for args in [
        vec!["start", id.as_str()],
        vec!["pause", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
        vec!["delete", "--force", id.as_str()],
        vec!["state", id.as_str()],
    ] {
        let out = capsa_within(&ctx, &args, 10);
        assert_fails_with(&out, "is not a directory (a symlink?); refusing to use it");
    }
    // list skips it rather than following it.
    let out = capsa_within(&ctx, &["list", "-q"], 10);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    // The init was neither started nor killed.
    assert!(pid_exists(pid));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(!stat.contains(") Z "), "{stat}");
    drop(restore);
    assert_eq!(ctx.status(&id), "created");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// A host process of the test's own, killed and reaped when dropped.
struct Victim(std::process::Child);

impl Victim {
    fn new() -> Victim {
        Victim(
            std::process::Command::new("sleep")
                .arg("1000000")
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> i64 {
        self.0.id() as i64
    }

    /// Field 22 of /proc/PID/stat: what a state records as pid_start.
    fn start(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(19).unwrap().parse().unwrap()
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A cgroup directory of the test's own (standing for a host service's),
/// removed when dropped.
struct HostCgroup(std::path::PathBuf);

impl Drop for HostCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn state_path(ctx: &Ctx, id: &str) -> std::path::PathBuf {
    ctx.root.join(id).join("state.json")
}

fn edit_state(ctx: &Ctx, id: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let p = state_path(ctx, id);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Puts a deleted container's state back (so the real container can be
/// cleaned up after a command acted on a forged state).
fn put_back(ctx: &Ctx, id: &str, original: &[u8]) {
    let dir = ctx.root.join(id);
    let _ = std::fs::create_dir(&dir);
    std::fs::write(dir.join("state.json"), original).unwrap();
}

/// Puts the true state back when dropped, even if the test failed half-way,
/// so that the harness's cleanup deletes the real container.
struct TrueState<'a> {
    ctx: &'a Ctx,
    id: String,
    original: Vec<u8>,
}

impl Drop for TrueState<'_> {
    fn drop(&mut self) {
        put_back(self.ctx, &self.id, &self.original);
    }
}

/// state.json edited to name a host process (its pid and start time):
/// kill, kill --all and delete --force leave it alive, and kill says why.
#[test]
fn a_forged_state_pid_does_not_reach_a_host_process() {
    let ctx = Ctx::new("hstate-forgedpid");
    let id = sleeper(&ctx, "run -d");
    let original = std::fs::read(state_path(&ctx, &id)).unwrap();
    let _true_state = TrueState {
        ctx: &ctx,
        id: id.clone(),
        original: original.clone(),
    };
    let mut victim = Victim::new();
    let (vpid, vstart) = (victim.pid(), victim.start());
    edit_state(&ctx, &id, |v| {
        v["pid"] = vpid.into();
        v["pid_start"] = vstart.into();
    });
    for args in [
        vec!["kill", &id, "KILL"],
        vec!["kill", "--all", &id, "KILL"],
    ] {
        let out = capsa_within(&ctx, &args, 10);
        assert_fails_with(&out, "refusing to signal it (is state.json forged?)");
        assert_fails_with(
            &out,
            &format!("process {vpid} is not in the container's cgroup"),
        );
    }
    // exec would join the host process's namespaces.
    let out = capsa_within(&ctx, &["exec", &id, "true"], 10);
    assert!(!out.status.success());
    let _ = capsa_within(&ctx, &["delete", "--force", &id], 10);
    std::thread::sleep(Duration::from_millis(100));
    assert!(victim.alive(), "the host process was killed");
    put_back(&ctx, &id, &original);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert!(victim.alive());
}

/// state.json edited so that the container's cgroup (recorded as made by
/// capsa) is a host cgroup with a host process in it, or a directory
/// outside cgroupfs with a planted cgroup.procs: delete --force neither
/// kills the process nor removes the directory; kill --all, pause and
/// update refuse; exec puts no process there.
#[test]
fn forged_cgroup_paths_do_not_reach_host_cgroups() {
    let ctx = Ctx::new("hstate-forgedcg");
    let id = sleeper(&ctx, "run -d");
    let original = std::fs::read(state_path(&ctx, &id)).unwrap();
    let _true_state = TrueState {
        ctx: &ctx,
        id: id.clone(),
        original: original.clone(),
    };
    let st: serde_json::Value = serde_json::from_slice(&original).unwrap();
    // A sibling of the container's own directory, in a hierarchy every
    // host has (capsa requires the v1 devices controller).
    let key = if st["cgroup"]["version"] == "v2" {
        "unified"
    } else {
        "devices"
    };
    let own = Path::new(st["cgroup"]["paths"][key].as_str().unwrap());
    let host = HostCgroup(
        own.parent()
            .unwrap()
            .join(format!("capsa-victim-{}", std::process::id())),
    );
    std::fs::create_dir(&host.0).unwrap();
    let mut victim = Victim::new();
    std::fs::write(host.0.join("cgroup.procs"), victim.pid().to_string()).unwrap();
    let forge = |dir: &Path| {
        edit_state(&ctx, &id, |v| {
            v["cgroup"]["paths"] = serde_json::json!({ key: dir });
            v["cgroup"]["created"] = serde_json::json!([dir]);
        })
    };

    // Outside cgroupfs: a planted cgroup.procs naming the host process.
    let fake = ctx.dir.join("fakecg");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("cgroup.procs"), format!("{}\n", victim.pid())).unwrap();
    forge(&fake);
    let out = capsa_within(&ctx, &["kill", "--all", &id, "KILL"], 10);
    assert_fails_with(&out, "which is not on a cgroup mount; refusing to use it");
    // delete --force treats it as a corrupt state: says so, drops it.
    let out = capsa_within(&ctx, &["delete", "--force", &id], 10);
    assert!(
        stderr(&out).contains("which is not on a cgroup mount; refusing to use it"),
        "{}",
        stderr(&out)
    );
    assert!(victim.alive(), "the host process was killed");
    assert!(fake.join("cgroup.procs").exists());

    // One directory of the true record swapped for the host cgroup: an
    // exec'd process would be put there.
    put_back(&ctx, &id, &original);
    edit_state(&ctx, &id, |v| {
        v["cgroup"]["paths"][key] = serde_json::json!(host.0)
    });
    let out = capsa_within(&ctx, &["exec", &id, "sleep", "0.5"], 10);
    assert_fails_with(
        &out,
        "is neither one capsa made for it nor one its init is in",
    );
    assert_eq!(
        std::fs::read_to_string(host.0.join("cgroup.procs"))
            .unwrap()
            .trim(),
        victim.pid().to_string()
    );

    // A real host cgroup, claimed as made by capsa.
    put_back(&ctx, &id, &original);
    forge(&host.0);
    for args in [
        vec!["pause", id.as_str()],
        vec!["update", "--pids-limit", "7", id.as_str()],
    ] {
        let out = capsa_within(&ctx, &args, 10);
        assert_fails_with(
            &out,
            "its cgroup was not made by capsa for it; refusing to change it",
        );
    }
    let out = capsa_within(&ctx, &["kill", "--all", &id, "KILL"], 10);
    assert_ok(&out);
    let _ = capsa_within(&ctx, &["delete", "--force", &id], 10);
    std::thread::sleep(Duration::from_millis(100));
    assert!(victim.alive(), "the host process was killed");
    assert!(host.0.is_dir(), "the host cgroup was removed");
    assert_eq!(
        std::fs::read_to_string(host.0.join("cgroup.procs"))
            .unwrap()
            .trim(),
        victim.pid().to_string()
    );
    // The real container, cleaned up from its true state.
    put_back(&ctx, &id, &original);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// A hard link to a host file planted at the state's temporary name
/// (`ROOT/ID/.state.json.tmp`): saving the state (here by `update`)
/// replaces the link, never truncates and writes the file it links to.
#[test]
fn a_planted_hard_link_does_not_take_the_state() {
    let ctx = Ctx::new("hstate-hardlink");
    let id = sleeper(&ctx, "run -d");
    let victim = ctx.dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::hard_link(&victim, ctx.root.join(&id).join(".state.json.tmp")).unwrap();
    assert_ok(&ctx.capsa(&["update", "--pids-limit", "50", &id]));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_path(&ctx, &id)).unwrap()).unwrap();
    assert_eq!(st["cgroup"]["resources"]["pids"]["limit"], 50);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}
