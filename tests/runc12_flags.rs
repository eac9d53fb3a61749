//! The flags runc 1.2 added that current clients send: `--pidfd-socket` on
//! create/run/exec, `exec --cgroup`, `exec --ignore-paused`, `run
//! --no-subreaper`.

mod common;
use common::*;
use serde_json::Value;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn sleeper(ctx: &Ctx) -> Value {
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    c
}

/// Listens on `path` and, on a thread, receives the one fd a client
/// sends; then whether the connection ended (no process kept it open).
fn pidfd_receiver(path: &Path) -> std::thread::JoinHandle<Option<(OwnedFd, bool)>> {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = l.accept().ok()?;
        let fd = capsa::tty::recv_fd(conn.as_fd()).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let ended = matches!(std::io::Read::read(&mut conn, &mut [0u8; 16]), Ok(0));
        Some((fd, ended))
    })
}

/// The pid a pidfd refers to, from /proc/self/fdinfo.
fn pidfd_pid(fd: &OwnedFd) -> i64 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    status_field(&info, "Pid").parse().unwrap()
}

fn pidfd_signal(fd: &OwnedFd, sig: i32) -> i64 {
    // SAFETY: a valid pidfd, a signal, no siginfo, no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    }
}

#[test]
fn create_and_exec_send_a_pidfd_of_their_process() {
    let ctx = Ctx::new("pidfd");
    let id = ctx.id("c");
    ctx.write_config(&sleeper(&ctx));
    let sock = ctx.dir.join("pidfd.sock");
    let rx = pidfd_receiver(&sock);
    assert_ok(&ctx.capsa(&[
        "create",
        "--pidfd-socket",
        sock.to_str().unwrap(),
        "--bundle",
        ctx.bundle_str(),
        &id,
    ]));
    let (fd, ended) = rx.join().unwrap().expect("a pidfd arrived");
    // The waiting init did not inherit the connection.
    assert!(ended, "the connection stayed open after create");
    let init = ctx.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(pidfd_pid(&fd), init);
    assert_ok(&ctx.capsa(&["start", &id]));

    // exec: the pidfd is the new process's (its --pid-file pid).
    let sock2 = ctx.dir.join("pidfd2.sock");
    let rx = pidfd_receiver(&sock2);
    let pid_file = ctx.dir.join("exec.pid");
    assert_ok(&ctx.capsa(&[
        "exec",
        "-d",
        "--pidfd-socket",
        sock2.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "50",
    ]));
    let (efd, _) = rx.join().unwrap().expect("a pidfd arrived");
    let epid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pidfd_pid(&efd), epid);
    assert_ne!(epid, init);
    // The pidfd works: SIGKILL through it stops the container.
    assert_eq!(pidfd_signal(&fd, libc::SIGKILL), 0);
    ctx.wait_status(&id, "stopped");

    // A socket nobody listens on: a clear error, and nothing left behind.
    let id2 = ctx.id("bad");
    let out = ctx.capsa(&[
        "run",
        "-d",
        "--pidfd-socket",
        ctx.dir.join("nobody.sock").to_str().unwrap(),
        "--bundle",
        ctx.bundle_str(),
        &id2,
    ]);
    assert_fails_with(&out, "--pidfd-socket");
    assert!(!ctx.root.join(&id2).exists());
}

#[test]
fn exec_ignore_paused_runs_once_resumed() {
    let ctx = Ctx::new("ignpaused");
    let id = ctx.id("c");
    ctx.write_config(&sleeper(&ctx));
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    assert_ok(&ctx.capsa(&["pause", &id]));
    let out = ctx.capsa(&["exec", &id, "true"]);
    assert_fails_with(
        &out,
        "cannot exec in a paused container (use --ignore-paused to override)",
    );
    assert_eq!(out.status.code(), Some(255));
    // With --ignore-paused the exec goes in, and its process runs (and
    // prints) only once the container is thawed.
    let out_path = ctx.dir.join("exec.out");
    let mut child = ctx
        .cmd(&["exec", "--ignore-paused", &id, "echo", "ran"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let early = child.try_wait().unwrap();
    let printed = std::fs::read_to_string(&out_path).unwrap();
    assert_ok(&ctx.capsa(&["resume", &id]));
    let st = child.wait().unwrap();
    assert!(early.is_none(), "exec ended while paused: {early:?}");
    assert_eq!(printed, "", "ran while the container was paused");
    assert!(st.success());
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "ran\n");
}

/// The container's cgroup directories, from its state.
fn cgroup_paths(ctx: &Ctx, id: &str) -> (String, Vec<(String, PathBuf)>) {
    let st: Value =
        serde_json::from_slice(&std::fs::read(ctx.root.join(id).join("state.json")).unwrap())
            .unwrap();
    let version = st["cgroup"]["version"].as_str().unwrap().to_string();
    let paths = st["cgroup"]["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), PathBuf::from(v.as_str().unwrap())))
        .collect();
    (version, paths)
}

/// Sub-cgroups the test made, removed even when it fails.
struct SubCgroups(Vec<PathBuf>);

impl SubCgroups {
    fn make(&mut self, dir: &Path) {
        if self.0.iter().any(|d| d == dir) {
            return;
        }
        std::fs::create_dir(dir).unwrap();
        self.0.push(dir.to_path_buf());
        // A v1 cpuset cgroup starts with no CPUs or memory nodes.
        let parent = dir.parent().unwrap();
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if parent.join(f).exists() && !parent.join("cgroup.controllers").exists() {
                let v = std::fs::read_to_string(parent.join(f)).unwrap();
                std::fs::write(dir.join(f), v.trim()).unwrap();
            }
        }
    }
}

impl Drop for SubCgroups {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The cgroup path of each hierarchy in `cat /proc/self/cgroup` output
/// (seen through the container's cgroup namespace).
fn lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ':').collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
fn exec_cgroup_runs_the_process_in_a_sub_cgroup() {
    let ctx = Ctx::new("execcg");
    let id = ctx.id("c");
    ctx.write_config(&sleeper(&ctx));
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let (version, paths) = cgroup_paths(&ctx, &id);
    let mut subs = SubCgroups(Vec::new());
    for (_, d) in &paths {
        subs.make(&d.join("sub"));
    }
    // A path alone: every hierarchy.
    let out = ctx.capsa(&["exec", "--cgroup", "sub", &id, "cat", "/proc/self/cgroup"]);
    assert_ok(&out);
    let seen = lines(&stdout(&out));
    assert!(!seen.is_empty());
    for (h, p) in &seen {
        assert_eq!(p, "/sub", "hierarchy {h:?}: {}", stdout(&out));
    }
    // Without --cgroup: the container's own.
    let out = ctx.capsa(&["exec", &id, "cat", "/proc/self/cgroup"]);
    for (h, p) in lines(&stdout(&out)) {
        assert_eq!(p, "/", "hierarchy {h:?}");
    }
    if version == "v1" {
        // controller:path moves that hierarchy only.
        let (_, mem) = paths.iter().find(|(k, _)| k == "memory").unwrap();
        subs.make(&mem.join("only"));
        let out = ctx.capsa(&[
            "exec",
            "--cgroup",
            "memory:only",
            &id,
            "cat",
            "/proc/self/cgroup",
        ]);
        assert_ok(&out);
        for (h, p) in lines(&stdout(&out)) {
            let want = if h.split(',').any(|c| c == "memory") {
                "/only"
            } else {
                "/"
            };
            assert_eq!(p, want, "hierarchy {h:?}");
        }
        let out = ctx.capsa(&["exec", "--cgroup", "nosuchctl:sub", &id, "true"]);
        assert_fails_with(&out, "nosuchctl");
        let out = ctx.capsa(&[
            "exec",
            "--cgroup",
            "memory:only",
            "--cgroup",
            "pids,memory:sub",
            &id,
            "true",
        ]);
        assert_fails_with(&out, "controller \"memory\" given more than once");
    } else {
        let out = ctx.capsa(&["exec", "--cgroup", "memory:sub", &id, "true"]);
        assert_fails_with(&out, "cgroup v2");
    }
    // Nothing outside the container's cgroup, nothing that is not there.
    for bad in ["../..", "sub/../..", "/", "sub/../../x"] {
        let out = ctx.capsa(&["exec", "--cgroup", bad, &id, "true"]);
        assert_fails_with(&out, "--cgroup");
        assert_eq!(out.status.code(), Some(255));
    }
    let out = ctx.capsa(&["exec", "--cgroup", "nosuch", &id, "true"]);
    assert_fails_with(&out, "nosuch");
    let out = ctx.capsa(&["exec", "--cgroup", ":sub", &id, "true"]);
    assert_fails_with(&out, "empty controller name");
    let out = ctx.capsa(&["exec", "--cgroup", "sub", "--cgroup", "sub", &id, "true"]);
    assert_fails_with(&out, "must be the only --cgroup");
    // The exec'd processes are gone: the sub-cgroups can go before delete.
    drop(subs);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    for (_, d) in &paths {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// `run --no-subreaper`: capsa's foreground run is no child subreaper, so
/// an orphan of a container without its own PID namespace is not
/// reparented to it.
#[test]
fn run_no_subreaper() {
    let ctx = Ctx::new("nosubreaper");
    let mut c = ctx.sh_config(
        "o=$(sh -c 'sleep 30 >/dev/null 2>&1 & echo $!'); sleep 0.2; \
         echo capsa=$PPID; grep PPid /proc/$o/status; kill $o",
    );
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = ctx.capsa(&["run", "--no-subreaper", "--bundle", ctx.bundle_str(), &id]);
    assert_ok(&out);
    let text = stdout(&out);
    let capsa_pid = text
        .lines()
        .find_map(|l| l.strip_prefix("capsa="))
        .unwrap()
        .to_string();
    let ppid = status_field(&text, "PPid");
    assert_ne!(ppid, capsa_pid, "{text}");
}
