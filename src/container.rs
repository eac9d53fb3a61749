//! The lifecycle API behind the subcommands: create, start, state, kill,
//! delete, list and run, with the runtime-spec's status rules
//! (creating → created → running → stopped).

mod resources;

use crate::bail;
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::process::{self, CreateOptions};
use crate::spec::{self, OCI_VERSION};
use crate::state::{self, State, Store, not_exist};
use crate::sys::{PidFd, proc_stat};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    /// Frozen by `pause`.
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub struct Runtime {
    pub store: Store,
}

/// Whether the container's init is still the process recorded in `st`.
fn init_alive(st: &State) -> bool {
    st.pid > 0
        && matches!(proc_stat(st.pid), Some((start, state)) if start == st.pid_start && state != 'Z' && state != 'X')
}

/// A pidfd on the container's init, or `None` if it is gone (its pid may
/// already belong to someone else).
fn init_pidfd(st: &State) -> Option<PidFd> {
    let fd = PidFd::open(st.pid).ok()?;
    // Checked after opening: if the start time still matches, the pidfd is
    // the init's and stays so.
    init_alive(st).then_some(fd)
}

pub struct RunOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

impl Runtime {
    pub fn new(root: PathBuf) -> Self {
        Runtime {
            store: Store::new(root),
        }
    }

    pub fn status(&self, st: &State) -> Status {
        if !init_alive(st) {
            Status::Stopped
        } else if st.cgroup.as_ref().is_some_and(cgroups::is_frozen) {
            Status::Paused
        } else if state::exec_socket_exists(&self.store, &st.id) {
            Status::Created
        } else {
            Status::Running
        }
    }

    pub fn create(&self, id: &str, o: &RunOptions, sigmask: SigSet) -> Result<State> {
        state::validate_id(id)?;
        let bundle = spec::load_bundle(&o.bundle)?;
        let locked = self.store.create(id)?;
        let opts = CreateOptions {
            id: id.to_string(),
            pid_file: o.pid_file.clone(),
            no_pivot: o.no_pivot,
            no_new_keyring: o.no_new_keyring,
            preserve_fds: o.preserve_fds,
            sigmask,
            systemd_cgroup: o.systemd_cgroup,
        };
        match process::create(&bundle, &locked, &opts) {
            Ok(st) => Ok(st),
            Err(e) => {
                let _ = locked.remove();
                Err(e)
            }
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        let locked = self.store.lock(id)?;
        let mut st = self.store.load(id)?;
        match self.status(&st) {
            Status::Created => {}
            Status::Running => bail!("cannot start an already running container"),
            Status::Paused => bail!("cannot start a paused container"),
            Status::Stopped => bail!("cannot start a container that has stopped"),
        }
        let dir = nix::fcntl::open(
            &locked.dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| format!("open {}", locked.dir.display()))?;
        let sock = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .ctx(|| "socket")?;
        nix::sys::socket::connect(sock.as_raw_fd(), &process::exec_socket_addr(&dir)?)
            .ctx(|| format!("start container {id:?}: connect to its init"))?;
        let _ = std::fs::remove_file(locked.exec_socket());
        st.started = true;
        locked.save(&st)?;
        let mut msg = String::new();
        let _ = std::fs::File::from(sock).read_to_string(&mut msg);
        if !msg.is_empty() {
            bail!("{msg}");
        }
        Ok(())
    }

    /// The runtime-spec state document (plus runc's rootfs/created/owner).
    pub fn state(&self, id: &str) -> Result<serde_json::Value> {
        let st = self.store.load(id)?;
        Ok(self.state_json(&st, self.status(&st)))
    }

    pub fn state_json(&self, st: &State, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": st.id,
            "pid": if status == Status::Stopped { 0 } else { st.pid },
            "status": status.as_str(),
            "bundle": st.bundle,
            "rootfs": st.rootfs,
            "created": st.created,
            "owner": st.owner,
        });
        if !st.annotations.is_empty() {
            v["annotations"] = serde_json::to_value(&st.annotations).unwrap_or_default();
        }
        v
    }

    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let st = self.store.load(id)?;
        if self.status(&st) == Status::Stopped {
            bail!("container not running");
        }
        let fd = init_pidfd(&st).ok_or_else(|| Error::msg("container not running"))?;
        match &st.cgroup {
            Some(rec) if all => {
                cgroups::signal_all(cgroups::open(rec).as_ref(), sig)?;
            }
            _ => {
                if all {
                    for pid in container_pids(&st) {
                        if pid != st.pid {
                            let _ = nix::sys::signal::kill(
                                Pid::from_raw(pid),
                                Signal::try_from(sig).ok(),
                            );
                        }
                    }
                }
                fd.signal(sig).ctx(|| format!("kill container {id:?}"))?;
            }
        }
        // Frozen processes would only die once thawed.
        if sig == libc::SIGKILL
            && let Some(rec) = &st.cgroup
            && cgroups::is_frozen(rec)
        {
            cgroups::open(rec).freeze(false)?;
        }
        Ok(())
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        state::validate_id(id)?;
        let locked = match self.store.lock(id) {
            Ok(l) => l,
            Err(e) => {
                // A create killed before it wrote its state leaves a bare
                // directory; it holds nothing else, remove it.
                let dir = self.store.dir(id);
                if dir.is_dir() && !dir.join(state::STATE_FILE).exists() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                return if force { Ok(()) } else { Err(e) };
            }
        };
        let st = self.store.load(id)?;
        let status = self.status(&st);
        match status {
            Status::Stopped => {}
            Status::Created => self.kill_and_wait(&st)?,
            Status::Running | Status::Paused if force => self.kill_and_wait(&st)?,
            Status::Running | Status::Paused => {
                bail!("cannot delete container {id} that is not stopped: {status}")
            }
        }
        if let Some(rec) = &st.cgroup {
            cgroups::kill_and_destroy(rec)?;
        }
        locked.remove()
    }

    fn kill_and_wait(&self, st: &State) -> Result<()> {
        let Some(fd) = init_pidfd(st) else {
            return Ok(());
        };
        for pid in container_pids(st) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        match fd.signal(libc::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e).ctx(|| format!("kill container {:?}", st.id)),
        }
        if let Some(rec) = &st.cgroup
            && cgroups::is_frozen(rec)
        {
            cgroups::open(rec).freeze(false)?;
        }
        if !fd.wait_exit(10_000) {
            bail!("container {:?}: init did not exit after SIGKILL", st.id);
        }
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<(State, Status)>> {
        let mut out = Vec::new();
        for id in self.store.ids()? {
            if let Ok(st) = self.store.load(&id) {
                let s = self.status(&st);
                out.push((st, s));
            }
        }
        Ok(out)
    }

    /// `run`: create and start in one process; in the foreground wait for
    /// the container, forwarding signals, and return its exit status.
    pub fn run(&self, id: &str, o: &RunOptions, detach: bool, keep: bool) -> Result<i32> {
        let old = block_signals()?;
        let st = self.create(id, o, old)?;
        if let Err(e) = self.start(id) {
            let _ = self.delete(id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let code = wait_forwarding(Pid::from_raw(st.pid));
        if !keep {
            self.delete(id, true)?;
        }
        let _ = old.thread_set_mask();
        Ok(code)
    }
}

/// Every process in the container's cgroup; for containers without a
/// recorded cgroup, every process in its PID namespace when it has its own
/// (found by the namespace inode), else just the init.
fn container_pids(st: &State) -> Vec<i32> {
    if let Some(rec) = &st.cgroup {
        return cgroups::pids(cgroups::open(rec).as_ref()).unwrap_or_default();
    }
    let ns = |pid: i32| {
        std::fs::metadata(format!("/proc/{pid}/ns/pid"))
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
    };
    let Some(init_ns) = ns(st.pid) else {
        return vec![st.pid];
    };
    let own_ns = ns(std::process::id() as i32);
    if own_ns == Some(init_ns) {
        return vec![st.pid];
    }
    let mut pids = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                && ns(pid) == Some(init_ns)
            {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Signals `run` relays to the container instead of acting on them.
fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGABRT,
    ] {
        set.remove(s);
    }
    set
}

fn block_signals() -> Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), Some(&mut old))
        .ctx(|| "block signals")?;
    Ok(old)
}

/// Waits for `pid` (our child) to exit, forwarding every other signal to
/// it; returns its status the shell way (128+N for signal N).
fn wait_forwarding(pid: Pid) -> i32 {
    let set = forwarded();
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => return code,
                Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return 128 + sig as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) => continue,
            Ok(sig) => {
                let _ = nix::sys::signal::kill(pid, sig);
            }
            Err(_) => continue,
        }
    }
}

/// Resolves `--bundle` (default: the current directory).
pub fn bundle_dir(b: Option<&Path>) -> PathBuf {
    b.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn exists_error(id: &str) -> Error {
    not_exist(id)
}
