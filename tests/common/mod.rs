//! Shared harness for the integration tests: each test gets its own state
//! root and bundle (a copy of the busybox rootfs) under a unique temporary
//! directory, and everything is deleted when the test ends, even on failure.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

pub const CAPSA: &str = env!("CARGO_BIN_EXE_capsa");

static ROOTFS: Once = Once::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The busybox rootfs the Makefile builds, built here if missing.
pub fn busybox_rootfs() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/busybox/rootfs");
    ROOTFS.call_once(|| {
        if !dir.join("bin/busybox").exists() {
            let st = Command::new("sh")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-rootfs.sh"))
                .arg(&dir)
                .status()
                .expect("run make-rootfs.sh");
            assert!(
                st.success(),
                "building the busybox rootfs failed (is busybox-static installed?)"
            );
        }
    });
    dir
}

pub struct Ctx {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub name: String,
}

impl Ctx {
    pub fn new(name: &str) -> Ctx {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{name}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("capsa-test-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("state");
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(busybox_rootfs())
            .arg(bundle.join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        let ctx = Ctx {
            dir,
            root,
            bundle,
            name,
        };
        ctx.write_config(&ctx.default_config());
        ctx
    }

    /// A unique container id for this test.
    pub fn id(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// `capsa spec`'s config with no terminal.
    pub fn default_config(&self) -> Value {
        let mut v = capsa::spec::default_spec(false);
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = serde_json::json!(["true"]);
        v
    }

    pub fn write_config(&self, v: &Value) {
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(v).unwrap(),
        )
        .unwrap();
    }

    /// A config running `sh -c SCRIPT`.
    pub fn sh_config(&self, script: &str) -> Value {
        let mut v = self.default_config();
        v["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        v
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAPSA);
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs capsa to completion. Its stdout and stderr go to files, not
    /// pipes: a created container inherits them and would otherwise keep
    /// the pipe open long after capsa returned.
    pub fn capsa(&self, args: &[&str]) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let out_path = self.dir.join(format!(".out-{n}"));
        let err_path = self.dir.join(format!(".err-{n}"));
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .expect("run capsa");
        let out = Output {
            status,
            stdout: std::fs::read(&out_path).unwrap_or_default(),
            stderr: std::fs::read(&err_path).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(out_path);
        let _ = std::fs::remove_file(err_path);
        out
    }

    /// Runs `config` in the foreground and returns its output.
    pub fn run(&self, config: &Value) -> Output {
        self.write_config(config);
        let id = self.id("run");
        self.capsa(&["run", "--bundle", self.bundle.to_str().unwrap(), &id])
    }

    /// Runs a shell script in a default container and returns stdout,
    /// asserting success.
    pub fn run_sh(&self, script: &str) -> String {
        let out = self.run(&self.sh_config(script));
        assert_ok(&out);
        stdout(&out)
    }

    pub fn bundle_str(&self) -> &str {
        self.bundle.to_str().unwrap()
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.capsa(&["state", id]);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).expect("state is JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits (bounded) until the container reaches `want`.
    pub fn wait_status(&self, id: &str, want: &str) {
        for _ in 0..500 {
            let out = self.capsa(&["state", id]);
            let status = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(String::from));
            if status.as_deref() == Some(want) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "container {id} never became {want}; state: {}",
            self.state(id)
        );
    }

    /// Creates the container `id` from the bundle with its stdout (which
    /// the container inherits) going to `log`; stderr is inherited.
    pub fn create_logged(&self, id: &str, log: &Path) {
        let st = self
            .cmd(&["create", "--bundle", self.bundle_str(), id])
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        assert!(st.success(), "create {id} failed");
    }

    /// Starts a created container and waits (bounded) until `log`
    /// contains `marker`; returns the log's text.
    pub fn start_and_wait_for(&self, id: &str, log: &Path, marker: &str) -> String {
        assert_ok(&self.capsa(&["start", id]));
        let mut text = String::new();
        for _ in 0..500 {
            text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains(marker) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        text
    }

    /// Runs `config` in the foreground inside a private mount namespace
    /// (`unshare -m`) where the shell script `setup` ran first: host mounts
    /// a test needs exist only there and vanish with it.
    pub fn run_in_private_mountns(&self, setup: &str, config: &Value) -> Output {
        self.write_config(config);
        let script =
            format!("set -e\n{setup}\nexec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\"");
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, CAPSA])
            .arg(&self.root)
            .arg(&self.bundle)
            .arg(self.id("run"))
            .stdin(Stdio::null())
            .output()
            .expect("run unshare")
    }

    /// Entries left in the state root (must be none after a failed create).
    pub fn state_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let Ok(out) = self.cmd(&["list", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.cmd(&["delete", "--force", id]).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "capsa failed ({:?})\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Asserts a failure whose stderr contains `needle`, and no panic.
#[track_caller]
pub fn assert_fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success\nstdout: {}",
        stdout(o)
    );
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "capsa panicked: {err}");
}

/// A field of /proc/self/status as printed by `grep`.
pub fn status_field(text: &str, field: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{field} missing in {text}"))
}

/// Whether a process with this pid exists on the host.
pub fn pid_exists(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The command lines of host processes that mention `needle` (a
/// container id): after a failed `create` there must be none.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .filter(|c| c.contains(needle))
                .collect()
        })
        .unwrap_or_default()
}
