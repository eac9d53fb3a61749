//! exec, terminals (console socket and capsa's own relay), and the six
//! hook kinds, observed from real containers.

mod common;
use common::*;
use serde_json::json;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

fn start_sleeper(ctx: &Ctx, id: &str) -> i64 {
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["hostname"] = "sleeper".into();
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), id]));
    ctx.state(id)["pid"].as_i64().unwrap()
}

#[test]
fn exec_joins_the_container_and_passes_exit_status() {
    let ctx = Ctx::new("exec");
    let id = ctx.id("c");
    let init = start_sleeper(&ctx, &id);
    let out = ctx.capsa(&[
        "exec", &id, "sh", "-c",
        "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep CapEff /proc/self/status; \
         for n in pid net mnt uts ipc; do readlink /proc/self/ns/$n; done; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_ne!(lines[0], "1");
    assert_eq!(lines[1], "sleeper");
    assert_eq!(lines[2], "sleep 100 ");
    assert_eq!(
        lines[3],
        format!("CapEff:\t{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10))
    );
    for (l, n) in lines[4..].iter().zip(["pid", "net", "mnt", "uts", "ipc"]) {
        let want = std::fs::read_link(format!("/proc/{init}/ns/{n}")).unwrap();
        assert_eq!(*l, want.to_str().unwrap());
    }

    // flags override the container's process
    let out = ctx.capsa(&[
        "exec",
        "--user",
        "1000:1000",
        "--additional-gids",
        "5",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--cap",
        "CAP_CHOWN",
        &id,
        "sh",
        "-c",
        "id; echo $FOO; pwd; grep CapBnd /proc/self/status",
    ]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!(
            "uid=1000(user) gid=1000(user) groups=5(tty)\nbar\n/tmp\nCapBnd:\t{:016x}\n",
            (1u64 << 29) | (1 << 5) | (1 << 10) | 1
        )
    );

    // --process JSON
    let pj = ctx.dir.join("process.json");
    std::fs::write(
        &pj,
        json!({"args": ["sh", "-c", "echo from-json $X; exit 2"], "env": ["X=y", "PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}})
            .to_string(),
    )
    .unwrap();
    let out = ctx.capsa(&["exec", "--process", pj.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "from-json y\n");

    // detached with a pid file: the process runs in the container
    let pf = ctx.dir.join("exec.pid");
    assert_ok(&ctx.capsa(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "50",
    ]));
    let pid: i64 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_eq!(
        ns,
        std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );

    assert_fails_with(
        &ctx.capsa(&["exec", &id, "nosuch"]),
        "executable file not found in $PATH",
    );
    assert_fails_with(
        &ctx.capsa(&["exec", "--apparmor", "p", &id, "true"]),
        "AppArmor is not enabled",
    );
    assert_ok(&ctx.capsa(&["kill", &id, "KILL"]));
    ctx.wait_status(&id, "stopped");
    assert_fails_with(
        &ctx.capsa(&["exec", &id, "true"]),
        "cannot exec in a stopped container",
    );
    assert_fails_with(&ctx.capsa(&["exec", "nope", "true"]), "does not exist");
}

/// exec --process applies the process's oomScoreAdj (containerd's shim
/// passes the container's, which Kubernetes sets per QoS class, to every
/// probe and `kubectl exec`); without one the process keeps capsa's.
#[test]
fn exec_applies_the_process_oom_score_adj() {
    let ctx = Ctx::new("execoom");
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["process"]["oomScoreAdj"] = 800.into();
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let mine = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    let pj = ctx.dir.join("process.json");
    let exec_with = |adj: Option<i32>| {
        let mut p = json!({"args": ["cat", "/proc/self/oom_score_adj"], "env": ["PATH=/bin"],
            "cwd": "/", "user": {"uid": 0, "gid": 0}});
        if let Some(a) = adj {
            p["oomScoreAdj"] = a.into();
        }
        std::fs::write(&pj, p.to_string()).unwrap();
        let out = ctx.capsa(&["exec", "--process", pj.to_str().unwrap(), &id]);
        assert_ok(&out);
        stdout(&out)
    };
    assert_eq!(exec_with(Some(900)), "900\n");
    assert_eq!(exec_with(None), mine);
    // The init got the config's.
    let out = ctx.capsa(&["exec", &id, "cat", "/proc/1/oom_score_adj"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "800\n");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// Accepts one connection on a console socket and returns the fd sent
/// with SCM_RIGHTS.
fn receive_console(listener: &UnixListener) -> OwnedFd {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS just installed this fd in our table and
            // nothing else owns it.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}

fn read_until(master: &OwnedFd, needle: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 1024];
    for _ in 0..200 {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16)).unwrap() > 0 {
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        if got.contains(needle) {
            return got;
        }
    }
    panic!("{needle:?} not read from the pty; got {got:?}");
}

#[test]
fn console_socket_receives_a_working_pty() {
    let ctx = Ctx::new("console");
    let mut c =
        ctx.sh_config("stty size; tty; ls -l /dev/console | cut -c1; read x; echo \"got:$x\"");
    c["process"]["terminal"] = true.into();
    c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    ctx.write_config(&c);
    let sock = ctx.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = ctx.id("c");
    let server = std::thread::spawn(move || receive_console(&listener));
    assert_ok(&ctx.capsa(&[
        "create",
        "--bundle",
        ctx.bundle_str(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]));
    let master = server.join().unwrap();
    assert_ok(&ctx.capsa(&["start", &id]));
    let out = read_until(&master, "c\r\n");
    assert!(out.contains("33 101\r\n/dev/pts/0\r\nc\r\n"), "{out:?}");
    nix::unistd::write(&master, b"typed\n").unwrap();
    let out = read_until(&master, "got:typed");
    assert!(out.contains("got:typed"), "{out:?}");
    ctx.wait_status(&id, "stopped");
    assert_ok(&ctx.capsa(&["delete", &id]));

    // a terminal without a console socket cannot be handed to anyone
    assert_fails_with(
        &ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &ctx.id("nosock")]),
        "--console-socket",
    );
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn run_at_a_terminal_relays_the_pty() {
    let ctx = Ctx::new("relay");
    let mut c = ctx.sh_config("tty; read x; echo \"got:$x\"; exit 6");
    c["process"]["terminal"] = true.into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    // `script` gives capsa a real terminal as its stdin/stdout.
    let cmd = format!(
        "{CAPSA} --root {} run --bundle {} {id}",
        ctx.root.display(),
        ctx.bundle_str()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (bsdutils) is installed");
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    stdin.write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out).replace('\r', "");
    assert!(text.contains("/dev/pts/0\n"), "{text:?}");
    assert!(text.contains("got:hello\n"), "{text:?}");
    assert_eq!(out.status.code(), Some(6), "{text:?}");
}

fn hook(path: &str, script: &str) -> serde_json::Value {
    json!({"path": path, "args": ["sh", "-c", script]})
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let ctx = Ctx::new("hooks");
    let log = ctx.dir.join("hooklog");
    std::fs::create_dir_all(&log).unwrap();
    let l = log.display().to_string();
    // Runtime-namespace hooks write to the host path; startContainer runs
    // inside the container and writes through a bind mount of it.
    let record =
        |kind: &str, dir: &str| format!("cat > {dir}/{kind}.json; echo {kind} >> {dir}/order");
    let mut c = ctx.sh_config("echo process >> /hooklog/order");
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/hooklog", "type": "bind", "source": l, "options": ["bind"]}));
    c["annotations"] = json!({"k": "v"});
    c["hooks"] = json!({
        "prestart": [hook("/bin/sh", &record("prestart", &l))],
        "createRuntime": [
            hook("/bin/sh", &record("createRuntime", &l)),
            // Where the init is by now: in the container's cgroups.
            hook("/bin/sh", &format!(
                "pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); \
                 cat /proc/$pid/cgroup > {l}/cgroup.createRuntime"
            ))
        ],
        "createContainer": [
            hook("/bin/sh", &record("createContainer", &l)),
            hook("/bin/sh", &format!("cat /proc/self/cgroup > {l}/cgroup.createContainer"))
        ],
        "startContainer": [hook("/bin/sh", &record("startContainer", "/hooklog"))],
        "poststart": [hook("/bin/sh", &record("poststart", &l))],
        "poststop": [hook("/bin/sh", &record("poststop", &l))]
    });
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let order = || std::fs::read_to_string(log.join("order")).unwrap_or_default();
    assert_eq!(order(), "prestart\ncreateRuntime\ncreateContainer\n");
    assert_ok(&ctx.capsa(&["start", &id]));
    ctx.wait_status(&id, "stopped");
    assert_ok(&ctx.capsa(&["delete", &id]));
    let o = order();
    assert!(
        o == "prestart\ncreateRuntime\ncreateContainer\nstartContainer\nprocess\npoststart\npoststop\n"
            || o == "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\nprocess\npoststop\n",
        "{o}"
    );
    let state = |k: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(log.join(format!("{k}.json"))).unwrap()).unwrap()
    };
    for k in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let s = state(k);
        assert_eq!(s["id"], id.as_str(), "{k}: {s}");
        assert_eq!(s["annotations"]["k"], "v", "{k}: {s}");
        assert!(s["ociVersion"].is_string());
    }
    assert_eq!(state("prestart")["status"], "created");
    assert_eq!(state("createRuntime")["status"], "creating");
    assert_eq!(state("poststart")["status"], "running");
    assert_eq!(state("poststop")["status"], "stopped");
    assert_eq!(state("createRuntime")["bundle"], ctx.bundle_str());
    // The init was in every cgroup of the container when the hooks ran,
    // and so were the ones run in the container (whose cgroup namespace
    // is rooted there).
    let cgroups = |k: &str| std::fs::read_to_string(log.join(format!("cgroup.{k}"))).unwrap();
    let init = cgroups("createRuntime");
    assert!(init.lines().count() > 1, "{init}");
    for line in init.lines() {
        assert!(
            line.ends_with(&format!("/{id}")),
            "createRuntime: {line}\n{init}"
        );
    }
    let inside = cgroups("createContainer");
    assert!(inside.lines().count() > 1, "{inside}");
    for line in inside.lines() {
        assert!(line.ends_with(":/"), "createContainer: {line}\n{inside}");
    }
}

#[test]
fn failing_hooks() {
    let ctx = Ctx::new("hookfail");
    let marker = ctx.dir.join("poststop-ran");
    // A failing createRuntime hook aborts create and leaves nothing behind
    // (poststop still runs, as on delete).
    let mut c = ctx.sh_config("true");
    c["hooks"] = json!({
        "createRuntime": [hook("/bin/sh", "exit 3")],
        "poststop": [hook("/bin/sh", &format!("touch {}", marker.display()))]
    });
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "hooks.createRuntime[0] (/bin/sh): failed");
    assert!(ctx.state_entries().is_empty());
    assert!(marker.exists());

    // A hook over its timeout is killed and counts as failed.
    let mut c = ctx.sh_config("true");
    c["hooks"] =
        json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    ctx.write_config(&c);
    let t0 = std::time::Instant::now();
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "timed out after 1s");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    assert!(ctx.state_entries().is_empty());

    // A failing poststart hook is only a warning: the container runs on.
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["hooks"] = json!({"poststart": [hook("/bin/sh", "exit 1")]});
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["start", &id]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("warning: hooks.poststart[0]"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ctx.status(&id), "running");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// NOTIFY_SOCKET given to capsa reaches the container: the variable, and
/// the listener's socket itself at the same path, so a datagram sent from
/// inside arrives at the listener on the host.
#[test]
fn notify_socket_is_passed_through() {
    use std::os::unix::fs::MetadataExt;
    let ctx = Ctx::new("notify");
    let sock = ctx.dir.join("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let ino = std::fs::metadata(&sock).unwrap().ino();
    // busybox has no sd_notify client; its logger sends one datagram to
    // /dev/log, so /dev/log is pointed at the socket.
    ctx.write_config(&ctx.sh_config(
        "echo var=$NOTIFY_SOCKET; [ -S \"$NOTIFY_SOCKET\" ] && echo is-socket; \
         stat -c ino=%i \"$NOTIFY_SOCKET\"; ln -s \"$NOTIFY_SOCKET\" /dev/log && logger READY=1",
    ));
    let id = ctx.id("n");
    let out = ctx
        .cmd(&["run", "--bundle", ctx.bundle_str(), &id])
        .env("NOTIFY_SOCKET", &sock)
        .output()
        .unwrap();
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("var={}\n", sock.display())),
        "{text}"
    );
    assert!(text.contains("is-socket\n"), "{text}");
    assert!(text.contains(&format!("ino={ino}\n")), "{text}");
    let mut buf = [0u8; 512];
    let n = listener
        .recv(&mut buf)
        .expect("a datagram from the container");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.contains("READY=1"), "{msg}");

    // Without the variable the container sees neither.
    let out = ctx.run(&ctx.sh_config("echo var=$NOTIFY_SOCKET"));
    assert_ok(&out);
    assert_eq!(stdout(&out), "var=\n");

    // A path that is not a socket is refused at create, naming it.
    let id = ctx.id("bad");
    let out = ctx
        .cmd(&["run", "--bundle", ctx.bundle_str(), &id])
        .env("NOTIFY_SOCKET", "/etc/hostname")
        .output()
        .unwrap();
    assert_fails_with(&out, "NOTIFY_SOCKET=/etc/hostname: not a socket");
    assert!(ctx.state_entries().is_empty());
}
