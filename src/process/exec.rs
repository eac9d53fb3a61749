//! `capsa exec`: a new process in a running container. capsa joins the
//! container's PID namespace for its children, clones once, and the child
//! joins every other namespace of the init before it becomes the process
//! (same finalize steps as the init: limits, user, capabilities, ...).
//! Rootless, capsa joins the container's user namespace first (see
//! namespaces::join_user_first): only there is it privileged over the
//! PID namespace.

use super::init;
use super::sync::{self, Msg};
use crate::error::{Context, Error, Result};
use crate::spec::ns_name;
use crate::tty;
use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

pub struct ExecOptions {
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    /// The caller's signal mask, for the new process.
    pub sigmask: SigSet,
    /// The container's cgroups, which the process joins before it runs.
    pub cgroup: Option<crate::cgroups::Record>,
    /// The container's state, for a seccomp agent (SCMP_ACT_NOTIFY).
    pub state: serde_json::Value,
}

/// The started process: its host pid and, when capsa relays the
/// terminal, the pty master.
pub struct Started {
    pub pid: Pid,
    pub pty_master: Option<OwnedFd>,
}

/// Opens the namespaces of `init_pid` that the container has of its own,
/// in the order they must be joined (mount last).
fn open_namespaces(spec: &Spec, init_pid: i32) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut out = Vec::new();
    for ns in crate::namespaces::configured(spec) {
        let path = format!(
            "/proc/{init_pid}/ns/{}",
            crate::namespaces::proc_name(ns.typ())
        );
        let fd = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {path}"))?;
        crate::namespaces::check_type(ns.typ(), &fd)
            .map_err(|why| crate::error::Error::msg(format!("{path}: {why}")))?;
        out.push((ns.typ(), fd));
    }
    out.sort_by_key(|(t, _)| crate::namespaces::join_order(*t));
    Ok(out)
}

/// Starts `process` in the container whose init `init` is a pidfd on.
pub fn start(
    spec: &Spec,
    init: &crate::sys::PidFd,
    process: &Process,
    opts: &ExecOptions,
) -> Result<Started> {
    let nss = open_namespaces(spec, init.pid())?;
    // Opened by pid: they are the init's only if it was still alive after
    // they were opened (until then its pid could not be reused).
    if init.exited() {
        return Err(Error::msg("container not running (its init exited)"));
    }
    let seccomp = init::prepare_seccomp(spec)?;
    let terminal = process.terminal() == Some(true);
    let (console_child, console_parent) = match (&opts.console_socket, terminal) {
        (Some(_), false) => {
            return Err(Error::msg(
                "--console-socket given but the process has no terminal (--tty)",
            ));
        }
        (Some(p), true) => (Some(tty::connect(p)?), None),
        (None, true) if !opts.detach => {
            let (a, b) = crate::tty::relay_pair()?;
            (Some(a), Some(b))
        }
        (None, true) => {
            return Err(Error::msg(
                "a terminal for a detached process needs --console-socket",
            ));
        }
        (None, false) => (None, None),
    };
    let (parent, child) = sync::pair()?;
    // The process joins the container's cgroups itself, first thing (see
    // cgroups::join).
    let join = match &opts.cgroup {
        Some(rec) => Some(crate::cgroups::join::Join::open(rec)?),
        None => None,
    };
    let user_first = crate::namespaces::join_user_first(&nss)?;
    for (t, fd) in &nss {
        if *t == LinuxNamespaceType::Pid {
            setns(fd, CloneFlags::CLONE_NEWPID).ctx(|| "join the container's pid namespace")?;
        }
    }
    // Born non-dumpable: it is visible in the container's PID namespace
    // from the clone on.
    init::protect_binary();
    let saved_affinity = super::attrs::set_initial(process, "exec process")?;
    let cloned = crate::sys::clone_into_cgroup(0, join.as_ref().and_then(|j| j.cgroup_fd()))
        .ctx(|| "clone exec process");
    super::attrs::restore(saved_affinity);
    let cloned = cloned?;
    let pid = match cloned {
        (None, born) => {
            drop(parent);
            let _ = opts.sigmask.thread_set_mask();
            let joined = match join.map(|j| j.join_self(born)) {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            };
            let msg = match joined.and_then(|()| {
                child_setup(
                    Joins {
                        nss: &nss,
                        user_joined: user_first,
                    },
                    process,
                    spec.linux().as_ref(),
                    console_child.as_ref(),
                    opts.preserve_fds,
                    &child,
                    seccomp,
                )
            }) {
                Ok(exec) => init::exec(&exec, Some(&child), Some(child.as_fd())),
                Err(e) => e.to_string(),
            };
            let _ = child.send(&Msg::Fail(msg));
            std::process::exit(127);
        }
        (Some(pid), _) => pid,
    };
    drop(join);
    drop(child);
    drop(console_child);
    drop(nss);
    let result = (|| {
        crate::fault::point("exec:cloned");
        parent.send(&Msg::Continue)?;
        loop {
            match parent.recv_with_fd()? {
                // The channel is close-on-exec: end-of-file means the exec worked.
                None => break,
                Some((Msg::Seccomp, Some(listener))) => {
                    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
                    let seccomp =
                        seccomp.ok_or_else(|| Error::msg("unexpected seccomp listener"))?;
                    crate::seccomp::send_listener(
                        seccomp,
                        listener.as_fd(),
                        pid.as_raw(),
                        &opts.state,
                    )?;
                    parent.send(&Msg::SeccompDone)?;
                }
                Some((Msg::Fail(m), _)) => return Err(Error::Msg(m)),
                Some((Msg::ExecFailed(e), _)) => {
                    let program = process.args().as_ref().and_then(|a| a.first());
                    let program = program.map(String::as_str).unwrap_or_default();
                    return Err(crate::exec_stub::exec_failed(program, e));
                }
                Some((m, _)) => return Err(Error::msg(format!("sync socket: unexpected {m:?}"))),
            }
        }
        crate::fault::point("exec:started");
        if let Some(p) = &opts.pid_file {
            super::write_pid_file(p, pid.as_raw())?;
        }
        let pty_master = match &console_parent {
            Some(s) => Some(tty::recv_fd(s.as_fd())?),
            None => None,
        };
        Ok(Started { pid, pty_master })
    })();
    let result = result.map_err(|e| parent.pending_fail().map(Error::Msg).unwrap_or(e));
    if result.is_err() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
    result
}

/// The container's namespaces the exec'd process joins; the user one may
/// have been joined already, before the clone (rootless: see
/// `namespaces::join_user_first`).
struct Joins<'a> {
    nss: &'a [(LinuxNamespaceType, OwnedFd)],
    user_joined: bool,
}

fn child_setup(
    Joins { nss, user_joined }: Joins<'_>,
    process: &Process,
    linux: Option<&oci_spec::runtime::Linux>,
    console: Option<&OwnedFd>,
    preserve_fds: u32,
    chan: &sync::Channel,
    seccomp: Option<crate::seccomp::Prepared>,
) -> Result<init::Exec> {
    // Kubernetes gives every exec (probes, kubectl exec) the container's
    // oom_score_adj; the process would otherwise keep the shim's.
    init::set_oom_score_adj(process, None, "exec process")?;
    for (t, fd) in nss {
        if *t != LinuxNamespaceType::Pid {
            if !(user_joined && *t == LinuxNamespaceType::User) {
                setns(fd, CloneFlags::from_bits_truncate(*t as i32))
                    .ctx(|| format!("join the container's {} namespace", ns_name(*t)))?;
            }
            if *t == LinuxNamespaceType::User {
                crate::namespaces::become_userns_root()?;
            }
        }
    }
    // Joining the mount namespace put us at its root: the container's.
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    chan.expect(Msg::Continue, "capsa went away")?;
    let slave = match console {
        Some(sock) => {
            nix::unistd::setsid().ctx(|| "setsid")?;
            let root = nix::fcntl::open(
                "/",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "open /")?;
            let size = process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16));
            let pty = tty::open_pty(root.as_fd(), size)?;
            tty::send_fd(sock.as_fd(), pty.master.as_fd())?;
            Some(pty.slave)
        }
        None => None,
    };
    let env = process.env().clone().unwrap_or_default();
    super::attrs::apply(process, linux, "exec process")?;
    init::finalize(process, &env, slave.as_ref(), preserve_fds, seccomp, chan)
}
