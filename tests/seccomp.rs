//! `linux.seccomp` in real containers: every action observed from inside
//! (busybox's messages and exit statuses), argument conditions, allow-lists
//! under a refusing default action, flags, and the user-notification
//! listener.

mod common;
use common::*;
use serde_json::{Value, json};

/// A config running `sh -c SCRIPT` under the seccomp profile `seccomp`.
fn config(ctx: &Ctx, script: &str, seccomp: Value) -> Value {
    let mut v = ctx.sh_config(script);
    v["root"]["readonly"] = false.into();
    v["linux"]["seccomp"] = seccomp;
    v
}

/// Runs `script` under `seccomp`, asserts success, returns stdout.
fn run_ok(ctx: &Ctx, script: &str, seccomp: Value) -> String {
    let out = ctx.run(&config(ctx, script, seccomp));
    assert_ok(&out);
    stdout(&out)
}

/// A profile giving `action` (with `extra` fields) to mkdir, whatever
/// syscall busybox uses for it on this machine.
fn mkdir_profile(action: &str, extra: Value) -> Value {
    let mut call = json!({"names": ["mkdir", "mkdirat"], "action": action});
    if let Value::Object(m) = extra {
        call.as_object_mut().unwrap().extend(m);
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [call]})
}

const MKDIR: &str = "mkdir /tmp/x 2>&1; echo rc=$?; [ -d /tmp/x ] && echo made; true";

#[test]
fn errno_returns_the_configured_errno() {
    let ctx = Ctx::new("seccomp-errno");
    // errnoRet defaults to EPERM.
    let out = run_ok(&ctx, MKDIR, mkdir_profile("SCMP_ACT_ERRNO", json!({})));
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("rc=1") && !out.contains("made"), "{out}");

    let out = run_ok(
        &ctx,
        MKDIR,
        mkdir_profile("SCMP_ACT_ERRNO", json!({"errnoRet": 1})),
    );
    assert!(out.contains("Operation not permitted"), "{out}");

    let out = run_ok(
        &ctx,
        MKDIR,
        mkdir_profile("SCMP_ACT_ERRNO", json!({"errnoRet": 38})),
    );
    assert!(out.contains("Function not implemented"), "{out}");
    assert!(!out.contains("made"), "{out}");

    // Other syscalls are untouched.
    let out = run_ok(
        &ctx,
        "touch /tmp/f && echo touched",
        mkdir_profile("SCMP_ACT_ERRNO", json!({})),
    );
    assert!(out.contains("touched"), "{out}");
}

#[test]
fn kill_actions_kill_with_sigsys() {
    let ctx = Ctx::new("seccomp-kill");
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        // The shell's child dies of SIGSYS...
        let out = run_ok(&ctx, MKDIR, mkdir_profile(action, json!({})));
        assert!(
            out.contains("rc=159") && !out.contains("made"),
            "{action}: {out}"
        );
        // ...and so does the container's process itself: 128 + SIGSYS.
        let mut v = config(&ctx, "", mkdir_profile(action, json!({})));
        v["process"]["args"] = json!(["mkdir", "/tmp/x"]);
        let out = ctx.run(&v);
        assert_eq!(out.status.code(), Some(159), "{action}: {}", stderr(&out));
    }
}

#[test]
fn trap_delivers_sigsys() {
    let ctx = Ctx::new("seccomp-trap");
    // busybox sh runs umask itself: its SIGSYS trap sees the signal and
    // the shell goes on.
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_TRAP"}]});
    let out = run_ok(
        &ctx,
        "trap 'echo trapped' SYS; umask 077; echo after",
        profile,
    );
    assert!(out.contains("trapped") && out.contains("after"), "{out}");
    // Without a handler, SIGSYS kills.
    let out = run_ok(&ctx, MKDIR, mkdir_profile("SCMP_ACT_TRAP", json!({})));
    assert!(out.contains("rc=159") && !out.contains("made"), "{out}");
}

#[test]
fn trace_without_a_tracer_fails_with_enosys() {
    let ctx = Ctx::new("seccomp-trace");
    let out = run_ok(
        &ctx,
        MKDIR,
        mkdir_profile("SCMP_ACT_TRACE", json!({"errnoRet": 5})),
    );
    assert!(
        out.contains("Function not implemented") && !out.contains("made"),
        "{out}"
    );
}

#[test]
fn log_and_allow_let_the_syscall_through() {
    let ctx = Ctx::new("seccomp-log");
    let out = run_ok(&ctx, MKDIR, mkdir_profile("SCMP_ACT_LOG", json!({})));
    assert!(out.contains("rc=0") && out.contains("made"), "{out}");
    let profile = json!({"defaultAction": "SCMP_ACT_LOG",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ALLOW"}]});
    let out = run_ok(&ctx, MKDIR, profile);
    assert!(out.contains("made"), "{out}");
}

#[test]
fn argument_conditions() {
    let ctx = Ctx::new("seccomp-args");
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        // linux32 asks for personality(PER_LINUX32 = 8); linux64 for 0.
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        // kill(pid, 0) probes; other signals go through.
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}
    ]});
    let out = run_ok(
        &ctx,
        "linux32 true 2>&1; echo a=$?; linux64 true; echo b=$?; \
         kill -0 $$ 2>&1; echo c=$?; kill -CONT $$; echo d=$?",
        profile,
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("a=1") && out.contains("b=0"), "{out}");
    assert!(out.contains("Function not implemented"), "{out}");
    assert!(out.contains("c=1") && out.contains("d=0"), "{out}");

    // Several conditions are ANDed; SCMP_CMP_GT.
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 15, "op": "SCMP_CMP_GT"}]}
    ]});
    let out = run_ok(
        &ctx,
        "kill -CONT 1 2>&1; echo a=$?; kill -0 1; echo b=$?; \
         sleep 10 & kill -CONT $!; echo c=$?; kill -KILL $!; echo d=$?",
        profile,
    );
    for want in ["a=1", "b=0", "c=0", "d=0"] {
        assert!(out.contains(want), "{want}: {out}");
    }

    // SCMP_CMP_MASKED_EQ: `value` is the mask, `valueTwo` the datum: refuse
    // modes without group and other bits.
    let masked = |index: u32| json!([{"index": index, "value": 0o077, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]);
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": masked(1)},
        {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "args": masked(2)}
    ]});
    let out = run_ok(
        &ctx,
        "touch /tmp/f; chmod 700 /tmp/f 2>&1; echo a=$?; chmod 755 /tmp/f; echo b=$?; \
         chmod 070 /tmp/f; echo c=$?",
        profile,
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    for want in ["a=1", "b=0", "c=0"] {
        assert!(out.contains(want), "{want}: {out}");
    }
}

/// What busybox sh, echo and cat need (and the execve of the process);
/// no seccomp, no prctl, no mkdir.
const ALLOWED: &[&str] = &[
    "read",
    "write",
    "open",
    "openat",
    "close",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "poll",
    "ppoll",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "readv",
    "writev",
    "access",
    "faccessat",
    "faccessat2",
    "pipe",
    "pipe2",
    "dup",
    "dup2",
    "dup3",
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getpgrp",
    "getpgid",
    "setpgid",
    "getcwd",
    "chdir",
    "fcntl",
    "getdents64",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "kill",
    "uname",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "readlink",
    "readlinkat",
    "sendfile",
    "futex",
    "madvise",
    "sigaltstack",
];

#[test]
fn refusing_default_with_an_allow_list() {
    let ctx = Ctx::new("seccomp-allowlist");
    let script = "echo hello; cat /etc/hostname; mkdir /tmp/x 2>&1; echo rc=$?";
    let out = run_ok(
        &ctx,
        script,
        json!({"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert!(out.contains("hello\ncapsa\n"), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("rc=1"),
        "{out}"
    );

    // defaultErrnoRet, and the architectures docker lists.
    let out = run_ok(
        &ctx,
        script,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
               "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                 "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
               "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert!(
        out.contains("hello") && out.contains("Permission denied"),
        "{out}"
    );

    // Killing by default works as well once everything needed is allowed
    // (busybox sh calls prctl, whose failure it otherwise shrugs off).
    let out = run_ok(
        &ctx,
        "echo hello; mkdir /tmp/x; echo rc=$?",
        json!({"defaultAction": "SCMP_ACT_KILL_PROCESS",
               "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"},
                            {"names": ["prctl"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert!(out.contains("hello") && out.contains("rc=159"), "{out}");
}

#[test]
fn a_docker_sized_profile() {
    // Every syscall this machine's table has but mkdir, allowed for three
    // ABIs, with a refusing default: hundreds of rules in one filter.
    let ctx = Ctx::new("seccomp-big");
    let names: Vec<String> = all_syscall_names()
        .into_iter()
        .filter(|n| n != "mkdir" && n != "mkdirat")
        .collect();
    let out = run_ok(
        &ctx,
        "echo hello; mkdir /tmp/x 2>&1; echo rc=$?",
        json!({"defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]}
        ]}),
    );
    assert!(
        out.contains("hello") && out.contains("Operation not permitted"),
        "{out}"
    );
}

fn all_syscall_names() -> Vec<String> {
    let mut names: Vec<String> = syscalls::x86_64::Sysno::iter()
        .map(|s| s.name().to_string())
        .chain(syscalls::aarch64::Sysno::iter().map(|s| s.name().to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn one_filter_with_the_requested_flags() {
    let ctx = Ctx::new("seccomp-flags");
    for flags in [
        json!(null),
        json!([]),
        json!([
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC"
        ]),
    ] {
        let mut profile = mkdir_profile("SCMP_ACT_ERRNO", json!({}));
        if !flags.is_null() {
            profile["flags"] = flags.clone();
        }
        let out = run_ok(&ctx, "grep Seccomp /proc/self/status", profile);
        assert_eq!(status_field(&out, "Seccomp"), "2", "{flags}: {out}");
        assert_eq!(status_field(&out, "Seccomp_filters"), "1", "{flags}: {out}");
    }
}

#[test]
fn unknown_names_and_foreign_architectures_are_skipped() {
    let ctx = Ctx::new("seccomp-unknown");
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_NATIVE"],
        "syscalls": [{"names": ["no_such_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    let out = ctx.run(&config(&ctx, MKDIR, profile));
    assert_ok(&out);
    assert!(
        stdout(&out).contains("Operation not permitted"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn without_no_new_privileges() {
    // The filter then goes in while the init still has CAP_SYS_ADMIN, and
    // before it drops capabilities and switches user (so, as with runc, a
    // profile has to allow what the init does after it).
    let ctx = Ctx::new("seccomp-nnp");
    let mut v = config(
        &ctx,
        "grep NoNewPrivs /proc/self/status; echo hello; mkdir /tmp/x 2>&1; true",
        mkdir_profile("SCMP_ACT_ERRNO", json!({})),
    );
    v["process"]["noNewPrivileges"] = false.into();
    let out = ctx.run(&v);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(status_field(&text, "NoNewPrivs"), "0", "{text}");
    assert!(
        text.contains("hello") && text.contains("Operation not permitted"),
        "{text}"
    );
}

#[test]
fn invalid_profiles_fail_create() {
    let ctx = Ctx::new("seccomp-invalid");
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[1].args[0].index: 7 is out of range",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 0, "op": "FOO"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
            "linux.seccomp.flags[0]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used",
        ),
    ];
    for (profile, needle) in cases {
        let out = ctx.run(&config(&ctx, "echo ran", profile));
        assert_fails_with(&out, needle);
        assert!(!stdout(&out).contains("ran"));
        assert!(ctx.state_entries().is_empty(), "{:?}", ctx.state_entries());
    }
}

/// The environment variable that makes `notify_helper` do its work.
const NOTIFY_HELPER: &str = "CAPSA_TEST_SECCOMP_NOTIFY_HELPER";

#[test]
fn notify_returns_a_working_listener() {
    // The filter goes on a thread of a process of its own: this test binary
    // again, running only `notify_helper`.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "notify_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NOTIFY_HELPER, "1")
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("helper: getppid() = 4242"), "{text}");
}

#[test]
#[ignore = "run by notify_returns_a_working_listener in a process of its own"]
fn notify_helper() {
    use std::os::fd::AsRawFd;
    if std::env::var_os(NOTIFY_HELPER).is_none() {
        return;
    }
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .unwrap();
    let prepared = capsa::seccomp::prepare(&profile).unwrap();
    assert!(prepared.uses_notify());
    let listener = capsa::seccomp::install(&prepared)
        .unwrap()
        .expect("a listener fd");
    let fd = listener.as_raw_fd();
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    assert_eq!(link.to_string_lossy(), "anon_inode:seccomp notify");

    // A thread started now inherits the filter; answer its getppid.
    // SAFETY: getppid has no preconditions.
    let caller = std::thread::spawn(|| unsafe { libc::getppid() });
    // SAFETY: seccomp_notif is plain data; all zeroes is what RECV wants.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `req` is a valid seccomp_notif the kernel fills in.
    let r = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
    assert_eq!(r, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert_eq!(i64::from(req.data.nr), libc::SYS_getppid);
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 4242,
        error: 0,
        flags: 0,
    };
    // SAFETY: `resp` is a valid seccomp_notif_resp the kernel reads.
    let r = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    assert_eq!(r, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    let got = caller.join().unwrap();
    println!("helper: getppid() = {got}");
}

/// What a seccomp agent got on one connection: the container process state
/// and, for each notification it answered, the pid of the caller and of
/// that caller's parent (both in the host's pid namespace).
struct Delivery {
    doc: Value,
    /// `readlink` of the fd received with the state.
    fd_kind: String,
    calls: Vec<(u32, u32)>,
}

/// A seccomp agent as the runtime-spec describes one: a unix stream socket
/// at `path`; each connection brings the container process state and the
/// listener (SCM_RIGHTS). Notifications get `answers` in order ((value,
/// errno), shared by all connections), then SECCOMP_USER_NOTIF_FLAG_CONTINUE.
/// A connection is reported once no process uses its filter any more.
struct Agent {
    path: std::path::PathBuf,
    got: std::sync::mpsc::Receiver<Delivery>,
}

impl Agent {
    fn start(ctx: &Ctx, answers: Vec<(i64, i32)>) -> Agent {
        let path = ctx.dir.join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (tx, got) = std::sync::mpsc::channel();
        let answers = std::sync::Arc::new(std::sync::Mutex::new(
            answers
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (tx, answers) = (tx.clone(), answers.clone());
                std::thread::spawn(move || {
                    let _ = tx.send(serve(conn, &answers));
                });
            }
        });
        Agent { path, got }
    }

    /// The next connection's report; a bound only against a hang.
    fn next(&self) -> Delivery {
        self.got
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the agent got no listener")
    }
}

fn serve(
    conn: std::os::unix::net::UnixStream,
    answers: &std::sync::Mutex<std::collections::VecDeque<(i64, i32)>>,
) -> Delivery {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let mut body = vec![0u8; 1 << 16];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let (n, fds) = {
        let mut iov = [std::io::IoSliceMut::new(&mut body)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fds = Vec::new();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(f) = c {
                // SAFETY: the kernel just installed these fds for us.
                fds.extend(f.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        (msg.bytes, fds)
    };
    body.truncate(n);
    // One state per connection, which capsa then closes.
    (&conn).read_to_end(&mut body).unwrap();
    let doc: Value = serde_json::from_slice(&body).expect("the state is JSON");
    assert_eq!(fds.len(), 1, "one fd with the state: {doc}");
    let fd = fds[0].as_raw_fd();
    let fd_kind = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut calls = Vec::new();
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r < 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            break; // POLLHUP: the filter has no users left.
        }
        // SAFETY: seccomp_notif is plain data; zeroed is what RECV wants.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: `req` is a valid seccomp_notif the kernel fills in.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            continue; // the caller went away meanwhile
        }
        let ppid = std::fs::read_to_string(format!("/proc/{}/status", req.pid))
            .map(|s| status_field(&s, "PPid").parse().unwrap_or(0))
            .unwrap_or(0);
        calls.push((req.pid, ppid));
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        if let Some((val, errno)) = answers.lock().unwrap().pop_front() {
            resp = libc::seccomp_notif_resp {
                id: req.id,
                val,
                error: -errno,
                flags: 0,
            };
        }
        // SAFETY: `resp` is a valid seccomp_notif_resp the kernel reads.
        unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
    Delivery {
        doc,
        fd_kind,
        calls,
    }
}

/// A profile sending mkdir to the agent at `path`.
fn notify_profile(path: &std::path::Path) -> Value {
    let mut p = mkdir_profile("SCMP_ACT_NOTIFY", json!({}));
    p["listenerPath"] = json!(path);
    p["listenerMetadata"] = json!("agent-metadata");
    p
}

/// The text of an errno as the container's libc prints it: the rootfs's
/// busybox is Debian's static glibc build, whose texts for the errnos these
/// tests use are not every libc's (musl, which capsa and these tests may
/// be built with, has none for them).
fn strerror(errno: i32) -> String {
    match errno {
        libc::EXFULL => "Exchange full".into(),
        libc::ENOTUNIQ => "Name not unique on network".into(),
        _ => {
            let s = std::io::Error::from_raw_os_error(errno).to_string();
            s.split(" (os error").next().unwrap().to_string()
        }
    }
}

#[test]
fn notify_hands_the_listener_to_the_agent_for_the_init() {
    let ctx = Ctx::new("seccomp-notify");
    // With noNewPrivileges the filter goes in at the end of the init's
    // setup; without it, before the capabilities are dropped.
    for nnp in [true, false] {
        // mkdir /tmp/a fails with the agent's errno; mkdir /tmp/b
        // "succeeds" with the agent's 0, and nothing is created.
        let agent = Agent::start(&ctx, vec![(0, libc::EXFULL), (0, 0)]);
        let mut c = config(
            &ctx,
            "mkdir /tmp/a 2>&1; echo rc=$?; mkdir /tmp/b; echo rc=$?; \
             [ -d /tmp/b ] && echo b-exists || echo b-absent",
            notify_profile(&agent.path),
        );
        c["process"]["noNewPrivileges"] = nnp.into();
        c["annotations"] = json!({"org.example.agent": "yes"});
        let out = ctx.run(&c);
        assert_ok(&out);
        assert_eq!(
            stdout(&out),
            format!(
                "mkdir: can't create directory '/tmp/a': {}\nrc=1\nrc=0\nb-absent\n",
                strerror(libc::EXFULL)
            ),
            "nnp={nnp}"
        );
        let got = agent.next();
        let doc = &got.doc;
        assert_eq!(got.fd_kind, "anon_inode:seccomp notify");
        assert_eq!(doc["ociVersion"], capsa::spec::OCI_VERSION);
        assert_eq!(doc["fds"], json!(["seccompFd"]));
        assert_eq!(doc["metadata"], "agent-metadata");
        let st = &doc["state"];
        assert_eq!(st["id"], ctx.id("run"), "{doc}");
        assert_eq!(st["status"], "creating");
        assert_eq!(st["bundle"], json!(ctx.bundle));
        assert_eq!(st["annotations"], json!({"org.example.agent": "yes"}));
        // The pid is the container's init: the parent of the shell's
        // mkdir children, whose calls the agent answered.
        assert_eq!(doc["pid"], st["pid"]);
        let init = doc["pid"].as_u64().unwrap() as u32;
        assert_eq!(got.calls.len(), 2, "{:?}", got.calls);
        for (caller, parent) in &got.calls {
            assert_ne!(*caller, init);
            assert_eq!(*parent, init, "caller {caller}");
        }
        std::fs::remove_file(&agent.path).unwrap();
    }
}

#[test]
fn notify_hands_the_listener_to_the_agent_for_exec() {
    let ctx = Ctx::new("seccomp-notify-exec");
    let agent = Agent::start(&ctx, vec![(0, libc::ENOTUNIQ)]);
    let mut c = config(&ctx, "", notify_profile(&agent.path));
    c["process"]["args"] = json!(["sleep", "1000000"]);
    ctx.write_config(&c);
    let id = ctx.id("exec");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let init_pid = ctx.state(&id)["pid"].as_u64().unwrap();
    let pid_file = ctx.dir.join("exec.pid");
    let out = ctx.capsa(&[
        "exec",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "mkdir /tmp/c 2>&1; echo rc=$?",
    ]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!(
            "mkdir: can't create directory '/tmp/c': {}\nrc=1\n",
            strerror(libc::ENOTUNIQ)
        )
    );
    // The exec'd process's listener: its pid, the container's state.
    let got = agent.next();
    let doc = &got.doc;
    let exec_pid: u64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(doc["pid"], exec_pid, "{doc}");
    assert_eq!(doc["metadata"], "agent-metadata");
    assert_eq!(doc["state"]["id"], id.as_str());
    assert_eq!(doc["state"]["status"], "running");
    assert_eq!(doc["state"]["pid"], init_pid);
    assert_eq!(got.calls.len(), 1);
    assert_eq!(got.calls[0].1 as u64, exec_pid);
    // The init's listener, which saw no call, once the container is gone.
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    let got = agent.next();
    assert_eq!(got.doc["pid"], init_pid);
    assert_eq!(got.doc["state"]["status"], "creating");
    assert!(got.calls.is_empty(), "{:?}", got.calls);
}

#[test]
fn notify_needs_a_reachable_listener_path() {
    let ctx = Ctx::new("seccomp-notify-bad");
    let mut profile = mkdir_profile("SCMP_ACT_NOTIFY", json!({}));
    let out = ctx.run(&config(&ctx, "echo ran", profile.clone()));
    assert_fails_with(
        &out,
        "config.json: linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY",
    );
    assert!(ctx.state_entries().is_empty(), "{:?}", ctx.state_entries());

    // Nobody listens there: create fails (the spec wants an error) and
    // leaves nothing behind.
    let missing = ctx.dir.join("no-agent.sock");
    profile["listenerPath"] = json!(missing);
    let out = ctx.run(&config(&ctx, "echo ran", profile.clone()));
    assert_fails_with(
        &out,
        &format!(
            "config.json: linux.seccomp.listenerPath ({}): connect",
            missing.display()
        ),
    );
    assert!(!stdout(&out).contains("ran"));
    assert!(ctx.state_entries().is_empty(), "{:?}", ctx.state_entries());

    // capsa itself needs write and sendmsg while nobody holds the listener.
    profile["syscalls"][0]["names"] = json!(["mkdir", "sendmsg"]);
    let out = ctx.run(&config(&ctx, "echo ran", profile));
    assert_fails_with(
        &out,
        "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall",
    );
}
