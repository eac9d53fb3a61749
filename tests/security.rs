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
        "capsa"
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
    assert_eq!(stdout(&out), "capsa\nno-readlink\nno-read\nfds-checked\n");
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
