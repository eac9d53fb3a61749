//! Hostile bundles, built at test time: a rootfs (or a caller) that tries
//! to make capsa act on the host. Each case checks what the container sees,
//! that the host is untouched (contents and listings of the targets before
//! and after), that an error is clear, and that nothing is left behind:
//! no state entry, no mount, no cgroup, no process.
//!
//! Cases already elsewhere: relative and absolute symlinks redirecting
//! mounts, symlinked /proc and /sys, a /dev/null symlink and the
//! `#!/proc/self/exe` entrypoint (`security.rs`); invalid ids, a 10 MiB
//! config and deeply nested JSON (`bad_input.rs`); caller fds and
//! `--preserve-fds` for `run` (`container_env.rs`).

mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A fingerprint of a host directory: each entry's name with the bytes of
/// regular files (one level deep), so any change shows.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        // Directories' sizes change with what others create in them.
        let content = if meta.is_file() && meta.len() < (1 << 20) {
            std::fs::read(e.path()).unwrap_or_default()
        } else {
            format!("{:?}", meta.file_type()).into_bytes()
        };
        out.insert(name, content);
    }
    out
}

/// The mount points of this (the host's) mount namespace.
fn host_mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect()
}

/// Cgroup directories (up to four levels down) whose name contains `id`.
fn cgroups_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, id: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().contains(id) {
                    out.push(e.path());
                }
                if depth > 0 {
                    walk(&e.path(), depth - 1, id, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, id, &mut out);
    out
}

/// After a failed `create` of `id`: no state, mount, cgroup or process.
#[track_caller]
fn assert_nothing_left(ctx: &Ctx, id: &str) {
    assert!(
        ctx.state_entries().is_empty(),
        "state left: {:?}",
        ctx.state_entries()
    );
    let dir = ctx.dir.to_str().unwrap();
    let mounts: Vec<String> = host_mount_points()
        .into_iter()
        .filter(|m| m.contains(dir))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(cgroups_named(id).is_empty(), "{:?}", cgroups_named(id));
    let procs = processes_mentioning(id);
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

#[test]
fn mount_destinations_through_host_symlinks_and_dotdot_stay_inside() {
    let ctx = Ctx::new("hostile-dest");
    let rootfs = ctx.bundle.join("rootfs");
    // Symlinks to host directories, absolute and relative, and a
    // destination that climbs with `..` itself.
    std::os::unix::fs::symlink("/etc", rootfs.join("hostetc")).unwrap();
    std::os::unix::fs::symlink("/", rootfs.join("hostroot")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc", rootfs.join("tmp/up")).unwrap();
    let marker = format!("capsa-hostile-{}", std::process::id());
    let src = ctx.dir.join("payload");
    std::fs::write(&src, "payload\n").unwrap();
    let host_etc = snapshot(Path::new("/etc"));
    let host_root = snapshot(Path::new("/"));
    let mounts_before = host_mount_points();

    let mut c = ctx.sh_config(&format!(
        "ls -a /etc | grep -c . ; cat /etc/{marker}-file; ls -d /etc/{marker}-dir; \
         ls -d /{marker}-root; cat /etc/hostname"
    ));
    c["root"]["readonly"] = false.into();
    c["mounts"].as_array_mut().unwrap().extend([
        // /hostetc is the container's /etc: a tmpfs hides it.
        json!({"destination": "/hostetc", "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": format!("/tmp/up/{marker}-file"), "type": "bind", "source": src, "options": ["bind"]}),
        json!({"destination": format!("/../../../etc/../../etc/{marker}-dir"), "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": format!("/hostroot/{marker}-root"), "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": "/hostroot/etc/hostname", "type": "bind", "source": src, "options": ["bind"]}),
    ]);
    let out = ctx.run(&c);
    assert_ok(&out);
    // The container's /etc: the tmpfs with what was mounted into it.
    assert_eq!(
        stdout(&out),
        format!("5\npayload\n/etc/{marker}-dir\n/{marker}-root\npayload\n")
    );
    // Every destination was created in the rootfs, not on the host.
    assert!(rootfs.join(format!("{marker}-root")).is_dir());
    assert_eq!(snapshot(Path::new("/etc")), host_etc, "host /etc changed");
    assert_eq!(snapshot(Path::new("/")), host_root, "host / changed");
    let new: Vec<String> = host_mount_points()
        .into_iter()
        .filter(|m| !mounts_before.contains(m))
        .filter(|m| m.starts_with("/etc") || m.contains(&marker))
        .collect();
    assert!(new.is_empty(), "host mounts: {new:?}");
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn symlinked_proc_and_sys_pointing_up_are_refused_and_leave_nothing() {
    let ctx = Ctx::new("hostile-procsys");
    let rootfs = ctx.bundle.join("rootfs");
    let host_proc_mounts = host_mount_points();
    for (dir, target) in [("proc", "../../../../proc"), ("sys", "../../../../../sys")] {
        std::fs::remove_dir(rootfs.join(dir)).unwrap();
        std::os::unix::fs::symlink(target, rootfs.join(dir)).unwrap();
        let id = ctx.id(dir);
        let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
        assert_fails_with(&out, &format!("/{dir}): destination is a symlink"));
        assert_nothing_left(&ctx, &id);
        std::fs::remove_file(rootfs.join(dir)).unwrap();
        std::fs::create_dir(rootfs.join(dir)).unwrap();
    }
    let new: Vec<String> = host_mount_points()
        .into_iter()
        .filter(|m| !host_proc_mounts.contains(m))
        .filter(|m| m == "/proc" || m == "/sys")
        .collect();
    assert!(new.is_empty(), "{new:?}");
}

#[test]
fn a_dev_null_that_is_a_regular_file_is_not_used_for_masking() {
    let ctx = Ctx::new("hostile-null");
    let rootfs = ctx.bundle.join("rootfs");
    std::fs::write(rootfs.join("etc/secret"), "secret\n").unwrap();
    // /dev comes from the bundle, so capsa creates no device there: the
    // image's /dev/null is a regular file (which a masked path bound to it
    // would show, and writes to it would fill).
    let dev = ctx.dir.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("null"), "not null\n").unwrap();
    let mut c = ctx.sh_config(
        "cat /etc/secret; echo written > /etc/secret; cat /etc/secret; echo end; \
         stat -c %t:%T /etc/secret",
    );
    c["root"]["readonly"] = false.into();
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    mounts
        .push(json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]}));
    c["linux"]["maskedPaths"] = json!(["/etc/secret"]);
    let out = ctx.run(&c);
    assert_ok(&out);
    // The real null device (1:3) hides the secret and swallows the write.
    assert_eq!(stdout(&out), "end\n1:3\n");
    assert_eq!(
        std::fs::read_to_string(dev.join("null")).unwrap(),
        "not null\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/secret")).unwrap(),
        "secret\n"
    );
}

/// The rootfs named by `root.path` may not itself be a symlink: capsa
/// refuses it, as runc does ("invalid rootfs: not an absolute path, or a
/// symlink"). Nor does it ever follow a symlink *inside* the rootfs out of
/// it: a destination through one lands inside the rootfs.
#[test]
fn a_rootfs_that_is_a_symlink() {
    let ctx = Ctx::new("hostile-rootlink");
    let real = ctx.dir.join("real-rootfs");
    std::fs::rename(ctx.bundle.join("rootfs"), &real).unwrap();
    std::os::unix::fs::symlink(&real, ctx.bundle.join("rootfs")).unwrap();
    std::fs::write(real.join("etc/which"), "the real rootfs\n").unwrap();
    std::os::unix::fs::symlink("/etc", real.join("hostetc")).unwrap();
    let host_etc = snapshot(Path::new("/etc"));
    let mut c = ctx.sh_config("cat /etc/which; ls /etc/inside");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("link");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "config.json: root.path: rootfs is a symlink");
    assert_nothing_left(&ctx, &id);
    c["root"]["path"] = real.to_str().unwrap().into();
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/hostetc/inside/x", "type": "tmpfs", "source": "tmpfs"}));
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "the real rootfs\nx\n");
    assert!(real.join("etc/inside/x").is_dir());
    assert_eq!(snapshot(Path::new("/etc")), host_etc, "host /etc changed");

    // A dangling rootfs symlink is a clear error naming root.path.
    c["root"]["path"] = "rootfs".into();
    ctx.write_config(&c);
    std::fs::remove_file(ctx.bundle.join("rootfs")).unwrap();
    std::os::unix::fs::symlink(ctx.dir.join("gone"), ctx.bundle.join("rootfs")).unwrap();
    let id = ctx.id("dangling");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "config.json: root.path: stat ");
    assert_nothing_left(&ctx, &id);
}

/// A host directory the caller leaves open (no close-on-exec), at fd 7.
/// Returns a shell prefix opening it and the directory.
fn leaked_host_dir(ctx: &Ctx) -> (String, PathBuf) {
    let dir = ctx.dir.join("host-secret");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "host secret\n").unwrap();
    (format!("exec 7<{};", dir.display()), dir)
}

/// CVE-2024-21626: a cwd of /proc/self/fd/N names whatever fd N of the
/// process is; a leaked host directory would put the process outside the
/// container. capsa resolves the cwd inside the root without magic links
/// and checks where it ended up.
#[test]
fn a_cwd_through_proc_self_fd_cannot_leave_the_container() {
    let ctx = Ctx::new("hostile-cwd");
    let (open7, dir) = leaked_host_dir(&ctx);
    let before = snapshot(&dir);
    // fd 7 is the caller's leak; 3 to 6 and 8 to 12 whatever capsa has.
    for n in 3..13 {
        let mut c = ctx.sh_config("pwd; cat ../secret ../../secret 2>/dev/null; touch pwned");
        c["root"]["readonly"] = false.into();
        c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        ctx.write_config(&c);
        let id = ctx.id(&format!("fd{n}"));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{open7} exec {CAPSA} --root {} run --bundle {} {id}",
                ctx.root.display(),
                ctx.bundle_str()
            ))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_fails_with(&out, &format!("cwd (/proc/self/fd/{n}) set in config.json"));
        assert!(!stdout(&out).contains("host secret"), "{}", stdout(&out));
        assert_nothing_left(&ctx, &id);
    }
    assert_eq!(snapshot(&dir), before, "the host directory changed");

    // The same for a process exec'd into a running container.
    let mut c = ctx.sh_config("sleep 1000000");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("exec");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{open7} exec {CAPSA} --root {} exec --cwd /proc/self/fd/7 {id} sh -c 'pwd; touch pwned'",
            ctx.root.display(),
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_fails_with(&out, "cwd (/proc/self/fd/7) set in config.json");
    assert_eq!(snapshot(&dir), before, "the host directory changed");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// fds the caller leaves open reach neither the init nor `exec`'d
/// processes; with --preserve-fds exactly the range does.
#[test]
fn caller_fds_do_not_reach_exec_processes() {
    let ctx = Ctx::new("hostile-fds");
    let (open7, dir) = leaked_host_dir(&ctx);
    let mut c = ctx.sh_config("ls /proc/self/fd | tr '\\n' ' '; sleep 1000000");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    let log = ctx.dir.join("init.out");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{open7} exec 9</etc/hostname; exec {CAPSA} --root {} run -d --bundle {} {id} > {} 2>&1",
            ctx.root.display(),
            ctx.bundle_str(),
            log.display()
        ))
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{}", std::fs::read_to_string(&log).unwrap());
    let exec = |extra: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{open7} exec 8</etc/hostname 9</etc/hostname; exec {CAPSA} --root {} exec {extra} {id} \
                 sh -c 'ls /proc/self/fd | tr \"\\n\" \" \"; for f in 7 8 9; do readlink /proc/self/fd/$f; done; true'",
                ctx.root.display(),
            ))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // ls's own directory fd is 3.
    let out = exec("");
    assert_ok(&out);
    assert_eq!(stdout(&out), "0 1 2 3 ");
    // --preserve-fds 6: fds 3 to 8 (7 and 8 are open) and nothing above.
    let out = exec("--preserve-fds 6");
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.starts_with("0 1 2 3 7 8 "), "{text}");
    assert!(text.contains(&format!("{}\n", dir.display())), "{text}");
    assert_eq!(text.matches("/etc/hostname").count(), 1, "{text}");
    // The init saw no leaked fd either (it prints, then sleeps).
    let mut init_fds = String::new();
    for _ in 0..1000 {
        init_fds = std::fs::read_to_string(&log).unwrap();
        if !init_fds.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(init_fds, "0 1 2 3 ", "{init_fds}");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}
