//! The container's init: what runs in the cloned child, top to bottom in
//! the runtime-spec's order. It reports every failure to the parent over
//! the sync channel (so `create` prints one clear message), and once set up
//! it waits on the exec socket until `start`, then execs the user process.

use super::sync::{Channel, Msg};
use crate::capabilities::{self, Masks};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::namespaces::Plan;
use crate::rootfs::{Rootfs, paths};
use crate::tty;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Process, Spec};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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
    /// fds 3.. that reach the container process unchanged.
    pub keep_fds: u32,
    /// Where to send the pty master when `process.terminal` is set.
    pub console: Option<OwnedFd>,
    pub chan: Channel,
    pub exec_listener: OwnedFd,
    /// The signal mask the caller had before capsa blocked signals.
    pub sigmask: SigSet,
    /// The container's cgroups, joined first thing, and whether clone3
    /// already put us in the cgroup2 one.
    pub cgroup: Option<(crate::cgroups::join::Join, crate::sys::Born)>,
}

/// The user process, ready to be exec'd.
pub struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    /// A seccomp filter to install right before the exec.
    seccomp: Option<crate::seccomp::Prepared>,
    /// The lowest fd the process is not given (3 + the fds it keeps).
    first_free_fd: i32,
}

/// Compiles `linux.seccomp` of a config, if it has one, and checks that a
/// profile with SCMP_ACT_NOTIFY has a listener socket and kernel support.
pub fn prepare_seccomp(spec: &Spec) -> Result<Option<crate::seccomp::Prepared>> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => {
            let p = crate::seccomp::prepare(s)?;
            if p.uses_notify() {
                crate::seccomp::check_notify(s)?;
            }
            Ok(Some(p))
        }
        None => Ok(None),
    }
}

/// Installs the filter; with SCMP_ACT_NOTIFY, sends the listener to the
/// capsa parent over `chan` (the parent hands it to the agent at
/// `linux.seccomp.listenerPath`) and waits until it was delivered, so no
/// container code runs under a filter nobody listens to.
fn install_seccomp(f: &crate::seccomp::Prepared, chan: &Channel) -> Result<()> {
    if let Some(listener) = crate::seccomp::install(f)? {
        chan.send_with_fd(&Msg::Seccomp, Some(listener.as_fd()))?;
        drop(listener);
        chan.expect(Msg::SeccompDone, "capsa went away")?;
    }
    Ok(())
}

/// Runs the init; never returns.
pub fn run(mut init: Init<'_>) -> ! {
    let _ = init.sigmask.thread_set_mask();
    // Into the container's cgroups, under its limits, before anything of
    // the container's; the files are closed right after.
    if let Some((join, born)) = init.cgroup.take()
        && let Err(e) = join.join_self(born)
    {
        let _ = init.chan.send(&Msg::Fail(e.to_string()));
        std::process::exit(1);
    }
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
    let state = hook_state(init.id, init.bundle, init.spec, "created");
    let Init {
        chan,
        exec_listener,
        spec,
        ..
    } = init;
    drop(chan);
    wait_for_start_and_exec(exec_listener, spec, &state, exec)
}

fn setup(init: &Init<'_>) -> Result<Exec> {
    let spec = init.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::msg("config.json: process: missing"))?;
    nix::sys::stat::umask(Mode::empty());
    match init.chan.recv()? {
        Some(Msg::Continue) => {}
        _ => return Err(Error::msg("parent went away")),
    }
    // Not before: without root the parent writes our uid_map and gid_map,
    // which it may open only while we are dumpable. Until Continue we are
    // alone in new namespaces, out of any container process's reach.
    protect_binary();
    crate::logging::phase("init: cgroups joined, go-ahead received");
    // Writes to this process's procfs files go through a handle opened
    // now, while /proc is still the host's: a joined mount namespace may
    // have anything at /proc (CVE-2025-52881).
    let proc_self = if process.oom_score_adj().is_some()
        || init.ns.new_timens.as_ref().is_some_and(|o| !o.is_empty())
    {
        Some(crate::sys::open_proc_self().ctx(|| "open /proc/self (is /proc a procfs?)")?)
    } else {
        None
    };
    // Decided before joining: /proc/self/ns/mnt is still the runtime's.
    let foreign_mntns = crate::namespaces::joins_foreign_mount_namespace(&init.ns_fds);
    init.ns
        .join_rest(&init.ns_fds, proc_self.as_ref().map(|f| f.as_fd()))?;
    crate::logging::phase("init: namespaces");
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
    set_oom_score_adj(
        process,
        proc_self.as_ref().map(|f| f.as_fd()),
        "config.json",
    )?;
    drop(proc_self);
    let idmapped = |i: usize| idmapped_mount(&init.chan, i);
    let rootfs = Rootfs {
        spec,
        bundle: init.bundle,
        rootfs: init.rootfs,
        cgroupns: init.ns.has(LinuxNamespaceType::Cgroup),
        idmapped: &idmapped,
    };
    // Without a mount namespace of its own the container shares the
    // runtime's, and a joined one is someone else's: capsa then changes no
    // mounts (they would land on the host) and only chroots into the
    // rootfs. Spec loading refused whatever else such a config asks of
    // the rootfs.
    let own_mntns = init.ns.creates(LinuxNamespaceType::Mount) || foreign_mntns;
    if own_mntns {
        rootfs.prepare()?;
        crate::logging::phase("init: mounts, devices, sysctls, masked paths");
    } else if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        crate::logging::warn(
            "config.json: mounts are not applied: the container has no mount namespace of its own",
        );
    }
    if init.console.is_some() && !own_mntns {
        return Err(Error::msg(
            "config.json: process.terminal needs a mount namespace (for the container's devpts)",
        ));
    }
    let pty = match &init.console {
        Some(_) => Some(console_pty(init.rootfs, process)?),
        None => None,
    };
    let hooks = spec.hooks().as_ref();
    if !hooks::of(hooks, Kind::Prestart).is_empty()
        || !hooks::of(hooks, Kind::CreateRuntime).is_empty()
    {
        init.chan.send(&Msg::Hooks)?;
        init.chan.expect(Msg::HooksDone, "parent went away")?;
    }
    if !hooks::of(hooks, Kind::CreateContainer).is_empty() {
        let state = hook_state(init.id, init.bundle, spec, "created");
        hooks::run_in_container(hooks, Kind::CreateContainer, &state)?;
    }
    if own_mntns {
        rootfs.pivot(init.no_pivot)?;
        crate::logging::phase("init: pivot_root");
        rootfs.finish()?;
    } else {
        nix::unistd::chroot(init.rootfs).ctx(|| format!("chroot {}", init.rootfs.display()))?;
        nix::unistd::chdir("/").ctx(|| "chdir /")?;
    }
    let slave = match (pty, &init.console) {
        (Some(p), Some(sock)) => {
            tty::send_fd(sock.as_fd(), p.master.as_fd())?;
            Some(p.slave)
        }
        _ => None,
    };
    let seccomp = prepare_seccomp(spec)?;
    let mut env = process.env().clone().unwrap_or_default();
    add_listen_fds(&mut env);
    nix::unistd::setsid().ctx(|| "setsid")?;
    super::attrs::apply(process, spec.linux().as_ref(), "config.json: process")?;
    let mut exec = finalize(
        process,
        &env,
        slave.as_ref(),
        init.keep_fds,
        seccomp,
        &init.chan,
    )?;
    // The listener must reach capsa's parent, which is only there until the
    // init reports ready: a filter with SCMP_ACT_NOTIFY goes in now rather
    // than right before the exec (as runc does), and the init waits for
    // `start` under it.
    if let Some(f) = exec.seccomp.take_if(|f| f.uses_notify()) {
        install_seccomp(&f, &init.chan)?;
    }
    crate::logging::phase("init: seccomp, user, capabilities");
    Ok(exec)
}

/// Asks capsa for the idmapped mount of `mounts[index]` (only the host's
/// root may make it) and receives it, detached. If capsa cannot make it,
/// it reports the error itself and ends this init.
fn idmapped_mount(chan: &Channel, index: usize) -> Result<OwnedFd> {
    let index = u32::try_from(index).map_err(|_| Error::msg("too many mounts"))?;
    chan.send(&Msg::IdmapMount(index))?;
    match chan.recv_with_fd()? {
        Some((Msg::IdmapMountFd, Some(fd))) => Ok(fd),
        Some((m, _)) => Err(Error::msg(format!(
            "sync socket: expected an idmapped mount, got {m:?}"
        ))),
        None => Err(Error::msg("capsa went away")),
    }
}

/// The state a hook reads on stdin.
pub fn hook_state(id: &str, bundle: &Path, spec: &Spec, status: &str) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": id,
        "status": status,
        "pid": std::process::id(),
        "bundle": bundle,
    });
    if let Some(a) = spec.annotations().as_ref().filter(|a| !a.is_empty()) {
        v["annotations"] = serde_json::to_value(a).unwrap_or_default();
    }
    v
}

/// LISTEN_FDS socket activation: the fds passed to capsa are the
/// container's, and LISTEN_PID names the container process (PID 1).
fn add_listen_fds(env: &mut Vec<String>) {
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .filter(|n| n.parse::<u32>().is_ok_and(|n| n > 0))
    {
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={n}"));
        env.push("LISTEN_PID=1".into());
    }
}

/// The number of fds socket activation hands to capsa.
pub fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A pty in the container's devpts, with the slave also bind-mounted on
/// /dev/console.
fn console_pty(rootfs: &Path, process: &Process) -> Result<tty::Pty> {
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open rootfs")?;
    let size = process
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    let pty = tty::open_pty(root.as_fd(), size)?;
    let console = paths::ensure_file(
        root.as_fd(),
        Path::new("/dev/console"),
        Path::new("/dev/console"),
    )?;
    mount(
        Some(paths::fd_path(&pty.slave).as_str()),
        paths::fd_path(&console).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| "bind the pty on /dev/console")?;
    Ok(pty)
}

/// The steps shared by the init and `exec`, once the process is in the
/// container's namespaces and root: limits, program lookup, terminal,
/// capabilities, user, cwd, no_new_privs, umask, fds.
///
/// The seccomp filter is installed as late as possible: right before the
/// exec when no_new_privs is set or the process keeps CAP_SYS_ADMIN (either
/// lets an unprivileged process install it); otherwise, as runc does, before
/// the capabilities are dropped. A filter with SCMP_ACT_NOTIFY sends its
/// listener over `chan` as soon as it is installed.
pub fn finalize(
    process: &Process,
    env: &[String],
    tty_slave: Option<&OwnedFd>,
    keep_fds: u32,
    seccomp: Option<crate::seccomp::Prepared>,
    chan: &Channel,
) -> Result<Exec> {
    set_rlimits(process)?;
    let env = with_home(process, env);
    let mut exec = find_executable(process, &env)?;
    exec.first_free_fd = 3 + keep_fds as i32;
    if let Some(slave) = tty_slave {
        tty::make_controlling(slave)?;
    }
    let caps: Option<Masks> = process.capabilities().as_ref().map(capabilities::resolve);
    // Before any seccomp filter, which may not allow close_range.
    crate::sys::cloexec_from(3 + keep_fds).ctx(|| "mark fds close-on-exec")?;
    let keeps_sys_admin = match &caps {
        Some(m) => m.effective & caps::Capability::CAP_SYS_ADMIN.bitmask() != 0,
        None => process.user().uid() == 0,
    };
    // The cwd first: an early seccomp filter may deny openat2, fchdir or
    // getcwd, which runc's profiles do not expect capsa to need.
    let cwd = process.cwd();
    let cwd_early = chdir_in_root(cwd);
    if cwd_early.is_ok() {
        check_cwd_inside(cwd)?;
    }
    if let Some(f) = seccomp {
        if process.no_new_privileges() == Some(true) || keeps_sys_admin {
            exec.seccomp = Some(f);
        } else {
            install_seccomp(&f, chan)?;
        }
    }
    if let Some(m) = &caps {
        capabilities::apply_bounding(m)?;
    }
    switch_user(process, caps.is_some())?;
    if let Some(m) = &caps {
        capabilities::apply_sets(m)?;
    }
    if cwd_early.is_err() {
        chdir_in_root(cwd)
            .ctx(|| format!("chdir to cwd ({}) set in config.json failed", cwd.display()))?;
        check_cwd_inside(cwd)?;
    }
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().ctx(|| "process.noNewPrivileges: prctl")?;
    }
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(Mode::from_bits_truncate(umask as _));
    Ok(exec)
}

/// chdir to `cwd` resolved inside the root, never through a magic link
/// (such as /proc/self/fd/N, which could name a directory outside it).
/// CVE-2024-21626: whatever the path, the cwd must be under the root.
fn check_cwd_inside(cwd: &Path) -> Result<()> {
    if !nix::unistd::getcwd().is_ok_and(|p| p.is_absolute()) {
        return Err(Error::msg(format!(
            "cwd ({}) set in config.json is outside the container",
            cwd.display()
        )));
    }
    Ok(())
}

fn chdir_in_root(cwd: &Path) -> nix::Result<()> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let dir = paths::open_in(
        root.as_fd(),
        cwd,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        nix::fcntl::ResolveFlag::empty(),
    )?;
    nix::unistd::fchdir(&dir)
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
    match nix::unistd::setgroups(&groups) {
        // A user namespace set up without privilege has setgroups denied
        // (the kernel's condition for an unprivileged gid_map): with no
        // additional groups asked for, there is nothing to drop.
        Err(nix::errno::Errno::EPERM) if groups.is_empty() && setgroups_denied() => {}
        r => r.ctx(|| "process.user.additionalGids: setgroups")?,
    }
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

/// Read from the container's /proc, which capsa mounted, and believed
/// only if it is a procfs (not a file the image put there).
fn setgroups_denied() -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open("/proc/self/setgroups") else {
        return false;
    };
    let mut s = String::new();
    crate::sys::is_procfs(f.as_fd()) && f.read_to_string(&mut s).is_ok() && s.trim() == "deny"
}

/// `env`, plus HOME from the container's /etc/passwd when unset.
fn with_home(process: &Process, env: &[String]) -> Vec<String> {
    let mut env = env.to_vec();
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
/// with the container's PATH, so a missing one fails clearly before start.
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
        seccomp: None,
        first_free_fd: 3,
    })
}

/// Replaces this process with the user process; returns only on failure,
/// with the message to report. `chan` takes a seccomp listener to the
/// parent (the init installed a filter with one before it got here).
/// `report`: where whoever waits for this exec reads its outcome (end of
/// file: it happened); capsa's exec stub writes the program's exec error
/// there (see [`crate::exec_stub::exec_error`]).
pub fn exec(e: &Exec, chan: Option<&Channel>, report: Option<BorrowedFd<'_>>) -> String {
    if let Some(f) = &e.seccomp {
        let installed = match chan {
            Some(c) => install_seccomp(f, c),
            None => crate::seccomp::install(f).map(drop),
        };
        if let Err(err) = installed {
            return err.to_string();
        }
    }
    let err = match crate::exec_stub::get() {
        Some(stub) => {
            // A copy that survives the stub's exec (the stub makes it
            // close-on-exec for the program's), above the program's fds.
            let report = match report.map(|fd| crate::exec_stub::report_fd(fd, e.first_free_fd)) {
                Some(Err(err)) => {
                    return format!(
                        "exec {:?}: report fd: {}",
                        e.path,
                        crate::error::errno_text(err)
                    );
                }
                Some(Ok(fd)) => Some(fd),
                None => None,
            };
            let err = stub
                .launch(
                    &e.path,
                    &e.args,
                    &e.env,
                    report.as_ref().map(AsRawFd::as_raw_fd),
                )
                .exec();
            return format!(
                "exec {:?}: run capsa's exec stub: {}",
                e.path,
                crate::error::errno_text(err)
            );
        }
        None => nix::unistd::execve(&e.path, &e.args, &e.env).unwrap_err(),
    };
    format!("exec {:?}: {}", e.path, crate::error::errno_text(err))
}

/// Until it execs the user process, this process is the capsa binary
/// running inside the container's namespaces. Non-dumpable, its
/// /proc/PID/exe, memory and fds cannot be opened by container processes
/// (that needs CAP_SYS_PTRACE in capsa's own user namespace), which closes
/// the way to overwrite the host's binary (CVE-2019-5736) for containers
/// without that capability. The flag resets when the user process is exec'd.
/// Called in the parent before it clones, so the child is born with it
/// (and again in the child: the rootless init turns it on late).
pub fn protect_binary() {
    let _ = nix::sys::prctl::set_dumpable(false);
}

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// Blocks until `start` connects to the exec socket, runs the
/// startContainer hooks, then execs. A failure is reported back over the
/// connection; a successful exec closes it (close-on-exec), which `start`
/// reads as success.
fn wait_for_start_and_exec(
    listener: OwnedFd,
    spec: &Spec,
    state: &serde_json::Value,
    user: Exec,
) -> ! {
    // As PID 1 of its namespace the init would ignore signals it has no
    // handler for; until the user process runs, a terminating signal from
    // `kill` must still end it.
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, Signal, sigaction};
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
    ] {
        let action = SigAction::new(
            SigHandler::Handler(exit_on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only calls _exit.
        let _ = unsafe { sigaction(sig, &action) };
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
    // SAFETY: `conn` was just returned by accept4 and nothing else owns it.
    let conn = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(conn) };
    let hooks = spec.hooks().as_ref();
    let msg = if !hooks::of(hooks, Kind::StartContainer).is_empty()
        && let Err(e) = hooks::run_in_container(hooks, Kind::StartContainer, state)
    {
        e.to_string()
    } else {
        exec(&user, None, Some(conn.as_fd()))
    };
    let _ = nix::unistd::write(&conn, msg.as_bytes());
    std::process::exit(127);
}

/// Applies `process.oomScoreAdj` to the calling process, through
/// `proc_self`: its procfs directory, opened and checked to be procfs
/// ([`crate::sys::open_proc_self`]) before any namespace was joined, so a
/// joined mount namespace's `/proc` never takes the write. When none was
/// opened, it is opened now (the caller is still in the runtime's mount
/// namespace). `what` names the file the process came from (config.json,
/// or exec's --process file).
pub(crate) fn set_oom_score_adj(
    process: &Process,
    proc_self: Option<std::os::fd::BorrowedFd<'_>>,
    what: &str,
) -> Result<()> {
    let Some(adj) = process.oom_score_adj() else {
        return Ok(());
    };
    let opened;
    let dir = match proc_self {
        Some(d) => d,
        None => {
            opened = crate::sys::open_proc_self().ctx(|| "open /proc/self (is /proc a procfs?)")?;
            opened.as_fd()
        }
    };
    crate::sys::write_proc_file(dir, Path::new("oom_score_adj"), adj.to_string().as_bytes())
        .ctx(|| format!("{what}: process.oomScoreAdj: write {adj}"))
}
