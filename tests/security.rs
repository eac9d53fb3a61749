//! Hostile bundles: a rootfs that tries to redirect capsa's mounts and
//! writes to the host, and a container that tries to reach the capsa
//! binary. Each asserts the host is untouched.

mod common;
use common::*;
use serde_json::json;

#[test]
fn the_capsa_binary_cannot_be_reached_from_a_container() {
    let ctx = Ctx::new("selfprotect");
    // A: created, not started: its init is still the capsa binary.
    let a = ctx.id("a");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &a]));
    let a_pid = ctx.state(&a)["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{a_pid}/comm"))
            .unwrap()
            .trim(),
        capsa::process::INIT_COMM
    );
    // B shares A's PID namespace: A's init is its PID 1.
    let mut c = ctx.sh_config(
        "cat /proc/1/comm; readlink /proc/1/exe || echo no-readlink; \
         cat /proc/1/exe > /dev/null 2>&1 && echo READ || echo no-read; \
         for f in /proc/1/fd/*; do readlink $f && echo FD; done 2>/dev/null; echo fds-checked",
    );
    c["linux"]["namespaces"][0] = json!({"type": "pid", "path": format!("/proc/{a_pid}/ns/pid")});
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!(
            "{}\nno-readlink\nno-read\nfds-checked\n",
            capsa::process::INIT_COMM
        )
    );
    assert_ok(&ctx.capsa(&["delete", &a]));
}

#[test]
fn symlinks_in_the_rootfs_cannot_redirect_mounts_to_the_host() {
    let ctx = Ctx::new("symlinks");
    let rootfs = ctx.bundle.join("rootfs");
    let marker = format!("capsa-escape-{}", std::process::id());
    std::os::unix::fs::symlink("/", rootfs.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../tmp", rootfs.join("up")).unwrap();
    let mut c = ctx.sh_config(&format!("ls -d /tmp/{marker}-a /tmp/{marker}-b"));
    c["root"]["readonly"] = false.into();
    c["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": format!("/escape/tmp/{marker}-a"), "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": format!("/up/{marker}-b"), "type": "tmpfs", "source": "tmpfs"}),
    ]);
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), format!("/tmp/{marker}-a\n/tmp/{marker}-b\n"));
    // Created inside the rootfs, never on the host.
    assert!(rootfs.join(format!("tmp/{marker}-a")).is_dir());
    assert!(!std::path::Path::new(&format!("/tmp/{marker}-a")).exists());
    assert!(!std::path::Path::new(&format!("/tmp/{marker}-b")).exists());
}

#[test]
fn a_symlinked_proc_or_sys_is_refused() {
    let ctx = Ctx::new("procsymlink");
    let rootfs = ctx.bundle.join("rootfs");
    for dir in ["proc", "sys"] {
        std::fs::remove_dir(rootfs.join(dir)).unwrap();
        std::os::unix::fs::symlink("/etc", rootfs.join(dir)).unwrap();
        let id = ctx.id(dir);
        let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
        assert_fails_with(&out, "destination is a symlink");
        assert!(ctx.state_entries().is_empty());
        std::fs::remove_file(rootfs.join(dir)).unwrap();
        std::fs::create_dir(rootfs.join(dir)).unwrap();
    }
}

#[test]
fn a_fake_dev_null_is_not_used_for_masking() {
    let ctx = Ctx::new("fakenull");
    let rootfs = ctx.bundle.join("rootfs");
    std::fs::write(rootfs.join("etc/secret"), "secret\n").unwrap();
    // /dev is bind-mounted from the bundle, so capsa creates no devices and
    // the image's /dev/null (a symlink to a file) would be the mask.
    let dev = ctx.dir.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(ctx.dir.join("leak"), "leaked\n").unwrap();
    std::os::unix::fs::symlink(ctx.dir.join("leak"), dev.join("null")).unwrap();
    let mut c = ctx.sh_config("cat /etc/secret; echo end");
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    mounts
        .push(json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]}));
    c["linux"]["maskedPaths"] = json!(["/etc/secret"]);
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "end\n", "masked with the real null device");
}

/// Copies the libraries `bin` loads (as `ldd` lists them) into `rootfs`
/// at the same paths, so the binary can run inside the container.
fn copy_libraries(bin: &std::path::Path, rootfs: &std::path::Path) {
    let out = std::process::Command::new("ldd").arg(bin).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = line
            .split("=>")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            let dest = rootfs.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            if std::fs::symlink_metadata(&dest).is_ok() {
                std::fs::remove_file(&dest).unwrap();
            }
            std::fs::copy(p, &dest).unwrap();
        }
    }
}

fn md5(path: &std::path::Path) -> String {
    let out = std::process::Command::new("md5sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

/// CVE-2019-5736: a `#!/proc/self/exe` entrypoint would make the kernel
/// run the runtime's binary in the container (the interpreter is resolved
/// while the process is still the runtime). capsa makes that last exec
/// through its sealed stub, so the interpreter the kernel finds is the stub,
/// which execs its first argument with the rest: a script `/attack/sh` of
/// `#!/proc/self/exe /bin/busybox` turns into busybox's shell (whose $0 is
/// the script), where capsa's binary would have refused `/bin/busybox` as
/// an unknown command. Checked for the
/// init's exec, for `capsa exec`, and for a startContainer hook, which the
/// init runs inside the container.
#[test]
fn a_proc_self_exe_interpreter_is_the_sealed_stub_not_capsa() {
    let ctx = Ctx::new("selfexe-stub");
    let rootfs = ctx.bundle.join("rootfs");
    let script = |name: &str, text: &str| {
        std::fs::write(rootfs.join(name), text).unwrap();
        std::fs::set_permissions(
            rootfs.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    };
    // busybox picks its applet by argv[0], which is the script's path: the
    // scripts are named after the applets they turn into.
    std::fs::create_dir(rootfs.join("attack")).unwrap();
    script("attack/sh", "#!/proc/self/exe /bin/busybox\n");
    // A hook runs with the state on stdin: echo ignores it and succeeds.
    script("attack/echo", "#!/proc/self/exe /bin/busybox\n");
    let capsa_md5 = md5(std::path::Path::new(CAPSA));
    let commands = b"readlink /proc/self/exe; echo $0; \
                     md5sum /proc/self/exe | cut -d' ' -f1\n";
    let run_with_stdin = |args: &[&str]| -> String {
        let mut c = ctx.cmd(args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(commands).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_ok(&out);
        stdout(&out)
    };
    let mut c = ctx.default_config();
    c["process"]["args"] = json!(["/attack/sh"]);
    c["hooks"] = json!({"startContainer": [{"path": "/attack/echo"}]});
    ctx.write_config(&c);
    let busybox_md5 = md5(&rootfs.join("bin/busybox"));
    let want = format!("/bin/busybox\n/attack/sh\n{busybox_md5}\n");
    assert_ne!(busybox_md5, capsa_md5);

    // The init's exec (and its startContainer hook: the run would fail
    // with the hook's exit status otherwise).
    let id = ctx.id("run");
    let text = run_with_stdin(&["run", "--bundle", ctx.bundle_str(), &id]);
    // The hook's echo printed the empty line first.
    assert_eq!(text, format!("\n{want}"));

    // capsa exec.
    let mut c = ctx.sh_config("sleep 1000");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("exec");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let text = run_with_stdin(&["exec", &id, "/attack/sh"]);
    assert_eq!(text, want);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// The same attack against capsa's fallback, for hosts where the stub
/// cannot run (no executable memfds): capsa re-executes itself from a
/// private read-only overlayfs, so the kernel does run capsa in the
/// container. Another container process keeps `/proc/PID/exe` open, kills
/// it and writes through `/proc/self/fd/N`: the write fails. The attack
/// runs against a private copy of capsa, which nothing else executes, so a
/// write cannot fail with ETXTBSY by chance.
#[test]
fn a_proc_self_exe_entrypoint_cannot_overwrite_the_capsa_binary_overlay() {
    let text = proc_self_exe_attack(Some("overlay"));
    assert!(text.contains("Read-only file system"), "{text}");
}

#[test]
fn a_proc_self_exe_entrypoint_cannot_overwrite_the_capsa_binary_memfd() {
    // ...or, where there is no overlayfs either, from a sealed memfd.
    let text = proc_self_exe_attack(Some("memfd"));
    assert!(text.contains("Operation not permitted"), "{text}");
}

/// Runs the attack; returns the attacker's report, a failed write.
fn proc_self_exe_attack(seal: Option<&str>) -> String {
    let ctx = Ctx::new("selfexe");
    let bin = ctx.dir.join("bin/capsa");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(CAPSA, &bin).unwrap();
    let original = std::fs::read(&bin).unwrap();
    let original_md5 = md5(&bin);
    let rootfs = ctx.bundle.join("rootfs");
    copy_libraries(&bin, &rootfs);
    // Run as the interpreter, capsa prints its help to stdout.
    std::fs::write(rootfs.join("victim"), "#!/proc/self/exe --help\n").unwrap();
    std::fs::set_permissions(
        rootfs.join("victim"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let capsa = |args: &[&str]| {
        let mut c = std::process::Command::new(&bin);
        c.arg("--root").arg(&ctx.root).args(args);
        if let Some(s) = seal {
            c.env("CAPSA_SEAL", s);
        }
        c.stdin(std::process::Stdio::null());
        c
    };

    // The container's init is the attacker: once told to go, it finds the
    // victim, keeps its exe open, kills it and writes through the fd.
    let mut c = ctx.sh_config(
        "while [ ! -e /go ]; do sleep 0.05; done; \
         for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = victim ] && pid=${d#/proc/}; done; \
         ( [ -n \"$pid\" ] || echo no-victim; \
           exec 4</proc/$pid/exe; md5sum /proc/self/fd/4; \
           kill -9 $pid; \
           while grep -qs '^State:[[:space:]]*[RSDT]' /proc/$pid/status; do :; done; \
           if ( echo PWNED >> /proc/self/fd/4 ) 2>/err; then echo WROTE; else echo DENIED; cat /err; fi; \
         ) > /result.tmp 2>&1; mv /result.tmp /result",
    );
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    // Output to files: the container keeps what it inherits open.
    let log = ctx.dir.join("run.log");
    let st = capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "run: {}",
        std::fs::read_to_string(&log).unwrap()
    );

    // The victim: `capsa exec` of the script. capsa, run as its
    // interpreter, blocks writing its help to a full pipe.
    let (rd, wr) = nix::unistd::pipe().unwrap();
    nix::fcntl::fcntl(
        &wr,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    while nix::unistd::write(&wr, &[0u8; 4096]).is_ok() {}
    nix::fcntl::fcntl(
        &wr,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    let err_file = ctx.dir.join("exec.err");
    let st = capsa(&["exec", "-d", &id, "/victim"])
        .stdout(std::process::Stdio::from(wr.try_clone().unwrap()))
        .stderr(std::fs::File::create(&err_file).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "exec: {}",
        std::fs::read_to_string(&err_file).unwrap()
    );
    drop(wr);
    // Only now, with no capsa process left on the host, may it go.
    std::fs::write(rootfs.join("go"), "").unwrap();
    let result = rootfs.join("result");
    for _ in 0..3000 {
        if result.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(rd);
    let text = std::fs::read_to_string(&result).expect("the attacker reported");
    // The attacker really held capsa's binary...
    assert!(
        text.starts_with(&format!("{original_md5}  /proc/self/fd/4\n")),
        "{text}"
    );
    // ...and could not write it.
    assert!(text.contains("DENIED"), "{text}");
    assert!(!text.contains("WROTE"), "{text}");
    assert!(
        std::fs::read(&bin).unwrap() == original,
        "the host's capsa binary was modified"
    );
    assert_eq!(md5(&bin), original_md5);
    assert!(
        capsa(&["delete", "--force", &id])
            .status()
            .unwrap()
            .success()
    );
    text
}
