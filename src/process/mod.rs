//! Creating a container's init: one clone straight into the new
//! namespaces (no re-exec of capsa, no intermediate process), a short
//! handshake with the child over the sync channel, and the state written
//! before the child is told it may outlive us.

pub mod attrs;
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
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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
    /// `--cgroup-manager disabled`: the container gets no cgroup of its own.
    pub no_cgroup: bool,
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
    /// With `linux.netDevices`: the container's network namespace, which
    /// a foreground `run` keeps to give the devices back after the init
    /// has exited.
    pub netns: Option<OwnedFd>,
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
    let mut plan = namespaces::plan(&bundle.spec);
    let mut cgroup = if opts.no_cgroup {
        without_cgroup(&bundle.spec)?;
        None
    } else {
        Some(cgroups::for_container(
            &bundle.spec,
            &opts.id,
            opts.systemd_cgroup,
        )?)
    };
    st.cgroup = cgroup
        .as_ref()
        .map(|c| cgroups::with_planned_dirs(c.record()));
    locked.save(st)?;
    crate::fault::point("create:state");
    // The cgroups exist, with their limits, before the init does: it joins
    // them first thing (see cgroups::join). On failure from here on, the
    // caller removes them (the state records them as planned).
    // With the systemd driver the cgroup is a unit systemd makes with the
    // init in it, once the init exists (see cgroups::systemd::place).
    let systemd = cgroup.as_ref().is_some_and(|c| c.record().unit.is_some());
    let join = match cgroup.as_mut() {
        Some(c) if !systemd => prepare_cgroup(c.as_mut())?,
        _ => None,
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
    // process.execCPUAffinity.initial: capsa's own, inherited by the init.
    let saved_affinity = match bundle.spec.process() {
        Some(p) => attrs::set_initial(p, "config.json: process")?,
        None => None,
    };
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
    attrs::restore(saved_affinity);
    drop(join);
    drop(child);
    drop(listener);
    drop(ns_fds);
    drop(console_child);
    crate::logging::phase("clone");
    // The init waits for our go-ahead (sent in finish_create) before it
    // does anything of the container's.
    let placed = match cgroup.as_mut() {
        Some(c) if systemd => {
            cgroups::systemd::place(c.as_mut(), pid.as_raw(), bundle.spec.annotations().as_ref())
        }
        _ => Ok(()),
    };
    let cg = cgroup
        .as_ref()
        .filter(|_| joins)
        .map(|c| c.record().clone());
    // linux.netDevices move while the init waits for its first message.
    let mut netns = None;
    let result = placed
        .and_then(|()| crate::netdev::attach(&bundle.spec, pid.as_raw()))
        .and_then(|ns| {
            netns = ns;
            finish_create(bundle, locked, opts, pid, &parent, cg.as_ref(), &plan, st)
        })
        .and_then(|state| {
            let pty_master = match &console_parent {
                Some(sock) => Some(crate::tty::recv_fd(std::os::fd::AsFd::as_fd(sock))?),
                None => None,
            };
            Ok(Created {
                state,
                pty_master,
                netns: None,
            })
        })
        // The init's own report, when it failed first (say, joining its
        // cgroups) and our talking to it failed because of that.
        .map_err(|e| parent.pending_fail().map(Error::Msg).unwrap_or(e));
    if result.is_err() {
        // Devices moved in go back (the handle keeps the namespace alive
        // even if the init is gone; a virtual device would die with it).
        if let Some(ns) = &netns
            && let Err(e) = crate::netdev::detach_from(&bundle.spec, ns.as_fd())
        {
            crate::logging::warn(&e.to_string());
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        if let Some(c) = &cgroup {
            let _ = cgroups::destroy(c.record());
        }
    }
    result.map(|mut c| {
        c.netns = netns;
        c
    })
}

/// `--cgroup-manager disabled`: the container runs in the caller's cgroups.
/// Limits in `linux.resources` could not be applied, so they are refused;
/// device rules are not enforced (the container has the device nodes the
/// config gives it, as rootless).
fn without_cgroup(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    if let Some(k) = resources.and_then(first_limit) {
        crate::bail!(
            "config.json: linux.resources.{k}: cannot be applied with --cgroup-manager \
             disabled (the container gets no cgroup)"
        );
    }
    crate::logging::debug("cgroup manager disabled: the container has no cgroup of its own");
    Ok(())
}

/// The first field of `r` that asks for a limit (device rules aside):
/// only a cgroup could apply it.
fn first_limit(r: &oci_spec::runtime::LinuxResources) -> Option<String> {
    let v = serde_json::to_value(r).unwrap_or_default();
    let empty = |x: &serde_json::Value| match x {
        serde_json::Value::Null => true,
        serde_json::Value::Object(o) => o.values().all(|v| v.is_null()),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    };
    v.as_object()?
        .iter()
        .find(|(k, x)| *k != "devices" && !empty(x))
        .map(|(k, _)| k.clone())
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
        Err(e) if crate::rootless::is_rootless() => {
            let _ = cgroups::destroy(m.record());
            if let Some(k) = m.record().resources.as_ref().and_then(first_limit) {
                crate::logging::warn(&format!(
                    "rootless: cgroups: {e}; linux.resources ({k}...) are not applied"
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
/// The temporary is created afresh (`O_CREAT|O_EXCL|O_NOFOLLOW`) relative
/// to the directory's fd, never opened through whatever is at its name: a
/// symlink planted there is removed (unlink does not follow it), not
/// written through. rename() replaces the target itself, never what a
/// symlink there points at.
pub fn write_pid_file(path: &std::path::Path, pid: i32) -> Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{OFlag, open, openat, renameat};
    use nix::sys::stat::Mode;
    let path = std::path::absolute(path).ctx(|| format!("pid file {}", path.display()))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let Some(name) = path.file_name() else {
        return Err(Error::msg(format!(
            "pid file {}: not a file name",
            path.display()
        )));
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(&tmp_name);
    let dirfd = open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("pid file: open {}", dir.display()))?;
    let mut tries = 0;
    let f = loop {
        match openat(
            &dirfd,
            tmp_name.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(f) => break f,
            // Left by a capsa killed half-way, or planted: remove the
            // entry itself and create ours, a bounded number of times.
            Err(Errno::EEXIST) if tries < 3 => {
                tries += 1;
                match nix::unistd::unlinkat(
                    &dirfd,
                    tmp_name.as_os_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                ) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => {
                        return Err(e).ctx(|| format!("write pid file: remove {}", tmp.display()));
                    }
                }
            }
            Err(e) => return Err(e).ctx(|| format!("write pid file {}", tmp.display())),
        }
    };
    let written = nix::unistd::write(&f, pid.to_string().as_bytes());
    drop(f);
    let done = written.and_then(|_| renameat(&dirfd, tmp_name.as_os_str(), &dirfd, name));
    if done.is_err() {
        let _ = nix::unistd::unlinkat(
            &dirfd,
            tmp_name.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    done.ctx(|| format!("write pid file {}", path.display()))
}
