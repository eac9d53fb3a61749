//! capsa at the host's limits: a full or read-only --root, a low fd limit,
//! an exhausted pid limit, no /proc, no cgroup mounts. Each gives a clear
//! error naming the cause, and leaves no process, cgroup, mount or state
//! entry behind; once the limit is lifted, the same commands work.

mod common;
mod residue;

use common::*;
use nix::mount::{MsFlags, mount, umount2};
use residue::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A tmpfs mounted for the test (outside its directory, whose mounts must
/// stay none), unmounted and removed when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(ctx: &Ctx, name: &str, options: &str) -> Tmpfs {
        let path = std::env::temp_dir().join(format!("{}-{name}", ctx.name));
        std::fs::create_dir_all(&path).unwrap();
        mount(
            Some("tmpfs"),
            &path,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(options),
        )
        .unwrap();
        Tmpfs(path)
    }

    fn remount(&self, flags: MsFlags) {
        mount(
            None::<&str>,
            &self.0,
            None::<&str>,
            MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )
        .unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A test whose containers run `sleep 1000`, marked.
fn sleeping(name: &str) -> Ctx {
    become_subreaper();
    let ctx = Ctx::new(name);
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    c["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(mark_entry(&ctx.name).into());
    ctx.write_config(&c);
    ctx
}

/// capsa with `--root root`, run by `sh -c PRELUDE; exec capsa ...` (to
/// set a limit or leave a namespace first), output to files.
fn capsa_in(ctx: &Ctx, root: &Path, prelude: &str, args: &[&str]) -> Output {
    let out_path = ctx.dir.join("limited.out");
    let err_path = ctx.dir.join("limited.err");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{prelude}\nexec \"$@\""))
        .arg("sh")
        .arg(CAPSA)
        .arg("--root")
        .arg(root)
        .args(args)
        .env(MARK, &ctx.name)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

/// A failure whose message is capsa's own one line, naming `cause`.
#[track_caller]
fn assert_clear_failure(o: &Output, cause: &str) {
    assert_fails_with(o, cause);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let err = stderr(o);
    assert!(err.starts_with("capsa: "), "{err:?}");
}

/// The same for `exec`, which exits 255 (as runc's) with "exec failed:".
#[track_caller]
fn assert_clear_exec_failure(o: &Output, cause: &str) {
    assert_fails_with(o, cause);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(o));
    let err = stderr(o);
    assert!(err.starts_with("capsa: exec failed: "), "{err:?}");
}

#[test]
fn full_state_root() {
    let ctx = sleeping("full");
    let id = ctx.id("c");
    // Out of space: the state cannot be written.
    let root = Tmpfs::new(&ctx, "small", "size=64k");
    let mut fill = std::fs::File::create(root.0.join("fill")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut fill, &block).is_ok() {}
    drop(fill);
    let out = capsa_in(
        &ctx,
        &root.0,
        "",
        &["create", "--bundle", ctx.bundle_str(), &id],
    );
    assert_clear_failure(&out, "no space left on device");
    assert!(stderr(&out).contains("state.json"), "{}", stderr(&out));
    assert_eq!(entries(&root.0), ["fill"]);
    assert_none_left(&ctx.dir.join("none"), &ctx.dir, &[&id], &ctx.name);
    // With room again, the same create works.
    std::fs::remove_file(root.0.join("fill")).unwrap();
    assert_ok(&capsa_in(
        &ctx,
        &root.0,
        "",
        &["create", "--bundle", ctx.bundle_str(), &id],
    ));
    assert_ok(&capsa_in(&ctx, &root.0, "", &["delete", "--force", &id]));
    assert_none_left(&root.0, &ctx.dir, &[&id], &ctx.name);
    drop(root);

    // Out of inodes: not even the state directory can be made.
    let root = Tmpfs::new(&ctx, "few", "nr_inodes=2");
    std::fs::write(root.0.join("fill"), "").unwrap();
    let out = capsa_in(
        &ctx,
        &root.0,
        "",
        &["create", "--bundle", ctx.bundle_str(), &id],
    );
    assert_clear_failure(&out, "no space left on device");
    assert!(
        stderr(&out).contains("create state dir"),
        "{}",
        stderr(&out)
    );
    assert_eq!(entries(&root.0), ["fill"]);
    assert_none_left(&ctx.dir.join("none"), &ctx.dir, &[&id], &ctx.name);
}

#[test]
fn read_only_state_root() {
    let ctx = sleeping("rofs");
    let id = ctx.id("c");
    let root = Tmpfs::new(&ctx, "ro", "size=1m");
    root.remount(MsFlags::MS_RDONLY);
    let out = capsa_in(
        &ctx,
        &root.0,
        "",
        &["create", "--bundle", ctx.bundle_str(), &id],
    );
    assert_clear_failure(&out, "read-only file system");
    assert!(entries(&root.0).is_empty());
    assert_none_left(&root.0, &ctx.dir, &[&id], &ctx.name);

    // A container whose root turns read-only: it can still be looked at;
    // delete kills it but cannot remove its state, and says so; the next
    // delete, with the root writable again, finishes.
    root.remount(MsFlags::empty());
    assert_ok(&capsa_in(
        &ctx,
        &root.0,
        "",
        &["create", "--bundle", ctx.bundle_str(), &id],
    ));
    assert_ok(&capsa_in(&ctx, &root.0, "", &["start", &id]));
    root.remount(MsFlags::MS_RDONLY);
    let st = capsa_in(&ctx, &root.0, "", &["state", &id]);
    assert_ok(&st);
    assert!(stdout(&st).contains("\"running\""), "{}", stdout(&st));
    assert_ok(&capsa_in(&ctx, &root.0, "", &["list"]));
    let out = capsa_in(&ctx, &root.0, "", &["delete", "--force", &id]);
    assert_clear_failure(&out, "read-only file system");
    let st = capsa_in(&ctx, &root.0, "", &["state", &id]);
    assert!(stdout(&st).contains("\"stopped\""), "{}", stdout(&st));
    root.remount(MsFlags::empty());
    assert_ok(&capsa_in(&ctx, &root.0, "", &["delete", &id]));
    assert_none_left(&root.0, &ctx.dir, &[&id], &ctx.name);
}

/// Every soft fd limit from 4 (below that the dynamic loader fails before
/// capsa runs) up: create, start, exec and delete each either work or
/// fail naming the fd limit, and a failed create leaves nothing. (The init
/// inherits one file per cgroup hierarchy to join them by itself: about
/// 20 fds on a host with ten v1 hierarchies.)
#[test]
fn low_fd_limits() {
    let ctx = sleeping("nofile");
    let (mut failed, mut worked) = (0, 0);
    for n in (4..=16).chain([20, 24, 32]) {
        let id = ctx.id(&format!("n{n}"));
        let limit = format!("ulimit -S -n {n}");
        let out = capsa_in(
            &ctx,
            &ctx.root,
            &limit,
            &["create", "--bundle", ctx.bundle_str(), &id],
        );
        if !out.status.success() {
            assert_clear_failure(&out, "too many open files");
            assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
            failed += 1;
            continue;
        }
        worked += 1;
        for args in [vec!["start", &id], vec!["exec", &id, "true"]] {
            let out = capsa_in(&ctx, &ctx.root, &limit, &args);
            if !out.status.success() && args[0] == "exec" {
                assert_clear_exec_failure(&out, "too many open files");
            } else if !out.status.success() {
                assert_clear_failure(&out, "too many open files");
            }
        }
        let out = capsa_in(&ctx, &ctx.root, &limit, &["delete", "--force", &id]);
        if !out.status.success() {
            assert_clear_failure(&out, "too many open files");
            assert_ok(&ctx.capsa(&["delete", "--force", &id]));
        }
        assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
    }
    assert!(failed > 0 && worked > 0, "failed {failed}, worked {worked}");
}

/// The v1 pids hierarchy's mount point.
fn pids_hierarchy() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split_whitespace();
            let mountpoint = pre.split_whitespace().nth(4)?;
            (post.next()? == "cgroup" && post.nth(1)?.split(',').any(|o| o == "pids"))
                .then(|| PathBuf::from(mountpoint))
        })
        .expect("no v1 pids cgroup mounted (this test needs one)")
}

/// A cgroup allowing one process (capsa itself), removed when dropped.
struct PidsLimit(PathBuf);

impl PidsLimit {
    fn new(name: &str) -> PidsLimit {
        let dir = pids_hierarchy().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("pids.max"), "1").unwrap();
        PidsLimit(dir)
    }

    /// A prelude moving the shell (then capsa) in.
    fn enter(&self) -> String {
        format!("echo $$ > {}/cgroup.procs", self.0.display())
    }
}

impl Drop for PidsLimit {
    fn drop(&mut self) {
        for _ in 0..500 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[test]
fn exhausted_pid_limit() {
    let ctx = sleeping("pids");
    let id = ctx.id("c");
    let limit = PidsLimit::new(&format!("{}-limit", ctx.name));
    let out = capsa_in(
        &ctx,
        &ctx.root,
        &limit.enter(),
        &["create", "--bundle", ctx.bundle_str(), &id],
    );
    assert_clear_failure(
        &out,
        "clone container init: resource temporarily unavailable",
    );
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);

    // exec into a running container from there: refused, the container
    // goes on as it was.
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    assert_ok(&ctx.capsa(&["start", &id]));
    let out = capsa_in(&ctx, &ctx.root, &limit.enter(), &["exec", &id, "true"]);
    assert_clear_exec_failure(&out, "clone exec process: resource temporarily unavailable");
    assert_eq!(marked_processes(&ctx.name).len(), 1);
    let out = ctx.capsa(&["exec", &id, "echo", "ok"]);
    assert_eq!(stdout(&out), "ok\n");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}

/// Without /proc, capsa cannot tell its own start time (nor any other
/// process's): create refuses before it makes anything; delete --force of
/// a running container still finds its processes through its cgroups.
#[test]
fn no_proc() {
    let ctx = sleeping("noproc");
    let id = ctx.id("c");
    let no_proc = "umount -l /proc || exit 99";
    let out = capsa_in(
        &ctx,
        &ctx.root,
        &format!(
            "exec unshare --mount --propagation private sh -c '{no_proc}; exec \"$0\" \"$@\"' \"$@\""
        ),
        &["create", "--bundle", ctx.bundle_str(), &id],
    );
    assert_clear_failure(&out, "is /proc mounted?");
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);

    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    assert_ok(&ctx.capsa(&["start", &id]));
    let out = capsa_in(
        &ctx,
        &ctx.root,
        &format!(
            "exec unshare --mount --propagation private sh -c '{no_proc}; exec \"$0\" \"$@\"' \"$@\""
        ),
        &["delete", "--force", &id],
    );
    assert_ok(&out);
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}

#[test]
fn no_cgroup_mounts() {
    let ctx = sleeping("nocg");
    let id = ctx.id("c");
    let out = capsa_in(
        &ctx,
        &ctx.root,
        "exec unshare --mount --propagation private sh -c 'umount -R /sys/fs/cgroup || exit 99; exec \"$0\" \"$@\"' \"$@\"",
        &["create", "--bundle", ctx.bundle_str(), &id],
    );
    assert_clear_failure(&out, "cgroups: no cgroup filesystem is mounted");
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}
