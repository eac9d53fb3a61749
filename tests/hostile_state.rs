//! Tampered files around the container (issue 16): pid files whose
//! temporary name was planted as a symlink to a host file, state
//! directories replaced by symlinks, and state.json files edited to point
//! at host processes and host cgroups. capsa must neither write, signal
//! nor remove anything of the host's, must not hang, and must say why it
//! refuses.

mod common;
use common::*;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs capsa with `args`, killing it (and failing the test) if it has not
/// ended within `secs` seconds.
#[track_caller]
fn capsa_within(ctx: &Ctx, args: &[&str], secs: u64) -> Output {
    let out_path = ctx.dir.join(".bounded.out");
    let err_path = ctx.dir.join(".bounded.err");
    let mut child = ctx
        .cmd(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("capsa {args:?} still runs after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// `create --pid-file D/init.pid` and `exec --pid-file D/e.pid` with the
/// temporary names (`D/.init.pid.tmp`, `D/.e.pid.tmp`) planted as
/// symlinks to a host file: the host file keeps its bytes, the pid files
/// hold the pids.
#[test]
fn pid_files_are_not_written_through_planted_symlinks() {
    let ctx = Ctx::new("hstate-pidfile");
    let victim = ctx.dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let dangling = ctx.dir.join("created-through-link");
    let d = ctx.dir.join("pids");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::symlink(&victim, d.join(".init.pid.tmp")).unwrap();
    std::os::unix::fs::symlink(&dangling, d.join(".e.pid.tmp")).unwrap();

    let mut c = ctx.sh_config("sleep 1000000");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    let pid_file = d.join("init.pid");
    assert_ok(&ctx.capsa(&[
        "create",
        "--bundle",
        ctx.bundle_str(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(!d.join(".init.pid.tmp").exists());
    assert_ok(&ctx.capsa(&["start", &id]));

    let e_pid = d.join("e.pid");
    assert_ok(&ctx.capsa(&[
        "exec",
        "--detach",
        "--pid-file",
        e_pid.to_str().unwrap(),
        &id,
        "sleep",
        "1000000",
    ]));
    assert!(!dangling.exists(), "exec wrote through the planted symlink");
    let exec_pid: i64 = std::fs::read_to_string(&e_pid).unwrap().parse().unwrap();
    assert!(
        std::fs::read_to_string(format!("/proc/{exec_pid}/cmdline"))
            .unwrap()
            .starts_with("sleep\0"),
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

/// `mv ROOT/ID X; ln -s X ROOT/ID`: every command refuses at once with a
/// clear error (they used to spin at 100% CPU), and nothing reaches the
/// container through the link.
#[test]
fn a_symlinked_state_dir_is_refused_without_spinning() {
    let ctx = Ctx::new("hstate-link");
    let mut c = ctx.sh_config("sleep 1000000");
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    let dir = ctx.root.join(&id);
    let moved = ctx.dir.join("moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &dir).unwrap();
    // Put back, whatever happens below, so the container can be deleted.
    struct Restore<'a>(&'a Path, &'a Path);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
            let _ = std::fs::rename(self.1, self.0);
        }
    }
    let restore = Restore(&dir, &moved);

    for args in [
        vec!["start", id.as_str()],
        vec!["pause", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
        vec!["delete", "--force", id.as_str()],
        vec!["state", id.as_str()],
    ] {
        let out = capsa_within(&ctx, &args, 10);
        assert_fails_with(&out, "is not a directory (a symlink?); refusing to use it");
    }
    // list skips it rather than following it.
    let out = capsa_within(&ctx, &["list", "-q"], 10);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    // The init was neither started nor killed.
    assert!(pid_exists(pid));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(!stat.contains(") Z "), "{stat}");
    drop(restore);
    assert_eq!(ctx.status(&id), "created");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}
