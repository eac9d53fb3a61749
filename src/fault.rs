//! Crash points: named places in `create`, `start`, `exec` and `delete`
//! where a test build of capsa can be made to die or to stop, so tests can
//! check that whatever a SIGKILL there leaves behind is recognised and
//! cleaned up by later commands.
//!
//! Only a build with the cargo feature `fault-injection` (what `make test`
//! builds into `target/fault`) looks at the environment; in any other build
//! [`point`] is an empty inline function, so the shipped binary has no such
//! code path at all.
//!
//! `CAPSA_FAULT=POINT[:ACTION]` picks the point; ACTION is `kill` (the
//! default: capsa sends itself SIGKILL there) or `pause` (capsa stops there
//! until something kills it). Either way, when `CAPSA_FAULT_READY=FILE` is
//! set, capsa first writes its pid to FILE (atomically), so a test knows the
//! point was reached.

/// Every crash point, in the order a lifecycle reaches them.
pub const POINTS: &[&str] = &[
    // create: the state directory exists, nothing in it yet.
    "create:dir",
    // create: the first state (status creating, no init yet) is written.
    "create:state",
    // create: the cgroups exist with their limits; no init yet.
    "create:cgroups",
    // create: the init exists (in its cgroups, setting the container up)
    // and is on record.
    "create:cloned",
    // create: the init has set the container up and waits for the commit.
    "create:ready",
    // create: the final state (created) is written, the init not told yet.
    "create:saved",
    // create: the init was told; it waits for start on its own.
    "create:committed",
    // start: connected to the init, which goes on to exec the process.
    "start:connected",
    // exec: the new process exists (it joins the container's cgroups
    // itself), not yet told to go on.
    "exec:cloned",
    // exec: the process runs in the container; capsa has not returned.
    "exec:started",
    // delete: every process of the container is dead.
    "delete:killed",
    // delete: the cgroups are removed.
    "delete:cgroups",
    // delete: state.json is removed, the rest of the directory not yet.
    "delete:unlinked",
];

/// A crash point named `name` (one of [`POINTS`]).
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown crash point {name}");
    let Ok(want) = std::env::var("CAPSA_FAULT") else {
        return;
    };
    let (point, action) = match want.rsplit_once(':') {
        Some((p, a)) if a == "kill" || a == "pause" => (p, a),
        _ => (want.as_str(), "kill"),
    };
    if point != name {
        return;
    }
    if let Some(file) = std::env::var_os("CAPSA_FAULT_READY") {
        let file = std::path::PathBuf::from(file);
        let tmp = file.with_extension("tmp");
        if std::fs::write(&tmp, std::process::id().to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
    if action == "pause" {
        loop {
            nix::unistd::pause();
        }
    }
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught or blocked; nothing runs past it.
    std::process::abort();
}

/// A crash point: nothing at all outside test builds.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
