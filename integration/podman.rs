//! podman 4.3 (Debian's) driving the runtime through conmon, the way a
//! podman user reaches a runc-compatible runtime (`--runtime PATH`). Each
//! test runs podman with private storage and state: its own `--root` and
//! `--runroot`, a private containers.conf (`CONTAINERS_CONF`: cgroupfs
//! manager, file events, file locks, its own tmp, static, volume and network
//! directories, the runtime listed in `runtime_supports_json` so conmon
//! passes `--log-format=json --log FILE`) and storage.conf, a cgroup parent
//! of its own, and `--network none`. Nothing is read from or written to
//! /var/lib/containers, /run/containers or /run/libpod of the host. The
//! busybox image built offline by scripts/make-image.sh is loaded with
//! `podman load -i`. Everything is observed through podman, from inside the
//! containers and on the host (cgroups, processes, mounts, the runtime's own
//! state); containers, conmons, mounts and cgroups are removed when the test
//! ends, pass or fail.

mod common;
#[path = "../tests/common/users.rs"]
mod users;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const IMAGE: &str = "docker.io/library/busybox:capsa";

/// Host paths a root podman uses by default; the private configuration
/// keeps every one of them untouched.
const HOST_PATHS: &[&str] = &[
    "/var/lib/containers",
    "/run/containers",
    "/run/libpod",
    "/var/lib/cni",
    "/etc/containers/networks",
    "/dev/shm/libpod_lock",
    "/sys/fs/cgroup/memory/libpod_parent",
    "/sys/fs/cgroup/pids/libpod_parent",
];

/// One private podman: storage, state, configuration and cgroup parent.
struct Podman {
    dir: Scratch,
    /// Every container's cgroup parent (`--cgroup-parent`), so this
    /// instance's cgroups (and conmon's, `<parent>/conmon`) are its own.
    cgroup_parent: String,
    /// Which of HOST_PATHS existed before this podman ran.
    host_before: Vec<bool>,
}

impl Podman {
    fn new() -> Podman {
        require("podman");
        require("conmon");
        require("unshare");
        let host_before = HOST_PATHS.iter().map(|p| Path::new(p).exists()).collect();
        let dir = Scratch::new("capsa-it-pm");
        let cgroup_parent = format!("/{}", dir.path.file_name().unwrap().to_string_lossy());
        let d = |p: &str| dir.join(p).display().to_string();
        for sub in ["root", "runroot", "tmp", "networks", "imgtmp", "varlib"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let name = runtime_name();
        // podman asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 by
        // default; above the hard limits that needs CAP_SYS_RESOURCE, which
        // this machine's bounding set lacks (runc fails the same way).
        let nofile = hard_limit(nix::sys::resource::Resource::RLIMIT_NOFILE).min(4096);
        let nproc = hard_limit(nix::sys::resource::Resource::RLIMIT_NPROC).min(4096);
        let conf = format!(
            r#"[containers]
# Debian's /usr/share/containers/containers.conf list, which CONTAINERS_CONF
# replaces (podman's built-in list adds NET_RAW, MKNOD and AUDIT_WRITE).
default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
  "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"

[network]
# podman 4.3's netavark backend creates /run/containers/networks on the host
# even for --network none; CNI is not run at all then.
network_backend = "cni"
network_config_dir = "{networks}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
# shm locks live in /dev/shm/libpod_lock, shared by every podman of the host.
lock_type = "file"
tmp_dir = "{tmp}"
static_dir = "{static_dir}"
volume_path = "{volumes}"
image_copy_tmp_dir = "{imgtmp}"
runtime = "{name}"
runtime_supports_json = ["{name}"]

[engine.runtimes]
{name} = ["{path}"]
"#,
            networks = d("networks"),
            events = d("events.log"),
            tmp = d("tmp"),
            static_dir = d("root/libpod"),
            volumes = d("root/volumes"),
            imgtmp = d("imgtmp"),
            path = runtime().display(),
        );
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            d("root"),
            d("runroot")
        );
        std::fs::write(dir.join("storage.conf"), storage).unwrap();
        let p = Podman {
            dir,
            cgroup_parent,
            host_before,
        };
        // containers/image keeps a blob-info cache in /var/lib/containers/
        // cache for root whatever the storage root is: the load runs in a
        // mount namespace of its own with a private directory over /var/lib.
        let image = busybox_image().display().to_string();
        let varlib = p.dir.join("varlib").display().to_string();
        let mut args: Vec<String> = [
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /var/lib && exec \"$@\"",
            &varlib,
            "podman",
        ]
        .map(String::from)
        .to_vec();
        args.extend(p.global_args());
        args.extend(["load", "-i", &image].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = p
            .env(&mut command_limited(60, "unshare", &args))
            .output()
            .unwrap();
        let text = ok(out);
        assert!(text.contains("busybox:capsa"), "{text}");
        p
    }

    fn path(&self, p: &str) -> String {
        self.dir.join(p).display().to_string()
    }

    fn env<'a>(&self, c: &'a mut Command) -> &'a mut Command {
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .stdin(Stdio::null())
    }

    /// podman's global flags: private roots, cgroupfs, file events and the
    /// runtime under test by path.
    fn global_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.path("root"),
            "--runroot".into(),
            self.path("runroot"),
            "--runtime".into(),
            runtime().display().to_string(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
        ]
    }

    fn all_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = self.global_args();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    fn command(&self, args: &[&str]) -> Command {
        let all = self.all_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut c = command_limited(60, "podman", &all);
        self.env(&mut c);
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run podman")
    }

    /// `podman run --network none --cgroup-parent P [extra] IMAGE cmd...`.
    fn run_args(&self, extra: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = ["run", "--network", "none", "--cgroup-parent"]
            .map(String::from)
            .to_vec();
        a.push(self.cgroup_parent.clone());
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(IMAGE.into());
        a.extend(cmd.iter().map(|s| s.to_string()));
        a
    }

    fn run(&self, extra: &[&str], cmd: &[&str]) -> Output {
        let a = self.run_args(extra, cmd);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        self.podman(&a)
    }

    /// `podman run -d`: the container's full id and its init's host pid.
    fn run_detached(&self, extra: &[&str], cmd: &[&str]) -> (String, i32) {
        let mut e = vec!["-d"];
        e.extend_from_slice(extra);
        let id = ok(self.run(&e, cmd)).trim().to_string();
        assert_eq!(id.len(), 64, "podman run -d printed {id:?}");
        let pid = self.pid(&id);
        assert!(pid > 0, "no pid for {id}");
        (id, pid)
    }

    /// A client command run with a terminal (`-t`), arguments after the
    /// global flags.
    fn in_pty(&self, rows: u16, cols: u16, args: &[String]) -> PtyOutput {
        let conf = format!("CONTAINERS_CONF={}", self.path("containers.conf"));
        let storage = format!("CONTAINERS_STORAGE_CONF={}", self.path("storage.conf"));
        let mut all = vec![conf, storage, "podman".into()];
        all.extend(self.global_args());
        all.extend(args.iter().cloned());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run_in_pty(60, rows, cols, "env", &all)
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        ok(self.podman(&["inspect", "--format", format, id]))
            .trim()
            .to_string()
    }

    fn pid(&self, id: &str) -> i32 {
        self.inspect(id, "{{.State.Pid}}").parse().unwrap_or(0)
    }

    fn status(&self, id: &str) -> String {
        self.inspect(id, "{{.State.Status}}")
    }

    fn exit_code(&self, id: &str) -> i32 {
        self.inspect(id, "{{.State.ExitCode}}").parse().unwrap()
    }

    fn ids(&self) -> Vec<String> {
        stdout(&self.podman(&["ps", "-aq", "--no-trunc"]))
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// The container's cgroup below this instance's parent.
    fn cgroup(&self, id: &str) -> String {
        format!("{}/libpod-{id}", self.cgroup_parent)
    }

    /// Asserts that nothing of a removed container is left: the runtime's
    /// state (asked as podman asks, `state ID` with the default root), its
    /// cgroup, its conmon, its mounts.
    #[track_caller]
    fn assert_gone(&self, id: &str) {
        assert!(!self.ids().contains(&id.to_string()), "{id} still listed");
        let rt = runtime().display().to_string();
        let st = run_limited(20, &rt, &["state", id]);
        assert!(
            !st.status.success(),
            "the runtime still has state for {id}: {}",
            stdout(&st)
        );
        assert!(
            !cgroup_exists(&self.cgroup(id)),
            "cgroup {} left behind",
            self.cgroup(id)
        );
        // conmon's exit command (`podman container cleanup ID`) may still
        // be finishing when `podman rm` returns.
        wait_for(10, &format!("conmon and cleanup of {id} to end"), || {
            pids_with_cmdline(id).is_empty().then_some(())
        });
        let mounts: Vec<PathBuf> = mounts_under(&self.dir.path)
            .into_iter()
            .filter(|m| m.to_string_lossy().contains(id))
            .collect();
        assert!(mounts.is_empty(), "mounts of {id} left: {mounts:?}");
    }

    /// Asserts that the host paths a default podman would use were not
    /// created by this one.
    #[track_caller]
    fn assert_host_untouched(&self) {
        for (p, before) in HOST_PATHS.iter().zip(&self.host_before) {
            assert!(
                *before || !Path::new(p).exists(),
                "{p} was created on the host"
            );
        }
    }
}

fn hard_limit(r: nix::sys::resource::Resource) -> u64 {
    nix::sys::resource::getrlimit(r).map(|(_, h)| h).unwrap()
}

/// SIGKILLs every process in the cgroup `rel` and below (thawing it first
/// if frozen), in every hierarchy.
fn kill_cgroup(rel: &str) {
    let rel = rel.trim_start_matches('/');
    for h in cgroup_hierarchies() {
        let top = h.join(rel);
        if !top.is_dir() {
            continue;
        }
        for dir in dirs_below(&top) {
            let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn dirs_below(top: &Path) -> Vec<PathBuf> {
    let mut v = vec![top.to_path_buf()];
    let mut i = 0;
    while i < v.len() {
        if let Ok(rd) = std::fs::read_dir(&v[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    v.push(e.path());
                }
            }
        }
        i += 1;
    }
    v
}

impl Drop for Podman {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("podman ps -a:\n{}", stdout(&self.podman(&["ps", "-a"])));
        }
        let ids = self.ids();
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        // What podman could not remove: the runtime's state (default root,
        // as podman uses it), conmons and `podman container cleanup`s (their
        // command lines name this instance's directories), the containers'
        // processes, then the cgroups.
        let rt = runtime().display().to_string();
        for id in &ids {
            let _ = run_limited(20, &rt, &["delete", "--force", id]);
        }
        kill_matching(&format!("{}/", self.dir.path.display()));
        kill_cgroup(&self.cgroup_parent);
        let _ = wait_for_quiet(&self.cgroup_parent);
        remove_cgroup(&self.cgroup_parent);
        // The Scratch drop unmounts what is left under the directory (the
        // overlay rootfs and /dev/shm mounts) and removes it.
    }
}

/// Waits (up to 10 s) until the cgroup tree `rel` holds no process.
fn wait_for_quiet(rel: &str) -> bool {
    for _ in 0..200 {
        let busy = cgroup_hierarchies().iter().any(|h| {
            dirs_below(&h.join(rel.trim_start_matches('/')))
                .iter()
                .any(|d| {
                    std::fs::read_to_string(d.join("cgroup.procs"))
                        .is_ok_and(|s| !s.trim().is_empty())
                })
        });
        if !busy {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn run_rm_passes_output_exit_status_and_stdin() {
    let p = Podman::new();
    let out = p.run(
        &["--rm"],
        &["sh", "-c", "echo pid=$$; echo err >&2; exit 7"],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pid=1\n");
    // The container's stderr, and nothing the runtime printed besides.
    assert_eq!(stderr(&out), "err\n");

    // run -i: stdin reaches the container through conmon.
    let a = p.run_args(&["--rm", "-i"], &["sh", "-c", "read line; echo got=$line"]);
    let mut all = p.all_args(&[]);
    all.extend(a);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut c = command_limited(60, "podman", &all);
    p.env(&mut c);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through conmon\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "got=through conmon\n");

    // The process runs as configured: podman's capabilities, hostname,
    // rlimits and the container's own namespaces.
    let out = ok(p.run(
        &["--rm", "--hostname", "pmhost"],
        &[
            "sh",
            "-c",
            "hostname; grep -E '^CapEff' /proc/self/status; \
             grep 'Max open files' /proc/self/limits",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pmhost", "{out}");
    // containers.conf's default_capabilities: CHOWN DAC_OVERRIDE FOWNER
    // FSETID KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT.
    assert_eq!(lines[1].split_whitespace().nth(1), Some("00000000800405fb"));
    let nofile = hard_limit(nix::sys::resource::Resource::RLIMIT_NOFILE).min(4096);
    assert!(
        lines[2].split_whitespace().nth(3) == Some(&nofile.to_string()),
        "{out}"
    );

    assert!(p.ids().is_empty(), "--rm left containers: {:?}", p.ids());
    assert!(
        mounts_under(&p.dir.path).is_empty(),
        "mounts left: {:?}",
        mounts_under(&p.dir.path)
    );
    p.assert_host_untouched();
}

#[test]
fn detached_run_exec_and_top() {
    let p = Podman::new();
    let (id, pid) = p.run_detached(&[], &["sleep", "1000"]);
    assert_eq!(p.status(&id), "running");
    // The init sits in the cgroup podman asked for.
    assert_eq!(
        cgroup_of(pid, "pids").as_deref(),
        Some(p.cgroup(&id).as_str())
    );
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmd, b"sleep\x001000\x00");

    // exec joins the init's namespaces and cgroup.
    let out = p.podman(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo pid=$$; tr '\\0' ' ' < /proc/1/cmdline; echo; \
         for n in mnt uts ipc net pid; do \
           [ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] && echo same-$n; \
         done; grep pids /proc/self/cgroup; echo err >&2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("pid=") && lines[0] != "pid=1",
        "{text}"
    );
    assert_eq!(lines[1].trim(), "sleep 1000", "{text}");
    assert_eq!(
        &lines[2..7],
        ["same-mnt", "same-uts", "same-ipc", "same-net", "same-pid"],
        "{text}"
    );
    assert!(lines[7].ends_with(&format!(":{}", p.cgroup(&id))), "{text}");
    assert_eq!(stderr(&out), "err\n");
    let host_pid_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let init_pid_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(host_pid_ns, init_pid_ns, "the container has its own pids");

    // exec's exit status comes back through conmon.
    let out = p.podman(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // A detached exec shows in `podman top`, next to the init.
    ok(p.podman(&["exec", "-d", &id, "sleep", "999"]));
    let top = wait_for(10, "two processes in podman top", || {
        let out = stdout(&p.podman(&["top", &id, "pid", "args"]));
        (out.lines().count() == 3).then_some(out)
    });
    let rows: Vec<Vec<&str>> = top
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][0], "1", "{top}");
    assert_eq!(rows[0][1..], ["sleep", "1000"], "{top}");
    assert_eq!(rows[1][1..], ["sleep", "999"], "{top}");
    // The exec'd sleep is a host process in the container's cgroup.
    let procs =
        std::fs::read_to_string(format!("/sys/fs/cgroup/pids{}/cgroup.procs", p.cgroup(&id)))
            .unwrap();
    let procs: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert!(procs.contains(&pid));

    ok(p.podman(&["rm", "-f", "-t", "0", &id]));
    p.assert_gone(&id);
    p.assert_host_untouched();
}

/// Prints the terminal's rows and columns once set: conmon resizes the
/// console after the process started, so the first look may see 0x0.
const STTY_SIZE: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size 2>&1); \
    case $s in [1-9]*) echo $s; break;; esac; sleep 0.2; done";

#[test]
fn terminals_for_run_and_exec() {
    let p = Podman::new();
    let args = p.run_args(
        &["--rm", "-t"],
        &[
            "sh",
            "-c",
            &format!("tty; [ -t 0 ] && echo stdin-is-tty; {STTY_SIZE}; exit 6"),
        ],
    );
    let out = p.in_pty(33, 91, &args);
    let text = &out.text;
    assert_eq!(out.code, Some(6), "{text}");
    assert!(text.contains("/dev/pts/0\n"), "{text}");
    assert!(text.contains("stdin-is-tty"), "{text}");
    assert!(text.contains("33 91"), "console size not passed: {text}");
    assert!(!text.contains("warning"), "{text}");

    // exec -t into a detached container gets a pty of its own.
    let (id, _) = p.run_detached(&[], &["sleep", "1000"]);
    let args: Vec<String> = ["exec", "-t", &id, "sh", "-c"]
        .map(String::from)
        .into_iter()
        .chain([format!(
            "tty; [ -t 1 ] && echo out-is-tty; {STTY_SIZE}; exit 5"
        )])
        .collect();
    let out = p.in_pty(20, 70, &args);
    let text = &out.text;
    assert_eq!(out.code, Some(5), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("out-is-tty"), "{text}");
    assert!(text.contains("20 70"), "console size not passed: {text}");
    assert!(!text.contains("warning"), "{text}");
    ok(p.podman(&["rm", "-f", "-t", "0", &id]));
    p.assert_gone(&id);
}

#[test]
fn stop_sends_sigterm_then_sigkill_and_rm_removes_everything() {
    let p = Podman::new();
    let (term, _) = p.run_detached(
        &[],
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    let (deaf, deaf_pid) = p.run_detached(
        &[],
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    for id in [&term, &deaf] {
        wait_for(10, "the trap to be set", || {
            stdout(&p.podman(&["logs", id]))
                .contains("ready")
                .then_some(())
        });
    }

    // SIGTERM reaches the init, whose trap ends it with 42.
    let out = p.podman(&["stop", "-t", "20", &term]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.status(&term), "exited");
    assert_eq!(p.exit_code(&term), 42);
    assert!(stdout(&p.podman(&["logs", &term])).contains("got TERM"));

    // An init ignoring SIGTERM is killed with SIGKILL after the timeout.
    let out = p.podman(&["stop", "-t", "1", &deaf]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resorting to SIGKILL"),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.exit_code(&deaf), 137);
    assert!(!Path::new(&format!("/proc/{deaf_pid}")).exists());

    // A stopped container starts again (a new create through conmon).
    ok(p.podman(&["start", &term]));
    assert_eq!(p.status(&term), "running");
    wait_for(10, "the trap to be set again", || {
        (stdout(&p.podman(&["logs", &term])).matches("ready").count() == 2).then_some(())
    });
    ok(p.podman(&["stop", "-t", "20", &term]));
    assert_eq!(p.exit_code(&term), 42);

    for id in [&term, &deaf] {
        ok(p.podman(&["rm", id]));
        p.assert_gone(id);
    }
    assert!(
        mounts_under(&p.dir.path).is_empty(),
        "{:?}",
        mounts_under(&p.dir.path)
    );
}

#[test]
fn pause_unpause_and_kill() {
    let p = Podman::new();
    let (id, pid) = p.run_detached(
        &[],
        &[
            "sh",
            "-c",
            "trap 'echo got USR1' USR1; echo ready; while :; do sleep 0.1; done",
        ],
    );
    wait_for(10, "the trap to be set", || {
        stdout(&p.podman(&["logs", &id]))
            .contains("ready")
            .then_some(())
    });
    let freezer = format!(
        "/sys/fs/cgroup/freezer{}/freezer.state",
        cgroup_of(pid, "freezer").unwrap()
    );
    ok(p.podman(&["pause", &id]));
    assert_eq!(p.status(&id), "paused");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    ok(p.podman(&["unpause", &id]));
    assert_eq!(p.status(&id), "running");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");

    // kill with a signal the init handles: it goes on running.
    ok(p.podman(&["kill", "--signal", "USR1", &id]));
    wait_for(10, "the USR1 trap", || {
        stdout(&p.podman(&["logs", &id]))
            .contains("got USR1")
            .then_some(())
    });
    assert_eq!(p.status(&id), "running");
    // kill's default is SIGKILL.
    ok(p.podman(&["kill", &id]));
    wait_for(10, "the container to exit", || {
        (p.status(&id) == "exited").then_some(())
    });
    assert_eq!(p.exit_code(&id), 137);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    ok(p.podman(&["rm", &id]));
    p.assert_gone(&id);
}

#[test]
fn memory_and_pids_limits_land_in_the_containers_cgroups() {
    let p = Podman::new();
    let (id, pid) = p.run_detached(
        &["--memory", "64m", "--pids-limit", "20"],
        &["sleep", "1000"],
    );
    let mem = cgroup_of(pid, "memory").unwrap();
    let pids = cgroup_of(pid, "pids").unwrap();
    assert_eq!(mem, p.cgroup(&id));
    let host = |f: &str| std::fs::read_to_string(f).unwrap().trim().to_string();
    assert_eq!(
        host(&format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(host(&format!("/sys/fs/cgroup/pids{pids}/pids.max")), "20");

    // Seen from inside: the container's own cgroups at /sys/fs/cgroup.
    let out = ok(p.podman(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; \
         grep -E ':(memory|pids):' /proc/self/cgroup",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["67108864", "20"], "{out}");
    assert!(lines[2..].iter().all(|l| l.ends_with(&mem)), "{out}");

    // The pids limit holds: the shell's fork fails once the cgroup has 20
    // tasks (busybox sh then gives up); the init and 18 sleeps remain.
    let out = p.podman(&[
        "exec",
        &id,
        "sh",
        "-c",
        "i=0; while [ $i -lt 30 ]; do sleep 100 & i=$((i+1)); done",
    ]);
    assert!(
        stderr(&out).contains("can't fork"),
        "no fork failure: {}",
        stderr(&out)
    );
    assert_eq!(
        host(&format!("/sys/fs/cgroup/pids{pids}/pids.current")),
        "19"
    );
    ok(p.podman(&["rm", "-f", "-t", "0", &id]));
    p.assert_gone(&id);
}

#[test]
fn runtime_errors_map_to_podmans_exit_codes() {
    let p = Podman::new();
    // podman reads the runtime's error from its JSON log and maps the
    // message to 127 (not found) or 126 (not executable).
    let out = p.run(&["--rm"], &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["--rm"], &["/no/such/binary"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no such file or directory"),
        "{}",
        stderr(&out)
    );
    let out = p.run(&["--rm"], &["/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // podman decodes the whole log file it gave the runtime (conmon's
    // `--log-format=json --log FILE`) as one JSON object: after a failed
    // create it must hold just the error.
    let id = ok(p.podman(&[
        "create",
        "--network",
        "none",
        "--cgroup-parent",
        &p.cgroup_parent,
        IMAGE,
        "no-such-command",
    ]))
    .trim()
    .to_string();
    let out = p.podman(&["start", &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    let log = p
        .dir
        .join(&format!("runroot/overlay-containers/{id}/userdata/oci-log"));
    let text = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not one JSON object ({e}):\n{text}", log.display()));
    assert_eq!(v["level"], "error", "{text}");
    assert!(
        v["msg"]
            .as_str()
            .is_some_and(|m| m.contains("executable file not found in $PATH")),
        "{text}"
    );
    ok(p.podman(&["rm", &id]));
    p.assert_gone(&id);

    // A failed create leaves nothing: no container, state, cgroup or mount.
    assert!(p.ids().is_empty(), "{:?}", p.ids());
    assert!(
        mounts_under(&p.dir.path).is_empty(),
        "{:?}",
        mounts_under(&p.dir.path)
    );
    let left: Vec<PathBuf> = cgroup_hierarchies()
        .iter()
        .flat_map(|h| dirs_below(&h.join(p.cgroup_parent.trim_start_matches('/'))))
        .filter(|d| d.to_string_lossy().contains("libpod-"))
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");

    // The same for exec into a running container.
    let (id, _) = p.run_detached(&[], &["sleep", "1000"]);
    let out = p.podman(&["exec", &id, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    let out = p.podman(&["exec", &id, "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert_eq!(p.status(&id), "running");
    ok(p.podman(&["rm", "-f", "-t", "0", &id]));
    p.assert_gone(&id);
}

#[test]
fn tmpfs_and_read_only_runs_get_tmpcopyup_tmpfs_mounts() {
    let p = Podman::new();
    // `--tmpfs` asks for tmpcopyup: the image's /etc is copied into the
    // new tmpfs, which takes writes the image never sees.
    let out = ok(p.run(
        &["--rm", "--tmpfs", "/etc"],
        &[
            "sh",
            "-c",
            "grep ' /etc ' /proc/self/mountinfo | grep -c tmpfs; \
             grep -c '^root:' /etc/passwd; echo x > /etc/new && echo wrote",
        ],
    ));
    assert_eq!(out, "1\n1\nwrote\n");
    // `--read-only`: / refuses writes, /tmp, /var/tmp and /run are
    // tmpcopyup tmpfs mounts that take them.
    let out = ok(p.run(
        &["--rm", "--read-only"],
        &[
            "sh",
            "-c",
            "touch /x 2>/dev/null; echo root=$?; \
             for d in /tmp /var/tmp /run; do touch $d/x && echo $d=$?; done; \
             grep -cE ' /(tmp|var/tmp|run) .* - tmpfs ' /proc/self/mountinfo",
        ],
    ));
    assert_eq!(out, "root=1\n/tmp=0\n/var/tmp=0\n/run=0\n3\n");
    assert!(p.ids().is_empty(), "--rm left containers: {:?}", p.ids());
    assert!(
        mounts_under(&p.dir.path).is_empty(),
        "mounts left: {:?}",
        mounts_under(&p.dir.path)
    );
    p.assert_host_untouched();
}

// ---------------------------------------------------------------------
// Rootless podman: an ordinary user (made by the test, with subordinate
// ids) runs podman, which runs conmon and the runtime as uid 0 of its own
// user namespace. Storage is vfs (no fuse-overlayfs), --network none (no
// slirp4netns), cgroupfs: on this host's cgroup v1 no hierarchy is
// delegated, so containers run without cgroups of their own.
// ---------------------------------------------------------------------

/// A user with subordinate ids and a private rootless podman; on drop the
/// user's processes (conmons, podman's pause process, containers), the
/// user, its subordinate ids and its storage are removed.
struct RootlessPodman {
    // Dropped in this order: the user (and its processes), then the
    // storage.
    user: users::TestUser,
    dir: Scratch,
}

impl std::ops::Deref for RootlessPodman {
    type Target = users::TestUser;
    fn deref(&self) -> &users::TestUser {
        &self.user
    }
}

/// The range given to the user in /etc/subuid and /etc/subgid (besides
/// whatever useradd adds by itself).
const RL_SUB_START: u32 = 600000;

impl RootlessPodman {
    fn new() -> RootlessPodman {
        require("podman");
        require("conmon");
        require("newuidmap");
        require("setpriv");
        let dir = Scratch::new("capsa-it-pmrl");
        // One user per test (tests run in parallel), named uniquely.
        let user = users::TestUser::create(&unique("capsapm"), RL_SUB_START, 65536);
        let p = RootlessPodman { user, dir };
        let d = |s: &str| p.path(s);
        for sub in [
            "root", "runroot", "tmp", "networks", "imgtmp", "home", "xdg",
        ] {
            std::fs::create_dir_all(p.dir.join(sub)).unwrap();
        }
        let nofile = hard_limit(nix::sys::resource::Resource::RLIMIT_NOFILE).min(4096);
        let nproc = hard_limit(nix::sys::resource::Resource::RLIMIT_NPROC).min(4096);
        let rt = runtime_name();
        let conf = format!(
            r#"[containers]
default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
  "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"

[network]
network_backend = "cni"
network_config_dir = "{networks}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
lock_type = "file"
tmp_dir = "{tmp}"
static_dir = "{static_dir}"
volume_path = "{volumes}"
image_copy_tmp_dir = "{imgtmp}"
runtime_supports_json = ["{rt}"]
"#,
            networks = d("networks"),
            events = d("events.log"),
            tmp = d("tmp"),
            static_dir = d("root/libpod"),
            volumes = d("root/volumes"),
            imgtmp = d("imgtmp"),
        );
        std::fs::write(p.dir.join("containers.conf"), conf).unwrap();
        std::fs::write(
            p.dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d("root"),
                d("runroot")
            ),
        )
        .unwrap();
        std::fs::copy(busybox_image(), p.dir.join("image.tar")).unwrap();
        let owner = format!("{}:{}", p.uid, p.gid);
        let st = Command::new("chown")
            .args(["-R", &owner, &p.path("")])
            .status()
            .unwrap();
        assert!(st.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.dir.join("xdg"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let text = ok(p.podman(&["load", "-i", &p.path("image.tar")]));
        assert!(text.contains("busybox:capsa"), "{text}");
        p
    }

    fn path(&self, p: &str) -> String {
        self.dir.join(p).display().to_string()
    }

    /// `setpriv` to the user with a clean environment, then podman with
    /// private roots, cgroupfs, file events, vfs and the runtime under test.
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--clear-groups".into(),
            "env".into(),
            "-i".into(),
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
            format!("HOME={}", self.path("home")),
            format!("XDG_RUNTIME_DIR={}", self.path("xdg")),
            format!("USER={}", self.name),
            format!("CONTAINERS_CONF={}", self.path("containers.conf")),
            format!("CONTAINERS_STORAGE_CONF={}", self.path("storage.conf")),
            "podman".into(),
            "--root".into(),
            self.path("root"),
            "--runroot".into(),
            self.path("runroot"),
            "--storage-driver".into(),
            "vfs".into(),
            "--runtime".into(),
            runtime().display().to_string(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn podman(&self, args: &[&str]) -> Output {
        let all = self.argv(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run_limited(120, "setpriv", &all)
    }

    /// podman with its stdout and stderr in files: for commands that
    /// leave a process behind holding them.
    fn podman_detached(&self, args: &[&str]) -> Output {
        let all = self.argv(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let (out, err) = (self.dir.join("detached.out"), self.dir.join("detached.err"));
        let status = command_limited(120, "setpriv", &all)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .expect("run podman");
        Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        }
    }

    /// `podman run --network none [extra] IMAGE cmd...`.
    fn run(&self, extra: &[&str], cmd: &[&str]) -> Output {
        let mut a = vec!["run", "--network", "none"];
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.podman(&a)
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        ok(self.podman(&["inspect", "--format", format, id]))
            .trim()
            .to_string()
    }

    /// The runtime's state directory for a container: under the user's
    /// XDG_RUNTIME_DIR, where both runc and capsa keep it rootless.
    fn runtime_state(&self, id: &str) -> PathBuf {
        self.dir.join("xdg").join(runtime_name()).join(id)
    }

    /// The host id that an id of the containers maps to, from podman's
    /// user namespace as a container sees it (/proc/self/uid_map, gid_map).
    fn host_id(map: &str, uid: u32) -> u32 {
        for l in map.lines() {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [inner, outer, count] = f[..]
                && (inner..inner + count).contains(&uid)
            {
                return outer + (uid - inner);
            }
        }
        panic!("id {uid} is not in the map:\n{map}");
    }

    #[track_caller]
    fn assert_gone(&self, id: &str) {
        let ids = stdout(&self.podman(&["ps", "-aq", "--no-trunc"]));
        assert!(!ids.contains(id), "{id} still listed");
        assert!(
            !self.runtime_state(id).exists(),
            "the runtime still has state for {id}"
        );
        wait_for(10, &format!("conmon and cleanup of {id} to end"), || {
            pids_with_cmdline(id).is_empty().then_some(())
        });
    }
}

impl Drop for RootlessPodman {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("podman ps -a:\n{}", stdout(&self.podman(&["ps", "-a"])));
        }
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        // Then the user goes with what it still runs (conmons, the pause
        // process that holds podman's user namespace, containers), then
        // its storage (files of subordinate ids) with the Scratch.
    }
}

#[test]
fn rootless_run_exec_user_volume_keep_id_caps_stop_and_rm() {
    let p = RootlessPodman::new();
    // run --rm: output and exit status; uid 0 inside is the user outside.
    let out = p.run(
        &["--rm"],
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; \
             echo err >&2; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stderr(&out), "err\n");
    let text = stdout(&out);
    let (first, maps) = text.split_once('\n').unwrap();
    let (uid_map, gid_map) = maps.split_once("--\n").unwrap();
    assert_eq!(first, "0", "{text}");
    assert_eq!(RootlessPodman::host_id(uid_map, 0), p.uid, "{text}");
    assert_eq!(RootlessPodman::host_id(gid_map, 0), p.gid, "{text}");
    let out = p.run(&["--rm"], &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));

    // run -d, exec (status, joined namespaces), exec -t.
    let id = ok(p.run(&["-d"], &["sleep", "1000"])).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(p.inspect(&id, "{{.State.Status}}"), "running");
    assert!(
        p.runtime_state(&id).is_dir(),
        "no state under XDG_RUNTIME_DIR"
    );
    let pid: i32 = p.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uids.split_whitespace().nth(1),
        Some(p.uid.to_string().as_str()),
        "the init runs as the user on the host: {uids}"
    );
    let out = p.podman(&[
        "exec",
        &id,
        "sh",
        "-c",
        "tr '\\0' ' ' </proc/1/cmdline; echo; \
         for n in mnt uts ipc pid; do \
           [ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] && echo same-$n; \
         done; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "sleep 1000 \nsame-mnt\nsame-uts\nsame-ipc\nsame-pid\n"
    );
    let argv = p.argv(&[
        "exec",
        "-t",
        &id,
        "sh",
        "-c",
        "tty; [ -t 1 ] && echo out-is-tty; exit 5",
    ]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = run_in_pty(60, 24, 80, "setpriv", &argv);
    assert_eq!(out.code, Some(5), "{}", out.text);
    assert!(out.text.contains("/dev/pts/"), "{}", out.text);
    assert!(out.text.contains("out-is-tty"), "{}", out.text);

    // rm -f of a running container: nothing of it is left.
    ok(p.podman(&["rm", "-f", "-t", "0", &id]));
    p.assert_gone(&id);

    // --user 1000:1000 with a volume: the files carry the ids that 0 and
    // 1000 of the container map to on the host.
    let vol = p.dir.join("vol");
    std::fs::create_dir(&vol).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mount = format!("{}:/vol", vol.display());
    let out = ok(p.run(
        &["--rm", "--user", "1000:1000", "-v", &mount],
        &["sh", "-c", "id -u; id -g; touch /vol/by-1000"],
    ));
    assert_eq!(out, "1000\n1000\n");
    ok(p.run(&["--rm", "-v", &mount], &["touch", "/vol/by-root"]));
    let owner = |f: &str| {
        let m = std::fs::metadata(vol.join(f)).unwrap();
        (m.uid(), m.gid())
    };
    let mapped = (
        RootlessPodman::host_id(uid_map, 1000),
        RootlessPodman::host_id(gid_map, 1000),
    );
    assert_ne!(mapped, (1000, 1000));
    assert_eq!(owner("by-1000"), mapped);
    assert_eq!(owner("by-root"), (p.uid, p.gid));

    // --userns=keep-id: the user's own uid inside, and on the volume.
    let out = ok(p.run(
        &["--rm", "--userns=keep-id", "-v", &mount],
        &["sh", "-c", "id -u; touch /vol/by-keep-id"],
    ));
    assert_eq!(out, format!("{}\n", p.uid));
    assert_eq!(owner("by-keep-id").0, p.uid);
    // exec into it: the runtime joins the container's own user namespace
    // (nested in podman's) before its PID namespace.
    let id = ok(p.run(&["-d", "--userns=keep-id"], &["sleep", "1000"]))
        .trim()
        .to_string();
    let out = p.podman(&["exec", &id, "sh", "-c", "id -u; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", p.uid));
    ok(p.podman(&["rm", "-f", "-t", "0", &id]));
    p.assert_gone(&id);

    // --cap-drop all and no-new-privileges reach the process.
    let out = ok(p.run(
        &[
            "--rm",
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
        ],
        &[
            "grep",
            "-E",
            "^(CapEff|CapBnd|NoNewPrivs)",
            "/proc/self/status",
        ],
    ));
    let vals: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(vals, ["0000000000000000", "0000000000000000", "1"], "{out}");

    // stop: SIGTERM reaches the init, whose trap ends it with 42.
    let id = ok(p.run(
        &["-d"],
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    ))
    .trim()
    .to_string();
    wait_for(10, "the trap to be set", || {
        stdout(&p.podman(&["logs", &id]))
            .contains("ready")
            .then_some(())
    });
    ok(p.podman(&["stop", "-t", "20", &id]));
    assert_eq!(p.inspect(&id, "{{.State.ExitCode}}"), "42");
    ok(p.podman(&["rm", &id]));
    p.assert_gone(&id);

    // The runtime by hand under `podman unshare` (uid 0 of podman's user
    // namespace, the user's subordinate ids mapped): it takes the rootless
    // defaults (state under XDG_RUNTIME_DIR) by itself; run, exec, delete.
    let bundle = p.dir.join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    // (busybox_image() built it.)
    let rootfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/busybox/rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&rootfs)
        .arg(bundle.join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
    let owner = format!("{}:{}", p.uid, p.gid);
    let st = Command::new("chown")
        .args(["-R", &owner])
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(st.success());
    let rt = runtime().display().to_string();
    let b = bundle.display().to_string();
    ok(p.podman(&["unshare", &rt, "spec", "--rootless", "--bundle", &b]));
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let id = unique("unshare");
    // The container keeps the stdio it is given: files, not our pipes.
    ok(p.podman_detached(&["unshare", &rt, "run", "-d", "--bundle", &b, &id]));
    assert!(
        p.runtime_state(&id).is_dir(),
        "no state under XDG_RUNTIME_DIR"
    );
    let out = p.podman(&["unshare", &rt, "exec", &id, "sh", "-c", "id -u; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n");
    ok(p.podman(&["unshare", &rt, "delete", "--force", &id]));
    assert!(!p.runtime_state(&id).exists());
}

/// `--read-only` and `--tmpfs`: podman asks for tmpfs mounts with the
/// `tmpcopyup` option (the image's contents copied onto the tmpfs).
#[test]
fn rootless_read_only_and_tmpfs() {
    let p = RootlessPodman::new();
    let out = p.run(
        &["--rm", "--read-only"],
        &[
            "sh",
            "-c",
            "touch /x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-ok",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "tmp-ok\n");
    let out = p.run(
        &["--rm", "--tmpfs", "/data:size=1m"],
        &[
            "sh",
            "-c",
            "grep ' /data ' /proc/self/mounts; touch /data/z && echo ok",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("tmpfs /data tmpfs "), "{text}");
    assert!(text.contains("size=1024k"), "{text}");
    assert!(text.ends_with("ok\n"), "{text}");
}
