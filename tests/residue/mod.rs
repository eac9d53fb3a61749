//! What a container can leave behind on the host, looked up directly in
//! /proc and /sys (never through capsa): processes, cgroups, mounts, open
//! fds and state entries. Used by the crash, stress and limits tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The environment variable each of these tests puts in its containers'
/// process env and in capsa's own env (which the init inherits until it
/// execs), so every process a test made can be found.
pub const MARK: &str = "CAPSA_RESIDUE_MARK";

/// `MARK=value`, as it appears in /proc/PID/environ.
pub fn mark_entry(value: &str) -> String {
    format!("{MARK}={value}")
}

/// Live processes (zombies have no environment) whose environment has
/// `MARK=value`.
pub fn marked_processes(value: &str) -> Vec<i32> {
    let want = mark_entry(value);
    let mut out = Vec::new();
    for pid in all_pids() {
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ"))
            && env.split(|b| *b == 0).any(|e| e == want.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Every cgroup directory (in every mounted hierarchy) whose name is one of
/// `names`, or starts with `prefix` when given.
pub fn cgroup_dirs(names: &[&str], prefix: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in cgroup_mounts() {
        walk(&root, &mut |p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if names.contains(&name) || prefix.is_some_and(|x| name.starts_with(x)) {
                out.push(p.to_path_buf());
            }
        });
    }
    out.sort();
    out.dedup();
    out
}

/// Every cgroup directory on the host.
pub fn all_cgroup_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in cgroup_mounts() {
        walk(&root, &mut |p| out.push(p.to_path_buf()));
    }
    out.sort();
    out.dedup();
    out
}

fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mountpoint = pre.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mountpoint))
        })
        .collect()
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            f(&p);
            walk(&p, f);
        }
    }
}

/// Lines of this process's mountinfo (the host's mount namespace) that
/// mention `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .map(String::from)
        .collect()
}

/// Open fds, of any process, on files under `path`.
pub fn fds_under(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for pid in all_pids() {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(target) = std::fs::read_link(e.path())
                && target.to_string_lossy().starts_with(&p)
            {
                out.push(format!(
                    "pid {pid} fd {}: {}",
                    e.file_name().to_string_lossy(),
                    target.display()
                ));
            }
        }
    }
    out
}

/// The fds this process has open, with what they are, leaving out those
/// on /proc (the listing's own, and the reaper thread's brief reads).
pub fn own_fds() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let t = std::fs::read_link(e.path()).ok()?;
            (!t.starts_with("/proc"))
                .then(|| format!("{} -> {}", e.file_name().to_string_lossy(), t.display()))
        })
        .collect();
    out.sort();
    out
}

/// Entries of a directory (none if it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes this test process the reaper of its orphaned descendants (the
/// inits of containers whose capsa has exited, the processes of a killed
/// `capsa exec`) and reaps them in a background thread, as a container
/// manager's shim does. The host's pid 1 would otherwise inherit them, and
/// on a host whose pid 1 never reaps, a zombie whose parent is outside the
/// container's PID namespace keeps that namespace's init from finishing
/// its exit (the kernel waits for every process of the namespace to be
/// reaped), so delete would wait for it in vain.
///
/// Only zombies in a nested PID namespace are reaped: never a process this
/// test spawned itself (whose status a `Child` waits for).
pub fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        std::thread::spawn(|| {
            loop {
                reap_container_zombies();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
    });
}

fn reap_container_zombies() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let me = std::process::id().to_string();
    for pid in all_pids() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        if field("State:").starts_with('Z')
            && field("PPid:") == me
            && field("NSpid:").split_whitespace().count() > 1
        {
            let _ = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Waits (boundedly) until the process `pid` that started at `start` is
/// gone, reaping it if it became our child; panics if it is still alive.
pub fn assert_gone(pid: i32, start: u64, what: &str) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    if pid <= 0 {
        return;
    }
    for _ in 0..1000 {
        match capsa::sys::proc_stat(pid) {
            None => return,
            Some((s, _)) if s != start => return,
            Some((_, 'Z')) => {
                match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => {}
                    // Reaped, or not ours to reap: a zombie holds nothing
                    // but its pid.
                    _ => return,
                }
            }
            Some(_) => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{what} (pid {pid}) is still alive");
}

/// Reaps, without waiting, every zombie among `pids` that is our child.
pub fn reap(pids: &[i32]) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    for pid in pids {
        let _ = waitpid(nix::unistd::Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
    }
}

/// Everything the containers `ids` of a test (state root `root`, test
/// directory `dir`, processes marked with `mark`) could have left behind.
#[track_caller]
pub fn assert_none_left(root: &Path, dir: &Path, ids: &[&str], mark: &str) {
    // Processes die asynchronously after SIGKILL: wait for them, boundedly.
    let mut procs = marked_processes(mark);
    for _ in 0..500 {
        if procs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        procs = marked_processes(mark);
    }
    let procs: Vec<String> = procs
        .iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let entries = entries(root);
    assert!(entries.is_empty(), "entries left under --root: {entries:?}");
    let cgroups = cgroup_dirs(ids, None);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let mounts = mounts_under(dir);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    // A process another test thread is spawning holds copies of this
    // process's fds between its fork and its exec (they are close-on-exec):
    // only an fd that stays is a leak.
    let mut fds = fds_under(dir);
    for _ in 0..200 {
        if fds.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        fds = fds_under(dir);
    }
    assert!(fds.is_empty(), "fds left: {fds:?}");
}
