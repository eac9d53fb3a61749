//! dockerd 20.10 (Debian's docker.io) with the runtime added as `capsa`
//! (`--add-runtime`) and made the default. dockerd goes through its own
//! containerd and the runc v2 shim with BinaryName set to the runtime, so
//! this checks the path docker users take, including the `--version`
//! output dockerd parses for `docker info`. Each test starts a private
//! daemon (own data root, exec root, socket and cgroup parent, no bridge or
//! iptables) and removes it, its containerd, shims, mounts and cgroups when
//! it ends.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

const NAME: &str = "capsa";

struct Dockerd {
    dir: Scratch,
    daemon: Child,
    cgroup_parent: String,
}

impl Dockerd {
    fn start() -> Dockerd {
        require("dockerd");
        require("docker");
        let dir = Scratch::new("capsa-it-dockerd");
        let d = &dir.path;
        let cgroup_parent = unique("capsa-it-docker");
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let runtime_arg = format!("{NAME}={}", runtime().display());
        let daemon = Command::new("dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--ip-masq=false", "--userland-proxy=false"])
            .args([
                "--storage-driver",
                "overlay2",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .arg("--cgroup-parent")
            .arg(format!("/{cgroup_parent}"))
            .arg("--add-runtime")
            .arg(runtime_arg)
            .args(["--default-runtime", NAME])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let dk = Dockerd {
            dir,
            daemon,
            cgroup_parent,
        };
        wait_for(60, "dockerd to answer", || {
            dk.docker(&["version"]).status.success().then_some(())
        });
        let image = busybox_image().to_str().unwrap().to_string();
        ok(dk.docker(&["load", "-i", &image]));
        dk
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> Output {
        command_limited(90, "docker", args)
            .env("DOCKER_HOST", self.host())
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        ok(self.docker(&["inspect", "-f", format, name]))
            .trim()
            .to_string()
    }

    /// The runtime's own view of its state root under dockerd.
    fn runtime_list(&self) -> String {
        let root: PathBuf = self.dir.join(&format!("exec/runtime-{NAME}/moby"));
        if !root.exists() {
            return String::new();
        }
        let rt = runtime().display().to_string();
        ok(run_limited(
            20,
            &rt,
            &["--root", root.to_str().unwrap(), "list", "-q"],
        ))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = stdout(&self.docker(&["ps", "-aq"]));
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Its containerd and the shims carry the exec root in their
        // command lines.
        kill_matching(&self.dir.path.display().to_string());
        remove_cgroup(&self.cgroup_parent);
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("dockerd.log"))
        {
            eprintln!("dockerd.log, warnings and errors:");
            for l in log.lines().filter(|l| !l.contains("level=info")) {
                eprintln!("  {l}");
            }
        }
    }
}

#[test]
fn docker_runs_execs_updates_and_stops_containers() {
    let dk = Dockerd::start();

    // dockerd ran `RUNTIME --version` and parsed its `commit:` line.
    let info = ok(dk.docker(&["info", "--format", "{{json .Runtimes}} {{.RuncCommit.ID}}"]));
    assert!(info.contains(&format!("\"{NAME}\"")), "{info}");
    let version = ok(run_limited(10, runtime().to_str().unwrap(), &["--version"]));
    let commit = version
        .lines()
        .find_map(|l| l.strip_prefix("commit: "))
        .expect("--version prints a commit: line");
    assert!(info.trim().ends_with(commit), "{info} vs {version}");

    // Foreground run: output, PID 1, docker's default capabilities, status.
    let out = dk.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE_NAME,
        "sh",
        "-c",
        "echo pid=$$; grep CapEff /proc/self/status; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("pid=1\n"), "{text}");
    // docker's default set: chown dac_override fowner fsetid kill setgid
    // setuid setpcap net_bind_service net_raw sys_chroot mknod
    // audit_write setfcap.
    assert!(text.contains("CapEff:\t00000000a80425fb"), "{text}");

    // Detached with limits, a TERM trap, then exec, top, pause, update.
    let id = ok(dk.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        IMAGE_NAME,
        "sh",
        "-c",
        "trap 'exit 9' TERM; while :; do sleep 0.1; done",
    ]))
    .trim()
    .to_string();
    let pid: i32 = dk.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0);
    let cg = cgroup_of(pid, "memory").expect("memory cgroup");
    assert_eq!(cg, format!("/{}/{}", dk.cgroup_parent, id));
    let mem = |cg: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(mem(&cg), "67108864");
    let pids_max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{cg}/pids.max")).unwrap();
    assert_eq!(pids_max.trim(), "20");

    let out = dk.docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep memory /proc/self/cgroup; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.starts_with("pid=1\n"), "{text}");
    assert!(text.contains("sh -c trap"), "{text}");
    assert!(text.trim_end().ends_with(&cg), "{text}");

    // docker top lists the pids the runtime's `ps` reports.
    let top = ok(dk.docker(&["top", &id, "-o", "pid,args"]));
    assert!(
        top.lines()
            .any(|l| l.trim_start().starts_with(&pid.to_string())),
        "{top}"
    );

    ok(dk.docker(&["pause", &id]));
    assert_eq!(dk.inspect(&id, "{{.State.Paused}}"), "true");
    let freezer = format!("/sys/fs/cgroup/freezer{cg}/freezer.state");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    ok(dk.docker(&["unpause", &id]));
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");

    // docker update goes through the runtime's `update --resources -`.
    ok(dk.docker(&["update", "--memory", "128m", "--memory-swap", "256m", &id]));
    assert_eq!(mem(&cg), "134217728");

    // exec -t gets a terminal.
    let out = run_in_pty(
        90,
        24,
        80,
        "env",
        &[
            &format!("DOCKER_HOST={}", dk.host()),
            "docker",
            "exec",
            "-t",
            &id,
            "sh",
            "-c",
            "tty; [ -t 0 ] && echo in-is-tty",
        ],
    );
    assert!(out.text.contains("/dev/pts/"), "{}", out.text);
    assert!(out.text.contains("in-is-tty"), "{}", out.text);
    assert_eq!(out.code, Some(0), "{}", out.text);

    // stop sends SIGTERM to the init; the trap's status is recorded.
    ok(dk.docker(&["stop", "-t", "30", &id]));
    assert_eq!(dk.inspect(&id, "{{.State.ExitCode}}"), "9");
    ok(dk.docker(&["rm", &id]));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(dk.runtime_list().trim(), "", "runtime state left behind");
    assert!(
        !cgroup_exists(cg.trim_start_matches('/')),
        "the container's cgroup was not removed"
    );
}

#[test]
fn docker_maps_runtime_errors_to_exit_codes() {
    let dk = Dockerd::start();
    let out = dk.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE_NAME,
        "no-such-cmd",
    ]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    let out = dk.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE_NAME,
        "/etc/passwd",
    ]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // A container killed by a signal reports 128+N (pid 1 cannot be
    // killed from inside its namespace, so docker kill does it).
    let id = ok(dk.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        IMAGE_NAME,
        "sleep",
        "1000",
    ]));
    let id = id.trim();
    ok(dk.docker(&["kill", id]));
    assert_eq!(ok(dk.docker(&["wait", id])).trim(), "137");
    ok(dk.docker(&["rm", id]));
    assert_eq!(stdout(&dk.docker(&["ps", "-aq"])).trim(), "");
    assert_eq!(dk.runtime_list().trim(), "");
}
