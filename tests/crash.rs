//! capsa killed with SIGKILL at each crash point of create, start, exec and
//! delete (src/fault.rs; a test build, `target/fault`, stops there), then
//! checked from the host: `state` and `list` make sense of what is left,
//! `delete --force` (of the shipped binary) cleans it up, and no process,
//! cgroup, mount, fd or state entry remains.

mod common;
mod residue;

use common::*;
use residue::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The fault-injection build of capsa, rebuilt here if its sources changed
/// (cargo does nothing when it is up to date; `make test` builds it first).
fn fault_capsa() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = manifest.join("target/fault");
        // A plain debug build: not the release flags `make test` runs this
        // with (static linking needs --target to spare the proc-macros).
        let st = Command::new(env!("CARGO"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args(["build", "--quiet", "--features", "fault-injection"])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(manifest)
            .status()
            .expect("run cargo");
        assert!(st.success(), "building the fault-injection capsa failed");
        target.join("debug/capsa")
    })
}

/// A paused capsa, killed when dropped (also when a test fails).
struct Paused(Option<Child>);

impl Paused {
    fn kill(mut self) {
        let mut c = self.0.take().unwrap();
        c.kill().unwrap();
        let st = c.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL)
        );
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct T {
    ctx: Ctx,
    id: String,
}

impl T {
    fn new(name: &str) -> T {
        become_subreaper();
        let ctx = Ctx::new(name);
        let mut c = ctx.default_config();
        c["process"]["args"] = serde_json::json!(["sleep", "1000"]);
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(mark_entry(&ctx.name).into());
        ctx.write_config(&c);
        let id = ctx.id("c");
        T { ctx, id }
    }

    /// A command of `bin` on this test's root, marked, output to files.
    fn cmd(&self, bin: &Path, args: &[&str], tag: &str) -> Command {
        let mut c = Command::new(bin);
        c.arg("--root").arg(&self.ctx.root).args(args);
        c.env(MARK, &self.ctx.name);
        c.stdin(Stdio::null());
        c.stdout(std::fs::File::create(self.ctx.dir.join(format!("{tag}.out"))).unwrap());
        c.stderr(std::fs::File::create(self.ctx.dir.join(format!("{tag}.err"))).unwrap());
        c
    }

    /// The shipped capsa, to completion (output to files: a created init
    /// inherits them and would hold a pipe open).
    fn capsa(&self, args: &[&str]) -> std::process::Output {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = format!(
            "cmd-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let status = self.cmd(Path::new(CAPSA), args, &tag).status().unwrap();
        let read = |ext: &str| {
            let p = self.ctx.dir.join(format!("{tag}.{ext}"));
            let data = std::fs::read(&p).unwrap_or_default();
            let _ = std::fs::remove_file(p);
            data
        };
        std::process::Output {
            status,
            stdout: read("out"),
            stderr: read("err"),
        }
    }

    fn ok(&self, args: &[&str]) {
        assert_ok(&self.capsa(args));
    }

    fn create(&self) {
        self.ok(&["create", "--bundle", self.ctx.bundle_str(), &self.id]);
    }

    /// The status `state` reports, or None if the container does not
    /// exist; never a panic or another error.
    fn status(&self) -> Option<String> {
        let out = self.capsa(&["state", &self.id]);
        if !out.status.success() {
            assert_fails_with(&out, "does not exist");
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(v["status"].as_str().unwrap().to_string())
    }

    fn wait_status(&self, want: Option<&str>) {
        let mut last = None;
        for _ in 0..500 {
            last = self.status();
            if last.as_deref() == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("status {last:?}, expected {want:?}");
    }

    /// The recorded init (pid, start time), read from the state file
    /// itself.
    fn recorded_init(&self) -> Option<(i32, u64)> {
        let data = std::fs::read(self.ctx.root.join(&self.id).join("state.json")).ok()?;
        let v: Value = serde_json::from_slice(&data).unwrap();
        Some((v["pid"].as_i64()? as i32, v["pid_start"].as_u64()?))
    }

    /// Runs `args` with the fault-injection capsa stopped at `point`.
    fn pause_at(&self, point: &str, args: &[&str]) -> Paused {
        let ready = self
            .ctx
            .dir
            .join(format!("ready-{}", point.replace(':', "-")));
        let mut c = self.cmd(fault_capsa(), args, "fault");
        c.env("CAPSA_FAULT", format!("{point}:pause"))
            .env("CAPSA_FAULT_READY", &ready);
        let mut child = c.spawn().unwrap();
        for _ in 0..3000 {
            if ready.exists() {
                return Paused(Some(child));
            }
            if let Some(st) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(self.ctx.dir.join("fault.err")).unwrap();
                panic!("capsa {args:?} ended ({st}) before {point}: {err}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("capsa {args:?} never reached {point} (a fault-injection build?)");
    }

    /// `delete --force` with the shipped binary, then nothing may be left.
    fn recover(&self, init: Option<(i32, u64)>) {
        let out = self.capsa(&["list", "--format", "json"]);
        assert_ok(&out);
        self.ok(&["delete", "--force", &self.id]);
        if let Some((pid, start)) = init {
            assert_gone(pid, start, "the container's init");
        }
        assert_eq!(self.status(), None);
        assert_none_left(&self.ctx.root, &self.ctx.dir, &[&self.id], &self.ctx.name);
    }
}

/// Points at which the container is still being created: while capsa
/// lives, `creating` (no state yet at create:dir); once it is killed,
/// stopped, and plain `delete` works as well as `--force`.
#[test]
fn create_killed_while_creating() {
    for point in [
        "create:dir",
        "create:state",
        "create:cgroups",
        "create:cloned",
        "create:ready",
    ] {
        let t = T::new("crash-create");
        let p = t.pause_at(point, &["create", "--bundle", t.ctx.bundle_str(), &t.id]);
        if point == "create:dir" {
            assert_eq!(t.status(), None, "{point}");
            let del = t.capsa(&["delete", &t.id]);
            assert_fails_with(&del, "it is being created");
        } else {
            assert_eq!(t.status().as_deref(), Some("creating"), "{point}");
            let list = t.capsa(&["list", "--format", "json"]);
            assert_ok(&list);
            let list: Value = serde_json::from_slice(&list.stdout).unwrap();
            assert_eq!(list[0]["status"], "creating", "{point}: {list}");
            let del = t.capsa(&["delete", &t.id]);
            assert_fails_with(&del, "it is being created");
            let kill = t.capsa(&["kill", &t.id, "KILL"]);
            assert_fails_with(&kill, "it is being created");
            let exec = t.capsa(&["exec", &t.id, "true"]);
            assert_fails_with(&exec, "being created");
        }
        let init = t.recorded_init();
        if ["create:cloned", "create:ready"].contains(&point) {
            let (pid, _) = init.unwrap();
            assert!(pid > 0, "{point}: no init on record");
        }
        p.kill();
        if point == "create:dir" {
            assert_eq!(t.status(), None);
        } else {
            assert_eq!(t.status().as_deref(), Some("stopped"), "{point}");
        }
        t.recover(init.filter(|(pid, _)| *pid > 0));
    }
}

/// A create killed at create:ready, cleaned up by a plain `delete`: an
/// abandoned create is a stopped container.
#[test]
fn abandoned_create_is_deleted_without_force() {
    let t = T::new("crash-plain");
    let p = t.pause_at(
        "create:ready",
        &["create", "--bundle", t.ctx.bundle_str(), &t.id],
    );
    let init = t.recorded_init();
    p.kill();
    t.ok(&["delete", &t.id]);
    let (pid, start) = init.unwrap();
    assert_gone(pid, start, "the abandoned init");
    assert_none_left(&t.ctx.root, &t.ctx.dir, &[&t.id], &t.ctx.name);
}

/// Points after the final state is written.
#[test]
fn create_killed_after_its_state_is_final() {
    // Saved but the init not told: it gives up once capsa is gone.
    let t = T::new("crash-saved");
    let p = t.pause_at(
        "create:saved",
        &["create", "--bundle", t.ctx.bundle_str(), &t.id],
    );
    assert_eq!(t.status().as_deref(), Some("created"));
    let init = t.recorded_init();
    p.kill();
    t.wait_status(Some("stopped"));
    t.recover(init);

    // Told: a complete container, which start can still start.
    let t = T::new("crash-committed");
    let p = t.pause_at(
        "create:committed",
        &["create", "--bundle", t.ctx.bundle_str(), &t.id],
    );
    let init = t.recorded_init();
    p.kill();
    assert_eq!(t.status().as_deref(), Some("created"));
    t.ok(&["start", &t.id]);
    t.wait_status(Some("running"));
    t.recover(init);
}

/// start killed after it connected to the init: the init goes on and
/// runs the process; `state` says running although the exec socket is
/// still there, and a second start refuses.
#[test]
fn start_killed_after_connecting() {
    let t = T::new("crash-start");
    t.create();
    let init = t.recorded_init();
    let p = t.pause_at("start:connected", &["start", &t.id]);
    t.wait_status(Some("running"));
    p.kill();
    assert!(t.ctx.root.join(&t.id).join("exec.sock").exists());
    assert_eq!(t.status().as_deref(), Some("running"));
    assert_fails_with(&t.capsa(&["start", &t.id]), "already running");
    t.recover(init);
}

/// exec killed before its process runs: that process goes away by itself
/// (only the init is left); killed after: the process is the container's,
/// and delete --force takes it with the rest.
#[test]
fn exec_killed() {
    for point in ["exec:cloned", "exec:started"] {
        let t = T::new("crash-exec");
        t.create();
        t.ok(&["start", &t.id]);
        let init = t.recorded_init();
        let p = t.pause_at(point, &["exec", &t.id, "sleep", "999"]);
        p.kill();
        assert_eq!(t.status().as_deref(), Some("running"), "{point}");
        let (init_pid, _) = init.unwrap();
        let want = if point == "exec:started" { 2 } else { 1 };
        let mut procs = marked_processes(&t.ctx.name);
        for _ in 0..500 {
            if procs.len() == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            procs = marked_processes(&t.ctx.name);
        }
        assert_eq!(procs.len(), want, "{point}: {procs:?}");
        assert!(procs.contains(&init_pid), "{point}: {procs:?}");
        // The container works on.
        let out = t.capsa(&["exec", &t.id, "echo", "still"]);
        assert_ok(&out);
        assert_eq!(stdout(&out), "still\n");
        t.recover(init);
    }
}

/// delete killed half-way: the next delete --force finishes it.
#[test]
fn delete_killed_half_way() {
    for point in ["delete:killed", "delete:cgroups", "delete:unlinked"] {
        let t = T::new("crash-delete");
        t.create();
        t.ok(&["start", &t.id]);
        let init = t.recorded_init();
        let p = t.pause_at(point, &["delete", "--force", &t.id]);
        p.kill();
        if point == "delete:unlinked" {
            assert_eq!(t.status(), None);
            // Only the bare directory is left.
            assert_eq!(entries(&t.ctx.root), vec![t.id.clone()]);
        } else {
            assert_eq!(t.status().as_deref(), Some("stopped"), "{point}");
        }
        t.recover(init);
    }
}

/// A recorded init pid that now belongs to another process (a start time
/// that does not match) is never signalled: not by kill, kill --all,
/// exec or delete --force; the container's real processes are still
/// found through its cgroup.
#[test]
fn a_reused_pid_is_never_signalled() {
    let t = T::new("pidreuse");
    t.create();
    t.ok(&["start", &t.id]);
    let (real_init, real_start) = t.recorded_init().unwrap();
    let mut bystander = Command::new("sleep").arg("1000").spawn().unwrap();
    let by_pid = bystander.id() as i32;
    let (by_start, _) = capsa::sys::proc_stat(by_pid).unwrap();
    // The state now says the init is the bystander's pid, with another
    // start time: what a state looks like after its init died and the pid
    // was reused.
    let path = t.ctx.root.join(&t.id).join("state.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    st["pid"] = by_pid.into();
    st["pid_start"] = (by_start + 1).into();
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();

    assert_eq!(t.status().as_deref(), Some("stopped"));
    assert_fails_with(&t.capsa(&["kill", &t.id, "KILL"]), "not running");
    // --all of a stopped container is no error (as runc), and with its own
    // PID namespace it signals nothing: the bystander is checked below.
    t.ok(&["kill", "--all", &t.id, "KILL"]);
    assert_fails_with(&t.capsa(&["exec", &t.id, "true"]), "stopped");
    t.ok(&["delete", "--force", &t.id]);
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was killed"
    );
    // The real init was in the container's cgroup: delete got it.
    assert_gone(real_init, real_start, "the container's init");
    assert_none_left(&t.ctx.root, &t.ctx.dir, &[&t.id], &t.ctx.name);
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// The tests above go through every crash point there is.
#[test]
fn every_crash_point_is_tested() {
    let tested = [
        "create:dir",
        "create:state",
        "create:cgroups",
        "create:cloned",
        "create:ready",
        "create:saved",
        "create:committed",
        "start:connected",
        "exec:cloned",
        "exec:started",
        "delete:killed",
        "delete:cgroups",
        "delete:unlinked",
    ];
    let mut points = capsa::fault::POINTS.to_vec();
    points.sort();
    let mut tested = tested.to_vec();
    tested.sort();
    assert_eq!(points, tested);
}

/// The shipped binary has no crash points: the variable is ignored and
/// the code reading it is not even there.
#[test]
fn shipped_binary_has_no_crash_points() {
    let bin = std::fs::read(CAPSA).unwrap();
    let has = |s: &[u8]| bin.windows(s.len()).any(|w| w == s);
    assert!(!has(b"CAPSA_FAULT"), "{CAPSA} reads CAPSA_FAULT");
    let fault = std::fs::read(fault_capsa()).unwrap();
    assert!(
        fault.windows(11).any(|w| w == b"CAPSA_FAULT"),
        "the fault build lacks its crash points"
    );
    let t = T::new("nofault");
    let mut c = t
        .ctx
        .cmd(&["create", "--bundle", t.ctx.bundle_str(), &t.id]);
    c.env("CAPSA_FAULT", "create:state:kill")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    assert!(c.status().unwrap().success());
    assert_eq!(t.status().as_deref(), Some("created"));
    let init = t.recorded_init();
    t.recover(init);
}
