//! The container's init: what runs in the cloned child, top to bottom in
//! the runtime-spec's order. It reports every failure to the parent over
//! the sync channel (so `create` prints one clear message), and once set up
//! it waits on the exec socket until `start`, then execs the user process.

use super::sync::{Channel, Msg};
use crate::capabilities;
use crate::error::{Context, Error, Result};
use crate::namespaces::Plan;
use crate::rootfs::Rootfs;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::SigSet;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Process, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub struct Init<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub ns: &'a Plan,
    pub ns_fds: Vec<(LinuxNamespaceType, OwnedFd)>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub chan: Channel,
    pub exec_listener: OwnedFd,
    /// The signal mask the caller had before capsa blocked signals.
    pub sigmask: SigSet,
}

/// What is left to do once `start` arrives.
struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

/// Runs the init; never returns.
pub fn run(init: Init<'_>) -> ! {
    let _ = init.sigmask.thread_set_mask();
    let exec = match setup(&init) {
        Ok(e) => e,
        Err(e) => {
            let _ = init.chan.send(&Msg::Fail(e.to_string()));
            std::process::exit(1);
        }
    };
    if init.chan.send(&Msg::Ready).is_err() || init.chan.recv().ok().flatten() != Some(Msg::Commit)
    {
        // The parent is gone without recording us: nobody can start or
        // delete this container, so do not linger.
        std::process::exit(1);
    }
    drop(init.chan);
    wait_for_start_and_exec(init.exec_listener, exec)
}

fn setup(init: &Init<'_>) -> Result<Exec> {
    let spec = init.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::msg("config.json: process: missing"))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    match init.chan.recv()? {
        Some(Msg::Continue) => {}
        _ => return Err(Error::msg("parent went away")),
    }
    init.ns.join_rest(&init.ns_fds)?;
    if !init.no_new_keyring
        && let Err(e) = crate::sys::join_session_keyring(init.id)
        && e != nix::errno::Errno::ENOSYS
        && e != nix::errno::Errno::EPERM
    {
        return Err(e).ctx(|| "join session keyring");
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("config.json: hostname: sethostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        crate::sys::setdomainname(d)
            .ctx(|| format!("config.json: domainname: setdomainname {d:?}"))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("config.json: process.oomScoreAdj: write {adj}"))?;
    }
    let caps = process.capabilities().as_ref().map(capabilities::resolve);

    let rootfs = Rootfs {
        spec,
        bundle: init.bundle,
        rootfs: init.rootfs,
        cgroupns: init.ns.has(LinuxNamespaceType::Cgroup),
    };
    if init.ns.has(LinuxNamespaceType::Mount) {
        rootfs.prepare()?;
        rootfs.pivot(init.no_pivot)?;
        rootfs.finish()?;
    } else {
        return Err(Error::msg(
            "config.json: linux.namespaces: a mount namespace is required",
        ));
    }

    set_rlimits(process)?;
    let env = environment(process);
    let exec = find_executable(process, &env)?;
    nix::unistd::setsid().ctx(|| "setsid")?;

    let cwd = process.cwd();
    let cwd_early = nix::unistd::chdir(cwd);
    if let Some(m) = &caps {
        capabilities::apply_bounding(m)?;
    }
    switch_user(process, caps.is_some())?;
    if let Some(m) = &caps {
        capabilities::apply_sets(m)?;
    }
    if cwd_early.is_err() {
        nix::unistd::chdir(cwd)
            .ctx(|| format!("chdir to cwd ({}) set in config.json failed", cwd.display()))?;
    }
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().ctx(|| "process.noNewPrivileges: prctl")?;
    }
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask as _));
    crate::sys::cloexec_from(3 + init.preserve_fds).ctx(|| "mark fds close-on-exec")?;
    Ok(exec)
}

fn set_rlimits(process: &Process) -> Result<()> {
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        let res = rlimit_resource(r.typ());
        setrlimit(res, r.soft(), r.hard()).ctx(|| {
            format!(
                "config.json: process.rlimits[{i}] ({:?}): setrlimit",
                r.typ()
            )
        })?;
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// The user switch: groups, gid, uid. With capabilities configured they
/// survive the switch (PR_SET_KEEPCAPS) and are set right after.
fn switch_user(process: &Process, keep_caps: bool) -> Result<()> {
    let user = process.user();
    let uid = Uid::from_raw(user.uid());
    let gid = Gid::from_raw(user.gid());
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).ctx(|| "process.user.additionalGids: setgroups")?;
    if keep_caps && !uid.is_root() {
        nix::sys::prctl::set_keepcaps(true).ctx(|| "prctl(PR_SET_KEEPCAPS)")?;
    }
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("process.user.gid: setgid {gid}"))?;
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("process.user.uid: setuid {uid}"))?;
    if keep_caps && !uid.is_root() {
        nix::sys::prctl::set_keepcaps(false).ctx(|| "prctl(PR_SET_KEEPCAPS)")?;
    }
    Ok(())
}

/// `process.env`, plus HOME from the container's /etc/passwd when unset.
fn environment(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = process.user().uid();
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| {
                p.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
                })
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::msg(format!("config.json: {what}: contains a NUL byte")))
}

/// Finds the program like execvp would, in the container's filesystem and
/// with the container's PATH, so a missing one fails `create` clearly.
fn find_executable(process: &Process, env: &[String]) -> Result<Exec> {
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args.first().cloned().unwrap_or_default();
    let check = |p: &Path| -> std::result::Result<(), nix::errno::Errno> {
        let meta = std::fs::metadata(p)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
        if meta.is_dir() {
            return Err(nix::errno::Errno::EACCES);
        }
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK)
    };
    let path: PathBuf = if arg0.contains('/') {
        let p = PathBuf::from(&arg0);
        check(&p).ctx(|| format!("exec: {arg0:?}: stat {arg0}"))?;
        p
    } else {
        let search = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut found = None;
        for dir in search.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let p = Path::new(dir).join(&arg0);
            if check(&p).is_ok() {
                found = Some(p);
                break;
            }
        }
        found.ok_or_else(|| {
            Error::msg(format!(
                "exec: {arg0:?}: executable file not found in $PATH"
            ))
        })?
    };
    Ok(Exec {
        path: cstring(&path.to_string_lossy(), "process.args[0]")?,
        args: args
            .iter()
            .map(|a| cstring(a, "process.args"))
            .collect::<Result<_>>()?,
        env: env
            .iter()
            .map(|e| cstring(e, "process.env"))
            .collect::<Result<_>>()?,
    })
}

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// Blocks until `start` connects to the exec socket, then execs. A failed
/// exec is reported back over the connection; a successful one closes it
/// (close-on-exec), which `start` reads as success.
fn wait_for_start_and_exec(listener: OwnedFd, exec: Exec) -> ! {
    // As PID 1 of its namespace the init would ignore signals it has no
    // handler for; until the user process runs, a terminating signal from
    // `kill` must still end it.
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGQUIT,
        nix::sys::signal::Signal::SIGUSR1,
        nix::sys::signal::Signal::SIGUSR2,
        nix::sys::signal::Signal::SIGALRM,
    ] {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(exit_on_signal),
            nix::sys::signal::SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only calls _exit.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &action) };
    }
    let conn = loop {
        match nix::sys::socket::accept4(
            listener.as_raw_fd(),
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(fd) => break fd,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(1),
        }
    };
    drop(listener);
    let err = nix::unistd::execve(&exec.path, &exec.args, &exec.env).unwrap_err();
    let msg = format!("exec {:?}: {}", exec.path, crate::error::errno_text(err));
    let _ = nix::unistd::write(
        // SAFETY: `conn` is the fd accept4 just returned and is still open.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(conn) },
        msg.as_bytes(),
    );
    std::process::exit(127);
}
