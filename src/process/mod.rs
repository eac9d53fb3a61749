//! Creating a container's init: one clone straight into the new
//! namespaces (no re-exec of capsa, no intermediate process), a short
//! handshake with the child over the sync channel, and the state written
//! before the child is told it may outlive us.

pub mod exec;
pub mod init;
pub mod sync;

use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::spec::Bundle;
use crate::state::{EXEC_SOCKET, Locked, State};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use sync::Msg;

pub struct CreateOptions {
    pub id: String,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Where to send the pty master (`--console-socket`).
    pub console_socket: Option<PathBuf>,
    /// Foreground `run`: capsa itself relays the container's pty.
    pub relay_tty: bool,
    /// The signal mask to give the init (the caller's, before capsa blocked
    /// any signals of its own).
    pub sigmask: SigSet,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// The exec socket is bound and connected through the state directory's
/// /proc/self/fd name, which keeps the address short however long --root is.
pub fn exec_socket_addr(dir: &OwnedFd) -> Result<UnixAddr> {
    let p = format!("/proc/self/fd/{}/{EXEC_SOCKET}", dir.as_raw_fd());
    UnixAddr::new(p.as_str()).ctx(|| "exec socket address")
}

fn exec_listener(locked: &Locked) -> Result<OwnedFd> {
    let dir = nix::fcntl::open(
        &locked.dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", locked.dir.display()))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "exec socket")?;
    bind(sock.as_raw_fd(), &exec_socket_addr(&dir)?).ctx(|| "bind exec socket")?;
    listen(&sock, Backlog::new(1).expect("valid backlog")).ctx(|| "listen on exec socket")?;
    Ok(sock)
}

/// The container created: its state, and the pty master when capsa
/// relays the terminal itself.
pub struct Created {
    pub state: State,
    pub pty_master: Option<OwnedFd>,
}

/// Where the init sends the pty master: the client's console socket, or
/// our end of a socket pair when capsa relays the terminal itself.
fn console(bundle: &Bundle, opts: &CreateOptions) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    match (&opts.console_socket, terminal) {
        (Some(_), false) => Err(Error::msg(
            "--console-socket given but process.terminal is not set in config.json",
        )),
        (Some(path), true) => Ok((Some(crate::tty::connect(path)?), None)),
        (None, true) if opts.relay_tty => {
            let (a, b) = crate::tty::relay_pair()?;
            Ok((Some(a), Some(b)))
        }
        (None, true) => Err(Error::msg(
            "process.terminal is set: a --console-socket is needed to receive the terminal \
             (or use `run` in the foreground)",
        )),
        (None, false) => Ok((None, None)),
    }
}

/// The init's command name from the clone until it execs the container's
/// process: with the exec socket, what tells an init waiting for `start`
/// from one that a `start` killed before it removed the socket released.
pub const INIT_COMM: &str = "capsa-init";

/// Creates the container described by `bundle` in the locked state dir,
/// saving `st` (marked creating) before it makes anything and again once
/// the init exists: on success the init waits for `start` and the state,
/// no longer marked, is on disk; on failure the init is gone (and with it
/// every mount it made) and so are its cgroups.
pub fn create(
    bundle: &Bundle,
    locked: &Locked,
    opts: &CreateOptions,
    st: &mut State,
) -> Result<Created> {
    let plan = namespaces::plan(&bundle.spec);
    let mut cgroup = cgroups::for_container(&bundle.spec, &opts.id, opts.systemd_cgroup)?;
    st.cgroup = Some(cgroups::with_planned_dirs(cgroup.record()));
    locked.save(st)?;
    crate::fault::point("create:state");
    // The cgroups exist, with their limits, before the init does: it joins
    // them first thing (see cgroups::join). On failure from here on, the
    // caller removes them (the state records them as planned).
    // With the systemd driver the cgroup is a unit systemd makes with the
    // init in it, once the init exists (see cgroups::systemd::place).
    let systemd = cgroup.record().unit.is_some();
    let join = if systemd {
        None
    } else {
        prepare_cgroup(cgroup.as_mut())?
    };
    let joins = join.is_some() || systemd;
    crate::fault::point("create:cgroups");
    crate::logging::phase("cgroups");
    let ns_fds = plan.open()?;
    let (console_child, console_parent) = console(bundle, opts)?;
    let listener = exec_listener(locked)?;
    let (parent, child) = sync::pair()?;
    plan.join_pid(&ns_fds)?;

    let flags = plan.clone_flags.bits();
    // The init is born non-dumpable (visible from the clone on in a PID
    // namespace it joins), except without root, where we must write its id
    // maps first (see init::setup).
    if nix::unistd::geteuid().is_root() {
        init::protect_binary();
    }
    crate::logging::phase("prepare");
    let own_comm = nix::sys::prctl::get_name().ok();
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(INIT_COMM).expect("no NUL"));
    let cloned = crate::sys::clone_into_cgroup(flags, join.as_ref().and_then(|j| j.cgroup_fd()))
        .ctx(|| "clone container init");
    if let Ok((Some(_), _)) | Err(_) = cloned
        && let Some(c) = &own_comm
    {
        let _ = nix::sys::prctl::set_name(c);
    }
    let pid = match cloned? {
        (None, born) => {
            drop(parent);
            locked.release_in_child();
            init::run(init::Init {
                id: &opts.id,
                spec: &bundle.spec,
                bundle: &bundle.dir,
                rootfs: &bundle.rootfs,
                ns: &plan,
                ns_fds,
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                keep_fds: opts.preserve_fds.max(init::listen_fds()),
                console: console_child,
                chan: child,
                exec_listener: listener,
                sigmask: opts.sigmask,
                cgroup: join.map(|j| (j, born)),
            })
        }
        (Some(pid), _) => pid,
    };
    drop(join);
    drop(child);
    drop(listener);
    drop(ns_fds);
    drop(console_child);
    crate::logging::phase("clone");
    // The init waits for our go-ahead (sent in finish_create) before it
    // does anything of the container's.
    let placed = if systemd {
        cgroups::systemd::place(
            cgroup.as_mut(),
            pid.as_raw(),
            bundle.spec.annotations().as_ref(),
        )
    } else {
        Ok(())
    };
    let cg = joins.then(|| cgroup.record().clone());
    let result = placed
        .and_then(|()| finish_create(bundle, locked, opts, pid, &parent, cg.as_ref(), &plan, st))
        .and_then(|state| {
            let pty_master = match &console_parent {
                Some(sock) => Some(crate::tty::recv_fd(std::os::fd::AsFd::as_fd(sock))?),
                None => None,
            };
            Ok(Created { state, pty_master })
        })
        // The init's own report, when it failed first (say, joining its
        // cgroups) and our talking to it failed because of that.
        .map_err(|e| parent.pending_fail().map(Error::Msg).unwrap_or(e));
    if result.is_err() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        let _ = cgroups::destroy(cgroup.record());
    }
    result
}

/// The cgroup setup of `create`: directories and limits, and the files the
/// init joins them through. Without root (rootless), a hierarchy the caller
/// may not write is skipped with a warning, as runc does: the container
/// runs without limits and without a cgroup of its own (pause, ps and
/// update then say so; the state records no cgroup); where the hierarchy is
/// delegated to the caller, the cgroup is made and the limits applied.
fn prepare_cgroup(m: &mut dyn cgroups::Manager) -> Result<Option<cgroups::join::Join>> {
    match cgroups::prepare(m) {
        Ok(j) => Ok(Some(j)),
        Err(e) if !nix::unistd::geteuid().is_root() => {
            let _ = cgroups::destroy(m.record());
            if m.record().resources.is_some() {
                crate::logging::warn(&format!(
                    "rootless: cgroups: {e}; linux.resources are not applied"
                ));
            } else {
                crate::logging::debug(&format!(
                    "rootless: cgroups: {e}; the container has no cgroup of its own"
                ));
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Puts the new init (our child, so its pid cannot be reused yet) on
/// record, with its start time.
fn record_init(locked: &Locked, st: &mut State, pid: Pid) -> Result<()> {
    let (start, _) = crate::sys::proc_stat(pid.as_raw())
        .ok_or_else(|| Error::msg("container init exited during setup"))?;
    st.pid = pid.as_raw();
    st.pid_start = start;
    locked.save(st)
}

#[allow(clippy::too_many_arguments)]
fn finish_create(
    bundle: &Bundle,
    locked: &Locked,
    opts: &CreateOptions,
    pid: Pid,
    chan: &sync::Channel,
    cgroup: Option<&cgroups::Record>,
    plan: &namespaces::Plan,
    st: &mut State,
) -> Result<State> {
    let gone = "container init exited during setup";
    if plan
        .clone_flags
        .contains(nix::sched::CloneFlags::CLONE_NEWUSER)
    {
        namespaces::write_id_maps(&bundle.spec, pid)?;
    }
    chan.send(&Msg::Continue)?;
    // On record while the init sets the container up (in parallel). Should
    // capsa die before this, the init finds the channel closed at its next
    // message and exits, and delete waits for it to leave its cgroups.
    record_init(locked, st, pid)?;
    crate::fault::point("create:cloned");
    let mut idmapped = crate::rootfs::idmap::Builder::new(
        &bundle.spec,
        &bundle.dir,
        pid,
        plan.clone_flags
            .contains(nix::sched::CloneFlags::CLONE_NEWUSER),
    );
    loop {
        let (msg, fd) = match chan.recv_with_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        match msg {
            Some(Msg::Ready) => break,
            Some(Msg::Seccomp) => {
                let listener = fd.ok_or_else(|| Error::msg("seccomp: no listener received"))?;
                let seccomp = bundle
                    .spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.seccomp().as_ref());
                let seccomp = seccomp.ok_or_else(|| Error::msg("unexpected seccomp listener"))?;
                let state = hook_state(&opts.id, bundle, pid, "creating");
                let listener = std::os::fd::AsFd::as_fd(&listener);
                crate::seccomp::send_listener(seccomp, listener, pid.as_raw(), &state)?;
                chan.send(&Msg::SeccompDone)?;
            }
            Some(Msg::Hooks) => {
                let hooks = bundle.spec.hooks().as_ref();
                // The spec names no status for the legacy prestart hook;
                // runtime-tools' hooks_stdin expects "created" (runc sends
                // "creating"). The createRuntime hooks, defined with the
                // create operation, see it as still "creating".
                let prestart = hook_state(&opts.id, bundle, pid, "created");
                crate::hooks::run(hooks, crate::hooks::Kind::Prestart, &prestart)?;
                let state = hook_state(&opts.id, bundle, pid, "creating");
                crate::hooks::run(hooks, crate::hooks::Kind::CreateRuntime, &state)?;
                chan.send(&Msg::HooksDone)?;
            }
            Some(Msg::IdmapMount(i)) => {
                let tree = idmapped.build(i)?;
                chan.send_with_fd(&Msg::IdmapMountFd, Some(std::os::fd::AsFd::as_fd(&tree)))?;
            }
            Some(Msg::Fail(m)) => return Err(Error::Msg(m)),
            Some(m) => return Err(Error::msg(format!("sync socket: unexpected {m:?}"))),
            None => return Err(Error::msg(gone)),
        }
    }
    crate::fault::point("create:ready");
    let init = crate::state::ProcessId {
        pid: st.pid,
        start: st.pid_start,
    };
    if !init.is_alive() {
        return Err(Error::msg(gone));
    }
    st.created = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    st.cgroup = cgroup.cloned();
    st.creating = None;
    crate::logging::phase("init ready");
    locked.save(st)?;
    crate::fault::point("create:saved");
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid.as_raw())?;
    }
    chan.send(&Msg::Commit)?;
    crate::logging::phase("state saved");
    crate::fault::point("create:committed");
    Ok(st.clone())
}

/// The state hooks in the runtime namespace read on stdin.
fn hook_state(id: &str, bundle: &Bundle, pid: Pid, status: &str) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": id,
        "status": status,
        "pid": pid.as_raw(),
        "bundle": bundle.dir,
    });
    if let Some(a) = bundle.spec.annotations().as_ref().filter(|a| !a.is_empty()) {
        v["annotations"] = serde_json::to_value(a).unwrap_or_default();
    }
    v
}

/// Writes the pid file atomically (temporary file + rename), as runc does.
pub fn write_pid_file(path: &std::path::Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).ctx(|| format!("pid file {}", path.display()))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).ctx(|| format!("write pid file {}", path.display()))
}
