//! containerd 1.6 (Debian's) driving the runtime through its runc v2 shim
//! (`containerd-shim-runc-v2`), the way Kubernetes and docker reach a
//! runc-compatible runtime. Each test starts a private containerd (own root,
//! state and socket, CRI plugin off), imports the busybox image built
//! offline by scripts/make-image.sh, and uses `ctr` with `--runc-binary`
//! pointed at the runtime. Everything is observed through the client and
//! from inside the containers; the daemon, its shims, mounts and cgroups are
//! removed when the test ends, pass or fail.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

const IMAGE: &str = "docker.io/library/busybox:capsa";

/// Prints the terminal's rows and columns once they are set: ctr resizes
/// the console through the shim only after the process started, so the
/// first look may see 0x0 (busybox's stty then prints an error, exit 0).
const STTY_SIZE: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size 2>&1); \
    case $s in [1-9]*) echo $s; break;; esac; sleep 0.2; done";

/// A private containerd and one ctr namespace.
struct Containerd {
    dir: Scratch,
    daemon: Child,
    ns: String,
}

impl Containerd {
    fn start() -> Containerd {
        require("containerd");
        require("ctr");
        require("containerd-shim-runc-v2");
        let dir = Scratch::new("capsa-it-ctd");
        let d = &dir.path;
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let daemon = spawn_logged(
            Command::new("containerd")
                .arg("--config")
                .arg(d.join("config.toml")),
            &d.join("containerd.log"),
        );
        let c = Containerd {
            dir,
            daemon,
            ns: unique("capsa"),
        };
        wait_for(20, "containerd to answer", || {
            c.ctr(&["version"]).status.success().then_some(())
        });
        let image = busybox_image().to_str().unwrap().to_string();
        ok(c.ctr(&["images", "import", &image]));
        c
    }

    fn address(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The runtime's state root for this namespace (`--runc-root`).
    fn runtime_root(&self) -> PathBuf {
        self.dir.join("runtime-root")
    }

    fn base_args(&self) -> Vec<String> {
        vec![
            "-a".into(),
            self.address().display().to_string(),
            "-n".into(),
            self.ns.clone(),
        ]
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let base = self.base_args();
        let mut all: Vec<&str> = base.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        run_limited(60, "ctr", &all)
    }

    /// `ctr run` arguments that select the runtime under test.
    fn run_args(&self) -> Vec<String> {
        vec![
            "run".into(),
            "--runc-binary".into(),
            runtime().display().to_string(),
            "--runc-root".into(),
            self.runtime_root().display().to_string(),
        ]
    }

    /// `ctr run [extra] IMAGE ID cmd...`, waiting for the container to end.
    fn run(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Output {
        let mut args: Vec<String> = self.run_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.push(id.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr(&args)
    }

    /// The task's host pid and status from `ctr task ls`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let out = stdout(&self.ctr(&["task", "ls"]));
        out.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    fn wait_status(&self, id: &str, want: &str) -> i32 {
        wait_for(20, &format!("task {id} to be {want}"), || {
            self.task(id).filter(|(_, s)| s == want).map(|(p, _)| p)
        })
    }

    /// Ids of the runtime's containers in this namespace's root, read the
    /// way containerd does not: by asking the runtime itself.
    fn runtime_list(&self) -> String {
        let root = self.runtime_root().display().to_string();
        let rt = runtime().display().to_string();
        ok(run_limited(20, &rt, &["--root", &root, "list", "-q"]))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = stdout(&self.ctr(&["task", "ls", "-q"]));
        for t in tasks.lines().filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["task", "kill", "-a", "-s", "9", t]);
            let _ = self.ctr(&["task", "delete", "-f", t]);
        }
        let containers = stdout(&self.ctr(&["containers", "ls", "-q"]));
        for c in containers.lines().filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["containers", "delete", c]);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Shims outlive the daemon; they carry the daemon's address.
        kill_matching(&self.address().display().to_string());
        remove_cgroup(&self.ns);
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("containerd.log"))
        {
            // Only the daemon's own complaints; its info lines drown them.
            eprintln!("containerd.log, warnings and errors:");
            for l in log.lines().filter(|l| !l.contains("level=info")) {
                eprintln!("  {l}");
            }
        }
    }
}

#[test]
fn run_passes_output_stdin_and_exit_status() {
    let c = Containerd::start();
    let id = unique("run");
    let out = c.run(
        &["--rm"],
        &id,
        &["sh", "-c", "echo pid=$$; echo err >&2; exit 7"],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text, "pid=1\n");
    assert!(stderr(&out).contains("err"), "stderr: {}", stderr(&out));

    // ctr run attaches its stdin: it arrives through the shim's fifo.
    let id2 = unique("stdin");
    let mut args = vec!["-a".to_string(), c.address().display().to_string()];
    args.extend(["-n".into(), c.ns.clone()]);
    args.extend(c.run_args());
    args.extend(["--rm".into(), IMAGE.into(), id2.clone()]);
    args.extend(["sh".into(), "-c".into(), "read line; echo got=$line".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = command_limited(60, "ctr", &args)
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
        .write_all(b"over the fifo\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "got=over the fifo\n");
    assert!(c.task(&id).is_none() && c.task(&id2).is_none());
    assert_eq!(
        c.runtime_list().trim(),
        "",
        "--rm left runtime state behind"
    );
}

#[test]
fn detached_task_exec_ps_pause_resume_kill_delete() {
    let c = Containerd::start();
    let id = unique("det");
    ok(c.run(&["-d"], &id, &["sleep", "1000"]));
    let pid = c.wait_status(&id, "RUNNING");
    assert!(pid > 0);
    // The init sits in the container's own cgroup, named by containerd.
    let cg = cgroup_of(pid, "pids").expect("init's pids cgroup");
    assert_eq!(cg, format!("/{}/{}", c.ns, id));

    // exec joins the init's namespaces (pid 1 is the init's sleep) and
    // its cgroup.
    let out = ok(c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "look",
        &id,
        "sh",
        "-c",
        "echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '; echo; \
         for n in mnt uts ipc net pid; do \
           [ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] && echo same-$n; \
         done; grep pids /proc/self/cgroup",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("pid=") && lines[0] != "pid=1", "{out}");
    assert_eq!(lines[1].trim(), "sleep 1000", "{out}");
    assert_eq!(
        &lines[2..7],
        ["same-mnt", "same-uts", "same-ipc", "same-net", "same-pid"],
        "{out}"
    );
    assert!(lines[7].ends_with(&format!(":/{}/{}", c.ns, id)), "{out}");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let init_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_ne!(
        host_mnt, init_mnt,
        "the container has its own mount namespace"
    );

    // exec's exit status comes back through the shim.
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "code",
        &id,
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // A detached exec shows in `task ps` (the runtime's `ps --format json`).
    ok(c.ctr(&["task", "exec", "-d", "--exec-id", "bg", &id, "sleep", "999"]));
    let pids = wait_for(10, "two processes in task ps", || {
        let out = stdout(&c.ctr(&["task", "ps", &id]));
        let pids: Vec<i32> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        (pids.len() == 2).then_some(pids)
    });
    assert!(pids.contains(&pid), "{pids:?}");
    let other = *pids.iter().find(|p| **p != pid).unwrap();
    let cmd = std::fs::read_to_string(format!("/proc/{other}/cmdline")).unwrap();
    assert_eq!(cmd, "sleep\0999\0");

    // pause freezes the cgroup; resume thaws it.
    ok(c.ctr(&["task", "pause", &id]));
    c.wait_status(&id, "PAUSED");
    let freezer = format!("/sys/fs/cgroup/freezer/{}/{}/freezer.state", c.ns, id);
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(st.contains(") S ") || st.contains(") D "), "{st}");
    ok(c.ctr(&["task", "resume", &id]));
    c.wait_status(&id, "RUNNING");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");

    // SIGKILL to every process (kill --all), then the task is STOPPED.
    ok(c.ctr(&["task", "kill", "-a", "-s", "9", &id]));
    c.wait_status(&id, "STOPPED");
    assert!(!std::path::Path::new(&format!("/proc/{other}")).exists());
    let out = ok(c.ctr(&["task", "delete", &id]));
    assert!(out.contains("137") || out.is_empty(), "{out}");
    ok(c.ctr(&["containers", "delete", &id]));
    assert!(c.task(&id).is_none());
    assert_eq!(c.runtime_list().trim(), "", "runtime state left behind");
    assert!(
        !cgroup_exists(&format!("{}/{}", c.ns, id)),
        "the container's cgroup was not removed"
    );
}

#[test]
fn sigterm_from_task_kill_reaches_the_init() {
    let c = Containerd::start();
    let id = unique("term");
    let mut args = c.base_args();
    args.extend(c.run_args());
    args.extend([IMAGE.into(), id.clone(), "sh".into(), "-c".into()]);
    args.push("trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.1; done".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fg = command_limited(60, "ctr", &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.wait_status(&id, "RUNNING");
    // The trap is set once "ready" is printed; the sleep loop keeps going.
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok(c.ctr(&["task", "kill", &id]));
    let out = fg.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert!(stdout(&out).contains("got TERM"), "{}", stdout(&out));
    // The foreground ctr deleted the task itself.
    ok(c.ctr(&["containers", "delete", &id]));
}

#[test]
fn memory_limit_lands_in_the_containers_cgroup_and_metrics() {
    let c = Containerd::start();
    let id = unique("mem");
    ok(c.run(
        &["-d", "--memory-limit", "67108864"],
        &id,
        &["sleep", "1000"],
    ));
    let pid = c.wait_status(&id, "RUNNING");
    let cg = cgroup_of(pid, "memory").expect("memory cgroup");
    let limit = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"))
        .unwrap();
    assert_eq!(limit.trim(), "67108864");
    // Seen from inside: the process's memory cgroup is that one.
    let inside = ok(c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "cg",
        &id,
        "grep",
        "memory",
        "/proc/self/cgroup",
    ]));
    assert!(inside.trim().ends_with(&cg), "{inside} vs {cg}");
    // The shim reads stats from the cgroup the runtime made.
    let metrics = ok(c.ctr(&["task", "metrics", &id]));
    let line = metrics
        .lines()
        .find(|l| l.starts_with("memory.limit_in_bytes"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.contains("67108864"), "{metrics}");
    let pids = metrics
        .lines()
        .find(|l| l.starts_with("pids.current"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(pids.split_whitespace().nth(1) == Some("1"), "{metrics}");
    ok(c.ctr(&["task", "kill", "-s", "9", &id]));
    c.wait_status(&id, "STOPPED");
    ok(c.ctr(&["task", "delete", &id]));
    ok(c.ctr(&["containers", "delete", &id]));
}

#[test]
fn terminals_for_run_and_exec() {
    let c = Containerd::start();
    let id = unique("tty");
    let mut args = c.run_args();
    args.extend(["--rm".into(), "-t".into(), IMAGE.into(), id.clone()]);
    args.extend([
        "sh".into(),
        "-c".into(),
        format!("tty; [ -t 0 ] && echo stdin-is-tty; {STTY_SIZE}"),
    ]);
    let mut all = c.base_args();
    all.extend(args);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = run_in_pty(60, 33, 91, "ctr", &all);
    let text = &out.text;
    assert_eq!(out.code, Some(0), "{text}");
    assert!(text.contains("/dev/pts/0\n"), "{text}");
    assert!(text.contains("stdin-is-tty"), "{text}");
    assert!(text.contains("33 91"), "console size not passed: {text}");

    // exec -t into a detached container gets its own pty.
    let id2 = unique("ttyexec");
    ok(c.run(&["-d"], &id2, &["sleep", "1000"]));
    c.wait_status(&id2, "RUNNING");
    let mut all = c.base_args();
    all.extend(["task", "exec", "-t", "--exec-id", "t", &id2, "sh", "-c"].map(String::from));
    all.push(format!(
        "tty; [ -t 1 ] && echo out-is-tty; {STTY_SIZE}; exit 5"
    ));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = run_in_pty(60, 20, 70, "ctr", &all);
    let text = &out.text;
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("out-is-tty"), "{text}");
    assert!(text.contains("20 70"), "console size not passed: {text}");
    assert_eq!(out.code, Some(5), "{text}");
    ok(c.ctr(&["task", "kill", "-s", "9", &id2]));
    c.wait_status(&id2, "STOPPED");
    ok(c.ctr(&["task", "delete", &id2]));
    ok(c.ctr(&["containers", "delete", &id2]));
}

#[test]
fn runtime_errors_reach_the_client() {
    let c = Containerd::start();
    let id = unique("enoent");
    // The shim reads the runtime's log.json and reports its last error.
    let out = c.run(&["--rm"], &id, &["/no/such/binary"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no such file or directory") || err.contains("executable file not found"),
        "{err}"
    );
    let id2 = unique("notinpath");
    let out = c.run(&["--rm"], &id2, &["no-such-command"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    // Nothing was left for either: no runtime state, no cgroup.
    let _ = c.ctr(&["containers", "delete", &id]);
    let _ = c.ctr(&["containers", "delete", &id2]);
    assert_eq!(c.runtime_list().trim(), "");
    assert!(!cgroup_exists(&format!("{}/{}", c.ns, id)));
    assert!(!cgroup_exists(&format!("{}/{}", c.ns, id2)));
}
