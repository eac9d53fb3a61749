//! Mount options real clients send: recursive attributes (`rro`, ...),
//! `nosymfollow`, `tmpcopyup`, and the refusal of options capsa does not
//! know.

mod common;
use common::*;
use serde_json::json;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[test]
fn rro_makes_a_bind_mount_and_its_submounts_read_only() {
    let ctx = Ctx::new("rro");
    let src = ctx.dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let mut c = ctx.sh_config(
        "touch /data/top 2>/dev/null; echo top=$?; touch /data/sub/inner 2>/dev/null; echo sub=$?; \
         touch /plain/sub/inner; echo plain=$?",
    );
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": src,
                       "options": ["rbind", "rro"]}),
    );
    // The same tree without rro: its submount stays writable, so the test
    // above sees the option, not some other read-only cause.
    mounts.push(
        json!({"destination": "/plain", "type": "bind", "source": src,
                       "options": ["rbind", "ro"]}),
    );
    let setup = format!(
        "mount -t tmpfs capsa-rro-test '{}'",
        src.join("sub").display()
    );
    let out = ctx.run_in_private_mountns(&setup, &c);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("top=1"),
        "top of the rro mount was writable: {text}"
    );
    assert!(
        text.contains("sub=1"),
        "submount of the rro mount was writable: {text}"
    );
    assert!(
        text.contains("plain=0"),
        "a plain ro rbind's submount: {text}"
    );
    assert!(!src.join("top").exists());
}

#[test]
fn recursive_nosuid_nodev_noexec_and_nosymfollow_are_applied() {
    let ctx = Ctx::new("rattr");
    let src = ctx.dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let mut c = ctx.sh_config(
        "grep -E ' /data(/sub)? ' /proc/self/mountinfo; \
         ln -s /bin/busybox /sym/link && cat /sym/link >/dev/null 2>&1; echo follow=$?",
    );
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": src,
                       "options": ["rbind", "rnosuid", "rnodev", "rnoexec", "rnoatime"]}),
    );
    mounts.push(
        json!({"destination": "/sym", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosymfollow"]}),
    );
    let setup = format!(
        "mount -t tmpfs capsa-rattr-test '{}'",
        src.join("sub").display()
    );
    let out = ctx.run_in_private_mountns(&setup, &c);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" /data")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        // The per-mount options are the 6th field of mountinfo.
        let opts = l.split(' ').nth(5).unwrap();
        for want in ["nosuid", "nodev", "noexec", "noatime"] {
            assert!(opts.split(',').any(|o| o == want), "{want} missing in {l}");
        }
    }
    assert!(
        text.contains("follow=1"),
        "a symlink was followed on a nosymfollow mount: {text}"
    );
}

/// A tmpfs's `mode=`/`size=` on a bind mount (runtime-tools' mounts test
/// sends them; runc hands them to the kernel, which takes no data for a
/// bind): the bind is made as asked, with a warning that they do nothing.
#[test]
fn filesystem_values_on_a_bind_mount_are_said_to_do_nothing() {
    let ctx = Ctx::new("bindvalues");
    let mut c = ctx.sh_config("grep -c ' /data ' /proc/self/mountinfo");
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": ctx.dir,
        "options": ["nosuid", "mode=755", "size=1k", "bind", "private"]}));
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "1\n");
    assert!(
        stderr(&out).contains(
            "(/data): mode=755,size=1k not applied: a bind mount takes no filesystem options"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_option_of_a_bind_mount_is_refused_by_name() {
    let ctx = Ctx::new("badopt");
    let mut c = ctx.default_config();
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": ctx.dir,
        "options": ["rbind", "rro", "rnosuchthing"]}));
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "mounts[");
    assert_fails_with(&out, "(/data): unknown mount option \"rnosuchthing\"");
    assert!(ctx.state_entries().is_empty());
    // tmpcopyup belongs to tmpfs mounts only.
    let mut c = ctx.default_config();
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": ctx.dir,
        "options": ["rbind", "tmpcopyup"]}));
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(
        &out,
        "(/data): the option \"tmpcopyup\" needs a tmpfs mount",
    );
    assert!(ctx.state_entries().is_empty());
    // capsa builds the cgroup mount itself: it takes no filesystem options.
    let mut c = ctx.default_config();
    for m in c["mounts"].as_array_mut().unwrap() {
        if m["type"] == "cgroup" {
            m["options"]
                .as_array_mut()
                .unwrap()
                .push(json!("clone_children"));
        }
    }
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(
        &out,
        "(/sys/fs/cgroup): unknown mount option \"clone_children\" (a cgroup mount takes no filesystem options)",
    );
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn an_option_a_filesystem_rejects_is_named() {
    let ctx = Ctx::new("fsopt");
    let mut c = ctx.default_config();
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nosuchoption=1"]}));
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "(/data)");
    assert_fails_with(&out, "nosuchoption=1");
    assert!(ctx.state_entries().is_empty());
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings and a value buffer alive for the call.
    unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer of the length passed.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_the_image_directory() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let ctx = Ctx::new("copyup");
    let img = ctx.bundle.join("rootfs/scratch");
    std::fs::create_dir_all(img.join("dir/deeper")).unwrap();
    std::fs::write(img.join("file"), "from the image\n").unwrap();
    std::fs::write(img.join("dir/deeper/f"), "deep\n").unwrap();
    std::os::unix::fs::chown(img.join("file"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(img.join("file"), std::fs::Permissions::from_mode(0o604)).unwrap();
    std::fs::set_permissions(img.join("dir"), std::fs::Permissions::from_mode(0o711)).unwrap();
    // An absolute symlink out of the rootfs: copied as a link, never followed.
    symlink("/etc", img.join("escape")).unwrap();
    std::os::unix::fs::lchown(img.join("escape"), Some(4321), Some(8765)).unwrap();
    let xattr = set_xattr(&img.join("file"), "user.capsa", b"kept");

    let mut c = ctx.sh_config(
        "grep ' /scratch ' /proc/self/mountinfo | grep -c tmpfs; \
         stat -c '%n %u:%g %a' /scratch/file /scratch/dir; stat -c '%n %u:%g %N' /scratch/escape; \
         cat /scratch/file /scratch/dir/deeper/f; echo new > /scratch/new; sleep 100",
    );
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["rw", "nosuid", "nodev", "tmpcopyup"]}));
    ctx.write_config(&c);
    let id = ctx.id("c");
    let log = ctx.dir.join("out.txt");
    ctx.create_logged(&id, &log);
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    if xattr {
        // Seen through the container's own root, in its mount namespace.
        let inside = Path::new(&format!("/proc/{pid}/root/scratch/file")).to_path_buf();
        assert_eq!(
            get_xattr(&inside, "user.capsa").as_deref(),
            Some(&b"kept"[..])
        );
    }
    let text = ctx.start_and_wait_for(&id, &log, "deep\n");
    assert!(text.starts_with("1\n"), "/scratch is not a tmpfs: {text}");
    assert!(text.contains("/scratch/file 1234:5678 604"), "{text}");
    assert!(text.contains("/scratch/dir 0:0 711"), "{text}");
    assert!(
        text.contains("/scratch/escape 4321:8765 '/scratch/escape' -> '/etc'"),
        "{text}"
    );
    assert!(text.contains("from the image\ndeep\n"), "{text}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    // The write went to the tmpfs, not to the image.
    assert!(!img.join("new").exists());
    assert_eq!(
        std::fs::symlink_metadata(img.join("escape")).unwrap().uid(),
        4321
    );
}

#[test]
fn tmpcopyup_of_a_read_only_tmpfs_is_filled_then_read_only() {
    let ctx = Ctx::new("copyro");
    std::fs::create_dir_all(ctx.bundle.join("rootfs/ro")).unwrap();
    std::fs::write(ctx.bundle.join("rootfs/ro/f"), "x\n").unwrap();
    let mut c = ctx.sh_config("cat /ro/f; touch /ro/g 2>/dev/null; echo touch=$?");
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/ro", "type": "tmpfs", "source": "tmpfs",
        "options": ["ro", "tmpcopyup", "mode=755"]}));
    let out = ctx.run(&c);
    assert_ok(&out);
    assert_eq!(stdout(&out), "x\ntouch=1\n");
}

#[test]
fn features_lists_the_new_mount_options() {
    let ctx = Ctx::new("feat");
    let out = ctx.capsa(&["features"]);
    assert_ok(&out);
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for o in [
        "rro",
        "rrw",
        "rnosuid",
        "rnoatime",
        "rsymfollow",
        "nosymfollow",
        "symfollow",
        "tmpcopyup",
    ] {
        assert!(opts.contains(&o), "{o} missing from {opts:?}");
    }
}

#[test]
fn tmpcopyup_through_a_symlinked_destination_stays_in_the_rootfs() {
    let ctx = Ctx::new("copylink");
    let rootfs = ctx.bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc/img")).unwrap();
    std::fs::write(rootfs.join("etc/img/mark"), "image etc\n").unwrap();
    // /scratch in the image points at the host's /etc by an absolute path:
    // inside the container it means the rootfs's /etc.
    std::os::unix::fs::symlink("/etc", rootfs.join("scratch")).unwrap();
    let host_etc: Vec<_> = std::fs::read_dir("/etc")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut c = ctx.sh_config("cat /etc/img/mark; grep -c ' /etc .* - tmpfs ' /proc/self/mountinfo; ls /etc | grep -c '^passwd$'");
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["tmpcopyup"]}));
    let out = ctx.run(&c);
    assert_ok(&out);
    // The tmpfs went over the rootfs's /etc, filled with the image's files.
    assert_eq!(stdout(&out), "image etc\n1\n1\n");
    let after: Vec<_> = std::fs::read_dir("/etc")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(host_etc.len(), after.len(), "host /etc changed");
    assert!(!Path::new("/etc/img").exists());
}
