//! Shared by the client tests under integration/: which runtime binary the
//! clients drive, the offline busybox image, private scratch directories,
//! commands with a time limit, and host clean-up (mounts, cgroups,
//! processes) that runs even when a test fails.
//!
//! The runtime is capsa's release binary unless `CAPSA_CLIENT_RUNTIME`
//! names another one (`CAPSA_CLIENT_RUNTIME=/usr/sbin/runc cargo test
//! --release --test containerd` runs the same file against runc, so these
//! tests check the clients' contract rather than capsa's habits).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);
static IMAGE: OnceLock<PathBuf> = OnceLock::new();

/// Absolute path of the runtime the clients are pointed at.
pub fn runtime() -> PathBuf {
    match std::env::var_os("CAPSA_CLIENT_RUNTIME") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_capsa")),
    }
}

/// The runtime's name as the clients print it (`capsa`, `runc`).
pub fn runtime_name() -> String {
    runtime()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test with a clear message when a client is not installed
/// (`make integration-deps` installs them from Debian).
pub fn require(cmd: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{cmd} is not installed: run `make integration-deps` (apt-get install containerd podman docker.io)"
    );
}

/// The busybox image as an archive that `ctr images import`, `podman load`
/// and `docker load` all accept, built once per test binary by
/// scripts/make-image.sh from the rootfs the Makefile makes.
pub fn busybox_image() -> &'static Path {
    IMAGE.get_or_init(|| build_image("busybox-image", IMAGE_NAME, r#"["sh"]"#))
}

/// A Kubernetes sandbox ("pause") image made from the same rootfs: its
/// command sleeps until SIGTERM or SIGKILL and, as pid 1 of a pod that
/// shares its PID namespace, reaps the orphans it inherits (the shell's
/// `wait` collects any child).
pub fn pause_image() -> &'static Path {
    static PAUSE: OnceLock<PathBuf> = OnceLock::new();
    PAUSE.get_or_init(|| {
        build_image(
            "pause-image",
            PAUSE_IMAGE_NAME,
            r#"["sh","-c","trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]"#,
        )
    })
}

/// The name the pause image is loaded under.
pub const PAUSE_IMAGE_NAME: &str = "pause:capsa";

fn build_image(stem: &str, name: &str, cmd: &str) -> PathBuf {
    let rootfs = manifest_dir().join("bundles/busybox/rootfs");
    if !rootfs.join("bin/busybox").exists() {
        let st = Command::new("sh")
            .arg(manifest_dir().join("scripts/make-rootfs.sh"))
            .arg(&rootfs)
            .status()
            .expect("run make-rootfs.sh");
        assert!(st.success(), "building the busybox rootfs failed");
    }
    // Built under target/tmp, and renamed into place so test binaries
    // running at the same time never read a half-written archive.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tmp = dir.join(format!("{stem}.{}.tar", std::process::id()));
    let out = dir.join(format!("{stem}.tar"));
    let st = Command::new("sh")
        .arg(manifest_dir().join("scripts/make-image.sh"))
        .arg(&rootfs)
        .arg(&tmp)
        .arg(name)
        .arg(cmd)
        .status()
        .expect("run make-image.sh");
    assert!(st.success(), "building the image {name} failed");
    fs::rename(&tmp, &out).expect("rename the image archive");
    out
}

/// The name the image is loaded under.
pub const IMAGE_NAME: &str = "busybox:capsa";

/// A unique short name for ids, namespaces and directories.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A private scratch directory, unmounted and removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        let path = std::env::temp_dir().join(unique(prefix));
        fs::create_dir_all(&path).expect("create scratch dir");
        Scratch { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unmount_under(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Runs a command with a time limit (`timeout -k 5 SECS`), so a hung client
/// fails the test instead of the whole run.
pub fn run_limited(secs: u32, program: &str, args: &[&str]) -> Output {
    command_limited(secs, program, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

pub fn command_limited(secs: u32, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    c.arg("-k").arg("5").arg(secs.to_string()).arg(program);
    c.args(args);
    c
}

/// What a client printed at a terminal.
pub struct PtyOutput {
    pub code: Option<i32>,
    /// Everything written to the terminal, carriage returns removed.
    pub text: String,
}

/// Runs `program args` with a new pseudo-terminal of `rows`x`cols` as its
/// controlling terminal and stdio, for clients that insist on a terminal
/// (`ctr -t`, `podman run -t`). Nothing is typed into the terminal, so the
/// command under test sees neither input nor an end of input.
pub fn run_in_pty(secs: u32, rows: u16, cols: u16, program: &str, args: &[&str]) -> PtyOutput {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
    let mut cmd = command_limited(secs, program, args);
    cmd.stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(pty.slave.try_clone().unwrap());
    // SAFETY: between fork and exec the closure only calls setsid and
    // ioctl, both async-signal-safe, on fd 0 which the child owns.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn under a pty");
    // The Command keeps its copies of the slave until dropped; reading the
    // master ends only when no slave fd is left outside the client.
    drop(cmd);
    drop(pty.slave);
    let master = pty.master;
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // read fails with EIO once the last slave fd is closed.
        while let Ok(n) = f.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf
    });
    let status = child.wait().expect("wait for the pty client");
    let text = reader.join().unwrap_or_default();
    PtyOutput {
        code: status.code(),
        text: String::from_utf8_lossy(&text).replace('\r', ""),
    }
}

/// Starts a daemon with stdin closed and its stdout and stderr in the
/// file `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> std::process::Child {
    let f = fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the command's output unless it succeeded.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Polls `f` every 50 ms until it returns Some, or panics after `secs`.
#[track_caller]
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

/// Lazily unmounts everything at or below `dir`.
pub fn unmount_under(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Removes the cgroup directory `rel` (and what is below it) from every
/// mounted hierarchy: the clients create parents such as `/<namespace>`
/// that no runtime removes.
pub fn remove_cgroup(rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    for h in cgroup_hierarchies() {
        rmdir_tree(&h.join(rel));
    }
}

/// The cgroup hierarchies mounted on this host.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("cgroup ") || t.starts_with("cgroup2 "))
        })
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .collect()
}

/// Whether the cgroup `rel` exists in any hierarchy.
pub fn cgroup_exists(rel: &str) -> bool {
    let rel = rel.trim_start_matches('/');
    cgroup_hierarchies().iter().any(|h| h.join(rel).is_dir())
}

fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Pids of processes whose command line contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut v = Vec::new();
    let me = std::process::id() as i32;
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            v.push(pid);
        }
    }
    v
}

/// SIGKILLs every process whose command line contains `needle`.
pub fn kill_matching(needle: &str) {
    for pid in pids_with_cmdline(needle) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The cgroup path of `pid` in the hierarchy whose controller list
/// contains `controller` (v1), from /proc/PID/cgroup.
pub fn cgroup_of(pid: i32, controller: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _ = parts.next()?;
        let ctrls = parts.next()?;
        let path = parts.next()?;
        ctrls
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}
