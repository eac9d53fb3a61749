//! The six kinds of lifecycle hooks. Each hook gets the container's state
//! JSON on stdin, its own args and env, and an optional timeout. Where a
//! hook runs (runtime or container namespace) is decided by the caller;
//! what a failure means is decided here, per the runtime-spec.

use crate::error::{Error, Result};
use crate::logging;
use crate::sys::PidFd;
use oci_spec::runtime::{Hook, Hooks};
use std::ffi::CString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// Poststart and poststop failures are only warnings; the others abort.
    pub fn fatal(self) -> bool {
        !matches!(self, Kind::Poststart | Kind::Poststop)
    }

    fn list(self, hooks: &Hooks) -> &Option<Vec<Hook>> {
        match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        }
    }
}

/// Hooks of a kind, from a config that may have none.
pub fn of(hooks: Option<&Hooks>, kind: Kind) -> &[Hook] {
    hooks.and_then(|h| kind.list(h).as_deref()).unwrap_or(&[])
}

/// Runs every hook of `kind` in order with `state` (JSON) on stdin. A
/// failing fatal hook stops the rest and is returned as the error; a
/// failing non-fatal one is logged as a warning and the rest still run.
pub fn run(hooks: Option<&Hooks>, kind: Kind, state: &serde_json::Value) -> Result<()> {
    run_with(hooks, kind, state, None)
}

/// [`run`] for the hooks a container's init runs in the container's
/// namespaces (createContainer, startContainer): each is exec'd through
/// the sealed stub, like the container's own process, so a hook file the
/// image controls cannot make the kernel run capsa there (see
/// [`crate::exec_stub`]).
pub fn run_in_container(
    hooks: Option<&Hooks>,
    kind: Kind,
    state: &serde_json::Value,
) -> Result<()> {
    run_with(hooks, kind, state, crate::exec_stub::get())
}

fn run_with(
    hooks: Option<&Hooks>,
    kind: Kind,
    state: &serde_json::Value,
    stub: Option<&crate::exec_stub::Stub>,
) -> Result<()> {
    let input = state.to_string();
    for (i, hook) in of(hooks, kind).iter().enumerate() {
        if let Err(e) = run_one(hook, &input, stub) {
            let msg = format!(
                "hooks.{}[{i}] ({}): {e}",
                kind.name(),
                hook.path().display()
            );
            if kind.fatal() {
                return Err(Error::msg(msg));
            }
            logging::warn(&msg);
        }
    }
    Ok(())
}

fn run_one(
    hook: &Hook,
    input: &str,
    stub: Option<&crate::exec_stub::Stub>,
) -> std::result::Result<(), String> {
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    if let Some(stub) = stub {
        let cstr = |s: &str| CString::new(s).map_err(|_| format!("NUL byte in {s:?}"));
        let path = cstr(&hook.path().to_string_lossy())?;
        let argv = args
            .iter()
            .map(|a| cstr(a))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let env = hook
            .env()
            .iter()
            .flatten()
            .map(|e| cstr(e))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // A failing exec shows as the hook's exit status (126, 127).
        let launch = stub.launch(&path, &argv, &env, None);
        // SAFETY: Launch::exec only makes system calls. It replaces the
        // forked child once its stdin is set up; std's spawn reads the exec
        // through its close-on-exec pipe as usual.
        unsafe {
            cmd.pre_exec(move || Err(std::io::Error::from_raw_os_error(launch.exec() as i32)));
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("start: {e}"))?;
    let pidfd = PidFd::open(child.id() as i32).ok();
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(input.as_bytes());
    }
    if let (Some(t), Some(fd)) = (hook.timeout(), &pidfd) {
        if t <= 0 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("invalid timeout {t}"));
        }
        if !fd.wait_exit(t.saturating_mul(1000).min(i32::MAX as i64) as i32) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {t}s"));
        }
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("failed: {status}"))
    }
}
