//! The lifecycle API behind the subcommands: create, start, state, kill,
//! delete, list and run, with the runtime-spec's status rules
//! (creating → created → running → stopped).
//!
//! Every command that changes a container holds its lock (see
//! [`state::Locked`]); readers (`state`, `list`) read its state without
//! it, which is safe because states are replaced atomically. A process of
//! the container is only ever signalled through a pidfd that was checked to
//! be the container's after it was opened, so a recorded pid that now
//! belongs to someone else is never signalled.

mod resources;

use crate::bail;
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::foreground;
use crate::hooks::{self, Kind};
use crate::pidfd_socket::PidfdSocket;
use crate::process::{self, CreateOptions};
use crate::spec::{self, OCI_VERSION};
use crate::state::{self, ProcessId, State, Store, not_exist};
use crate::sys::{PidFd, proc_info};
use nix::sys::signal::SigSet;
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `create` is still running (its capsa process is alive).
    Creating,
    Created,
    Running,
    /// Frozen by `pause`.
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
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
    init_process(st).is_some()
}

/// /proc/PID/stat of the container's init, if it still is the process
/// recorded in `st` (same start time) and has not exited.
fn init_process(st: &State) -> Option<crate::sys::ProcInfo> {
    proc_info(st.pid).filter(|i| i.start == st.pid_start && i.state != 'Z' && i.state != 'X')
}

/// A pidfd on the container's init, or `None` if it is gone (its pid may
/// already belong to someone else) or is not the container's (see
/// [`not_the_init`]).
fn init_pidfd(st: &State) -> Option<PidFd> {
    let fd = PidFd::open(st.pid).ok()?;
    // Checked after opening: if the start time still matches, the pidfd is
    // the init's and stays so.
    (init_alive(st) && not_the_init(st).is_none()).then_some(fd)
}

/// Why the live process the state names is not the container's init, if
/// it is not: a state.json edited to hold another process's pid and start
/// time must not make capsa signal it or join its namespaces. What the
/// state cannot forge decides: the process must be in the cgroup capsa made
/// for this container (marked, see [`cgroups::MARK`]); without one, with a
/// PID namespace of the container's own, it must be PID 1 of a PID
/// namespace that is not capsa's. As root without either nothing proves
/// it; only without root (where the state is the caller's own) is it
/// taken on trust. Read while the caller holds a pidfd on it, and followed
/// by a check that the pid is still the recorded process.
fn not_the_init(st: &State) -> Option<String> {
    let pid = st.pid;
    let proc_cgroup = cgroups::mounts::proc_cgroup(&pid.to_string()).ok()?;
    if let Some(rec) = &st.cgroup
        && let Some(inside) = cgroups::in_marked_cgroup(rec, &st.id, &proc_cgroup)
    {
        return (!inside).then(|| format!("process {pid} is not in the container's cgroup"));
    }
    if new_pid_namespace(st) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let first_in_ns = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            == Some("1");
        let other_ns = pid_ns(pid) != pid_ns(std::process::id() as i32);
        return (!(first_in_ns && other_ns))
            .then(|| format!("process {pid} is not PID 1 of a PID namespace of its own"));
    }
    if cgroups::marks_apply() {
        return Some(format!(
            "process {pid} is neither in a cgroup capsa made for the container nor PID 1 of \
             a PID namespace of its own"
        ));
    }
    None
}

/// A recorded cgroup directory an `exec`'d process would join that is
/// neither marked as capsa's for the container nor holds its init (as
/// root; a state edited to swap one directory for a host cgroup).
fn foreign_cgroup(st: &State) -> Option<PathBuf> {
    let rec = st.cgroup.as_ref()?;
    if !cgroups::marks_apply() {
        return None;
    }
    let proc_cgroup = cgroups::mounts::proc_cgroup(&st.pid.to_string()).ok()?;
    let hs = cgroups::mounts::hierarchies_once()?;
    rec.dirs()
        .into_iter()
        .find(|d| {
            !cgroups::marked_for(d, &st.id)
                && !hs.iter().any(|h| {
                    d.starts_with(&h.mountpoint)
                        && cgroups::mounts::cgroup_in(h, &proc_cgroup)
                            .and_then(|p| h.dir_of(&p))
                            .is_some_and(|p| p.starts_with(d))
                })
        })
        .map(Path::to_path_buf)
}

/// The container's cgroup record, if what runs in its directories may be
/// taken as the container's: as root, only when capsa made (and marked)
/// every one of them; without root, the state is the caller's own.
fn trusted_cgroup(st: &State) -> Option<&cgroups::Record> {
    st.cgroup
        .as_ref()
        .filter(|rec| !cgroups::marks_apply() || cgroups::all_made_by_create(rec))
}

pub struct RunOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// `--pidfd-socket`: receives a pidfd of the init.
    pub pidfd_socket: Option<PathBuf>,
    /// `--cgroup-manager disabled`: no cgroup of the container's own.
    pub no_cgroup: bool,
}

/// How `exec` builds its process: from a process.json, or from the
/// container's own process with the command-line overrides.
#[derive(Default)]
pub struct ExecRequest {
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// `--pidfd-socket`: receives a pidfd of the process.
    pub pidfd_socket: Option<PathBuf>,
    /// `--cgroup [controllers:]path`: sub-cgroups of the container's to
    /// run the process in.
    pub cgroup: Vec<String>,
    /// `--ignore-paused`: exec in a paused container too (the process runs
    /// once the container is resumed).
    pub ignore_paused: bool,
}

impl Runtime {
    pub fn new(root: PathBuf) -> Self {
        Runtime {
            store: Store::new(root),
        }
    }

    /// The container's status. A state still marked creating is
    /// `creating` while its capsa lives; once that is gone, the create was
    /// killed half-way and the container is `stopped` (its init, if it is
    /// still around, dies on its own: it needs capsa to go on).
    pub fn status(&self, st: &State) -> Status {
        if let Some(creator) = &st.creating {
            return if creator.is_alive() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        let Some(init) = init_process(st) else {
            return Status::Stopped;
        };
        if st.cgroup.as_ref().is_some_and(cgroups::is_frozen) {
            Status::Paused
        } else if init.comm == process::INIT_COMM && state::exec_socket_exists(&self.store, &st.id)
        {
            Status::Created
        } else {
            // Also an init whose `start` was killed before it removed the
            // exec socket: the init has gone on to exec the process.
            Status::Running
        }
    }

    /// `relay_tty`: capsa itself will relay the container's terminal
    /// (foreground `run`), so no console socket is needed.
    pub fn create(
        &self,
        id: &str,
        o: &RunOptions,
        sigmask: SigSet,
        relay_tty: bool,
    ) -> Result<process::Created> {
        state::validate_id(id)?;
        let mut bundle = spec::load_bundle(&o.bundle)?;
        crate::notify::pass_through(&mut bundle.spec)?;
        crate::logging::phase("parse config");
        let creator = ProcessId::current()?;
        let locked = self.store.create(id)?;
        crate::fault::point("create:dir");
        let mut st = State {
            id: id.to_string(),
            pid: 0,
            pid_start: 0,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            owner: String::new(),
            annotations: bundle
                .spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            config: bundle.raw.clone(),
            cgroup: None,
            creating: Some(creator),
        };
        let opts = CreateOptions {
            id: id.to_string(),
            pid_file: o.pid_file.clone(),
            no_pivot: o.no_pivot,
            no_new_keyring: o.no_new_keyring,
            preserve_fds: o.preserve_fds,
            console_socket: o.console_socket.clone(),
            relay_tty,
            sigmask,
            systemd_cgroup: o.systemd_cgroup,
            no_cgroup: o.no_cgroup,
        };
        let created = process::create(&bundle, &locked, &opts, &mut st).and_then(|c| {
            // Connected only now, so that the init does not inherit the
            // socket; a failure undoes the create like any other.
            if let Some(path) = &o.pidfd_socket {
                let sent = PidfdSocket::connect(path).and_then(|sock| {
                    let fd = init_pidfd(&c.state)
                        .ok_or_else(|| Error::msg("container not running (its init exited)"))?;
                    sock.send(&fd)
                });
                if let Err(e) = sent {
                    // As a failed process::create: no init left behind.
                    let _ = self.kill_and_wait(&c.state);
                    return Err(e);
                }
            }
            Ok(c)
        });
        match created {
            Ok(c) => Ok(c),
            Err(e) => {
                // process::create has killed the init and removed the
                // cgroups. Should some cgroup still be there, the state
                // stays, marked creating: once this capsa is gone, delete
                // finds it and removes the rest.
                let left = st
                    .cgroup
                    .as_ref()
                    .and_then(|rec| cgroups::destroy(rec).err());
                let removed = match left {
                    Some(c) => Err(c),
                    None => locked.remove(),
                };
                if let Err(r) = removed {
                    crate::logging::warn(&format!(
                        "container {id:?}: {r} (delete --force {id} removes what is left)"
                    ));
                }
                // As on delete: whatever the hooks set up must be undone.
                let state = serde_json::json!({
                    "ociVersion": OCI_VERSION, "id": id, "status": "stopped", "pid": 0, "bundle": bundle.dir,
                });
                let _ = hooks::run(bundle.spec.hooks().as_ref(), Kind::Poststop, &state);
                Err(e)
            }
        }
    }

    /// A container's state for a command that acts on it: its id must be
    /// the directory's, and its cgroup record is checked (see
    /// [`cgroups::verify`]) before anything is written, signalled or
    /// removed through it.
    pub(crate) fn load_checked(&self, id: &str) -> Result<State> {
        let mut st = self.store.load(id)?;
        if st.id != id {
            bail!(
                "container {id:?}: state.json names container {:?}; refusing to use it",
                st.id
            );
        }
        if let Some(rec) = st.cgroup.as_mut() {
            cgroups::verify(rec, id)?;
        }
        Ok(st)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        let locked = self.store.lock(id)?;
        let st = self.store.load(id)?;
        match self.status(&st) {
            Status::Created => {}
            Status::Creating => bail!("cannot start a container that is being created"),
            Status::Running => bail!("cannot start an already running container"),
            Status::Paused => bail!("cannot start a paused container"),
            Status::Stopped => bail!("cannot start a container that has stopped"),
        }
        self.start_created(&locked, &st)
    }

    /// Tells the init of the created container `st` to exec its process
    /// and runs the poststart hooks.
    fn start_created(&self, locked: &state::Locked, st: &State) -> Result<()> {
        let id = &st.id;
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
        crate::fault::point("start:connected");
        let _ = std::fs::remove_file(locked.exec_socket());
        // End of file once the process is exec'd; else why not: the init's
        // message, or the exec error capsa's exec stub reports.
        let mut msg = Vec::new();
        let _ = std::fs::File::from(sock).read_to_end(&mut msg);
        if let Some(e) = crate::exec_stub::exec_error(&msg) {
            let program = st
                .config
                .pointer("/process/args/0")
                .and_then(|a| a.as_str());
            return Err(crate::exec_stub::exec_failed(
                program.unwrap_or_default(),
                e,
            ));
        }
        if !msg.is_empty() {
            bail!("{}", String::from_utf8_lossy(&msg));
        }
        if has_hooks(st, Kind::Poststart) {
            let spec = stored_spec(st)?;
            hooks::run(
                spec.hooks().as_ref(),
                Kind::Poststart,
                &self.state_json(st, Status::Running),
            )?;
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
        let st = self.load_checked(id)?;
        // Without a PID namespace of its own, the init's death does not take
        // the other processes along: SIGKILL goes to all of them (runc 1.2),
        // also to those left over once the init is gone.
        let kill_all = sig == libc::SIGKILL && !new_pid_namespace(&st);
        match self.status(&st) {
            Status::Creating => bail!("cannot kill container {id:?}: it is being created"),
            // `--all` of a stopped container is no error (containerd's shim
            // sends it after every exit); it and a SIGKILL reach what an
            // init without a PID namespace of its own left behind.
            Status::Stopped if all => return kill_leftovers(&st, sig),
            Status::Stopped if kill_all && st.creating.is_none() => {
                return kill_leftovers(&st, sig);
            }
            Status::Stopped => bail!("container not running"),
            _ => {}
        }
        if let Some(why) = not_the_init(&st) {
            bail!("container {id:?}: {why}; refusing to signal it (is state.json forged?)");
        }
        let fd = init_pidfd(&st).ok_or_else(|| Error::msg("container not running"))?;
        let all = all || kill_all;
        match trusted_cgroup(&st) {
            Some(rec) if all => {
                cgroups::signal_all(cgroups::open(rec).as_ref(), sig)?;
            }
            _ => {
                if all {
                    for p in container_processes(&st) {
                        if p.pid() != st.pid {
                            let _ = p.signal(sig);
                        }
                    }
                }
                fd.signal(sig).ctx(|| format!("kill container {id:?}"))?;
            }
        }
        // Frozen processes would only die once thawed.
        if sig == libc::SIGKILL
            && let Some(rec) = trusted_cgroup(&st)
            && cgroups::is_frozen(rec)
        {
            cgroups::open(rec).freeze(false)?;
        }
        Ok(())
    }

    /// `delete`: kills what is left of the container and removes its
    /// cgroups and state. Also what a create, exec or delete killed
    /// half-way left behind: a create's state still marked creating (once
    /// its capsa is gone), or a directory without any state.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        state::validate_id(id)?;
        // Checked before waiting for the lock, which the create holds.
        if !force {
            let creator = match self.store.load(id) {
                Ok(st) => st.creating.filter(ProcessId::is_alive).map(|c| c.pid),
                // A directory without a state yet, locked: a create that
                // has just made it.
                Err(_) => self.store.is_locked(id).then_some(0),
            };
            if let Some(pid) = creator {
                let by = if pid > 0 {
                    format!(" (by capsa pid {pid})")
                } else {
                    String::new()
                };
                bail!(
                    "cannot delete container {id}: it is being created{by}; \
                     delete --force waits for the create to end"
                );
            }
        }
        let Some(locked) = self.store.lock_any(id)? else {
            return if force { Ok(()) } else { Err(not_exist(id)) };
        };
        let st = match self.load_checked(id) {
            Ok(st) => st,
            Err(e) => {
                let dir = &locked.dir;
                let bare = !dir.join(state::STATE_FILE).exists();
                if !bare && !force {
                    return Err(e);
                }
                // No state: a create killed before its first one, or a
                // delete killed after it removed it; nothing else of the
                // container exists. A corrupt state (only --force gets
                // here) says nothing about what to clean: the directory
                // goes, the rest cannot be found.
                if !bare {
                    crate::logging::warn(&format!("{e}; removing its directory"));
                }
                locked.remove()?;
                return if force || !bare {
                    Ok(())
                } else {
                    Err(not_exist(id))
                };
            }
        };
        let status = self.status(&st);
        if matches!(status, Status::Running | Status::Paused) && !force {
            bail!("cannot delete container {id} that is not stopped: {status}");
        }
        // Stopped too: the init of a create killed half-way may still be
        // around (and is only killed if it is still the recorded one).
        crate::logging::phase("delete: state loaded");
        // linux.netDevices go back to the host while the init still holds
        // the container's network namespace.
        if st.config["linux"]["netDevices"].is_object()
            && init_alive(&st)
            && let Ok(spec) = stored_spec(&st)
            && let Err(e) = crate::netdev::detach(&spec, st.pid)
        {
            crate::logging::warn(&e.to_string());
        }
        self.kill_and_wait(&st)?;
        crate::fault::point("delete:killed");
        crate::logging::phase("delete: init gone");
        if let Some(rec) = &st.cgroup {
            // With a PID namespace of its own, the container's processes
            // died with its init: what else is in a cgroup it shares (a
            // cgroupsPath that existed before) belongs to someone else.
            let strays = trusted_cgroup(&st).is_some()
                && (!new_pid_namespace(&st) || cgroups::all_made_by_create(rec));
            cgroups::kill_and_destroy(rec, strays)?;
        }
        crate::fault::point("delete:cgroups");
        crate::logging::phase("delete: cgroups removed");
        locked.remove()?;
        crate::logging::phase("delete: state removed");
        if has_hooks(&st, Kind::Poststop)
            && let Ok(spec) = stored_spec(&st)
        {
            hooks::run(
                spec.hooks().as_ref(),
                Kind::Poststop,
                &self.state_json(&st, Status::Stopped),
            )?;
        }
        Ok(())
    }

    fn kill_and_wait(&self, st: &State) -> Result<()> {
        let Some(fd) = init_pidfd(st) else {
            return Ok(());
        };
        // The init of a PID namespace takes every process in it along; the
        // others are killed one by one only without one (then they are
        // what the cgroup holds, or what the namespace it joined holds).
        if !new_pid_namespace(st) {
            for p in container_processes(st) {
                let _ = p.signal(libc::SIGKILL);
            }
        }
        match fd.signal(libc::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e).ctx(|| format!("kill container {:?}", st.id)),
        }
        if let Some(rec) = trusted_cgroup(st)
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
            if let Ok(mut st) = self.store.load(&id) {
                let s = self.status(&st);
                if st.owner.is_empty() {
                    st.owner = self.owner(&id);
                }
                out.push((st, s));
            }
        }
        Ok(out)
    }

    /// Who owns a container, as `list` shows it: the owner of its state
    /// directory, by name (`#UID` when it has none).
    fn owner(&self, id: &str) -> String {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::symlink_metadata(self.store.dir(id)) else {
            return String::new();
        };
        let uid = nix::unistd::Uid::from_raw(meta.uid());
        match nix::unistd::User::from_uid(uid) {
            Ok(Some(u)) => u.name,
            _ => format!("#{uid}"),
        }
    }

    /// `run`: create and start in one process; in the foreground wait for
    /// the container, forwarding signals, and return its exit status.
    pub fn run(&self, id: &str, o: &RunOptions, detach: bool, keep: bool) -> Result<i32> {
        let old = foreground::block_signals()?;
        let created = self.create(id, o, old, !detach && o.console_socket.is_none())?;
        // The state just written is the one on disk: no need to read it back.
        let started = self
            .store
            .lock(id)
            .and_then(|locked| self.start_created(&locked, &created.state));
        if let Err(e) = started {
            let _ = self.delete(id, true);
            return Err(e);
        }
        crate::logging::phase("started");
        if detach {
            return Ok(0);
        }
        let code = foreground::wait(Pid::from_raw(created.state.pid), created.pty_master)?;
        crate::logging::phase("container exited");
        // The namespace outlived the init through this handle: the
        // linux.netDevices go back to the host before it goes.
        if let Some(ns) = &created.netns
            && let Ok(spec) = stored_spec(&created.state)
            && let Err(e) = crate::netdev::detach_from(&spec, std::os::fd::AsFd::as_fd(ns))
        {
            crate::logging::warn(&e.to_string());
        }
        if !keep {
            self.delete(id, true)?;
            crate::logging::phase("deleted");
        }
        let _ = old.thread_set_mask();
        Ok(code)
    }

    /// `exec`: a new process in the container; in the foreground, its
    /// exit status.
    pub fn exec(&self, id: &str, req: &ExecRequest) -> Result<i32> {
        let st = self.load_checked(id)?;
        match self.status(&st) {
            Status::Creating => bail!("cannot exec in a container that is being created"),
            Status::Stopped => bail!("cannot exec in a stopped container"),
            Status::Paused if !req.ignore_paused => {
                bail!("cannot exec in a paused container (use --ignore-paused to override)")
            }
            Status::Created | Status::Running | Status::Paused => {}
        }
        let spec = stored_spec(&st)?;
        let process = exec_process(&spec, req)?;
        crate::process::attrs::validate_process(&process, "exec process")?;
        let cgroup = match &st.cgroup {
            Some(rec) if !req.cgroup.is_empty() => Some(sub_cgroups(rec, &req.cgroup)?),
            Some(rec) => Some(rec.clone()),
            None if !req.cgroup.is_empty() => {
                bail!("--cgroup: container {id:?} has no cgroup of its own")
            }
            None => None,
        };
        let init = init_pidfd(&st).ok_or_else(|| Error::msg("container not running"))?;
        if let Some(dir) = foreign_cgroup(&st) {
            bail!(
                "container {id:?}: its cgroup {} is neither one capsa made for it nor one its \
                 init is in; refusing to put a process there (is state.json forged?)",
                dir.display()
            );
        }
        let old = if req.detach {
            SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty())
        } else {
            foreground::block_signals()?
        };
        let opts = process::exec::ExecOptions {
            detach: req.detach,
            pid_file: req.pid_file.clone(),
            console_socket: req.console_socket.clone(),
            preserve_fds: req.preserve_fds,
            sigmask: old,
            cgroup,
            state: self.state_json(&st, Status::Running),
        };
        let started = process::exec::start(&spec, &init, &process, &opts)?;
        if let Some(path) = &req.pidfd_socket {
            // The process is capsa's child, not yet waited for: its pid is
            // still its own. (Connected only now: the process does not
            // inherit the socket.)
            let sent = PidfdSocket::connect(path).and_then(|sock| {
                let fd = PidFd::open(started.pid.as_raw()).ctx(|| "pidfd_open")?;
                sock.send(&fd)
            });
            if let Err(e) = sent {
                let _ = nix::sys::signal::kill(started.pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(started.pid, None);
                return Err(e);
            }
        }
        if req.detach {
            return Ok(0);
        }
        let code = foreground::wait(started.pid, started.pty_master)?;
        let _ = old.thread_set_mask();
        Ok(code)
    }
}

/// The container's cgroups with the process's moved into the sub-cgroups
/// `exec --cgroup` names: `path` for every hierarchy, or
/// `controller[,controller]:path` for those (cgroup v1). Each must be an
/// existing directory below the container's own, reached without `..` or
/// symlinks.
fn sub_cgroups(rec: &cgroups::Record, specs: &[String]) -> Result<cgroups::Record> {
    use std::path::Component;
    let mut out = rec.clone();
    let mut named: Vec<&str> = Vec::new();
    for arg in specs {
        let (controllers, sub) = match arg.split_once(':') {
            Some((c, p)) => (Some(c), p),
            None => (None, arg.as_str()),
        };
        match controllers {
            None if specs.len() > 1 => bail!(
                "--cgroup {arg:?}: a path for every hierarchy must be the only --cgroup \
                 (else give CONTROLLER:PATH)"
            ),
            None => {}
            Some(list) => {
                for c in list.split(',') {
                    if c.is_empty() {
                        bail!("--cgroup {arg:?}: empty controller name");
                    }
                    if named.contains(&c) {
                        bail!("--cgroup {arg:?}: controller {c:?} given more than once");
                    }
                    named.push(c);
                }
            }
        }
        let rel = Path::new(sub.trim_start_matches('/'));
        if rel.as_os_str().is_empty()
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            bail!(
                "--cgroup {arg:?}: the path must name a sub-cgroup of the container's, \
                 without \"..\" or \".\""
            );
        }
        // Keys of the hierarchies this argument moves; co-mounted
        // controllers (cpu,cpuacct) share a directory and move together.
        let dirs: Vec<PathBuf> = match controllers {
            None => rec.paths.values().cloned().collect(),
            Some(list) => {
                if rec.version == cgroups::Version::V2 {
                    bail!(
                        "--cgroup {arg:?}: cgroup v2 has one hierarchy; give the path alone \
                         (without controllers)"
                    );
                }
                let mut dirs = Vec::new();
                for c in list.split(',') {
                    let dir = rec.paths.get(c).ok_or_else(|| {
                        Error::msg(format!(
                            "--cgroup {arg:?}: the container has no cgroup of controller {c:?}"
                        ))
                    })?;
                    dirs.push(dir.clone());
                }
                dirs
            }
        };
        for (key, dir) in out.paths.iter_mut() {
            let Some(orig) = rec.paths.get(key).filter(|d| dirs.contains(d)) else {
                continue;
            };
            let target = orig.join(rel);
            // Walked without following symlinks: each component a directory.
            let mut p = orig.clone();
            for c in rel.components() {
                p.push(c);
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => bail!(
                        "--cgroup {arg:?}: {} is not a cgroup directory",
                        p.display()
                    ),
                    Err(e) => bail!("--cgroup {arg:?}: {}: {e}", p.display()),
                }
            }
            *dir = target;
        }
    }
    Ok(out)
}

/// Every process in the container's cgroup; for containers without a
/// recorded cgroup, every process in its PID namespace when it has its own
/// (found by the namespace inode), else just the init. For reading only:
/// see [`container_processes`] for pids to signal.
fn container_pids(st: &State) -> Vec<i32> {
    if let Some(rec) = &st.cgroup {
        return cgroups::pids(cgroups::open(rec).as_ref()).unwrap_or_default();
    }
    if !init_alive(st) {
        return Vec::new();
    }
    let Some(init_ns) = pid_ns(st.pid) else {
        return vec![st.pid];
    };
    let own_ns = pid_ns(std::process::id() as i32);
    if own_ns == Some(init_ns) {
        return vec![st.pid];
    }
    let mut pids = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                && pid_ns(pid) == Some(init_ns)
            {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The inode of a process's PID namespace.
fn pid_ns(pid: i32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// Pidfds on the container's processes (see [`container_pids`]), each
/// checked to be the container's after it was opened: still in the cgroup,
/// or still in the container's PID namespace while the init is still the
/// recorded one. A pid reused by an outside process is never among them.
fn container_processes(st: &State) -> Vec<PidFd> {
    if let Some(rec) = trusted_cgroup(st) {
        return cgroups::pidfds(cgroups::open(rec).as_ref()).unwrap_or_default();
    }
    let Some(init) = init_pidfd(st) else {
        return Vec::new();
    };
    let init_ns = pid_ns(st.pid);
    let fds: Vec<PidFd> = container_pids(st)
        .into_iter()
        .filter_map(|p| PidFd::open(p).ok())
        .filter(|fd| fd.pid() == st.pid || (init_ns.is_some() && pid_ns(fd.pid()) == init_ns))
        .collect();
    // The namespace inode was the init's only while the init lived.
    if init.exited() {
        return Vec::new();
    }
    fds
}

/// `kill --all` of a stopped container is no error (runc's rule): it
/// signals what the init left behind. With a PID namespace of its own
/// nothing is left (the kernel killed every process with the init);
/// without one (a pod's shared namespace, the host's) the init's children
/// outlive it in the container's cgroup, and containerd's shim runs
/// `kill --all ID 9` when such an init exits to reach them. Without a
/// cgroup nothing identifies them once the init is gone.
fn kill_leftovers(st: &State, sig: i32) -> Result<()> {
    if new_pid_namespace(st) {
        return Ok(());
    }
    // Only a cgroup capsa made for this container (a forged state could
    // name a host one).
    let Some(rec) = trusted_cgroup(st) else {
        return Ok(());
    };
    let m = cgroups::open(rec);
    // Gone or empty: nothing to freeze or signal.
    if cgroups::pids(m.as_ref())?.is_empty() {
        return Ok(());
    }
    cgroups::signal_all(m.as_ref(), sig)?;
    if sig == libc::SIGKILL && m.is_frozen() {
        m.freeze(false)?;
    }
    Ok(())
}

/// The config the container was created with (kept in its state).
fn stored_spec(st: &State) -> Result<oci_spec::runtime::Spec> {
    spec::parse(&st.config)
}

/// Whether the stored config gives the container a new PID namespace (one
/// its init is PID 1 of, so that no process of it outlives the init).
fn new_pid_namespace(st: &State) -> bool {
    st.config
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
        .is_some_and(|list| {
            list.iter().any(|n| {
                n.get("type").and_then(|t| t.as_str()) == Some("pid")
                    && n.get("path")
                        .and_then(|p| p.as_str())
                        .is_none_or(str::is_empty)
            })
        })
}

/// Whether the stored config has hooks of `kind`: looked up in the JSON,
/// so the common case of none costs no parse of the whole config.
fn has_hooks(st: &State, kind: Kind) -> bool {
    st.config
        .get("hooks")
        .and_then(|h| h.get(kind.name()))
        .and_then(|l| l.as_array())
        .is_some_and(|l| !l.is_empty())
}

/// The process of an `exec`, from `--process FILE` or from the container's
/// process with the command line's overrides (runc's rules).
pub fn exec_process(
    spec: &oci_spec::runtime::Spec,
    req: &ExecRequest,
) -> Result<oci_spec::runtime::Process> {
    if req.apparmor.is_some() {
        bail!("--apparmor: AppArmor is not enabled on this host");
    }
    if req.process_label.is_some() {
        bail!("--process-label: SELinux is not enabled on this host");
    }
    if let Some(f) = &req.process_file {
        let data = std::fs::read(f).ctx(|| format!("--process: open {}", f.display()))?;
        return parse_process(&data, f);
    }
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| Error::msg("config.json: process: missing"))?;
    if req.args.is_empty() {
        bail!("exec: no command given (use --process FILE or give a command after the id)");
    }
    p.set_args(Some(req.args.clone()));
    p.set_terminal(Some(req.tty));
    if !req.tty {
        p.set_console_size(None);
    }
    let mut env = p.env().clone().unwrap_or_default();
    // `--env NAME=value` replaces the config's NAME rather than adding a
    // second entry.
    for e in &req.env {
        let name = e.split_once('=').map_or(e.as_str(), |(n, _)| n);
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(n, _)| n) != name);
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &req.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &req.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let num = |s: &str, what: &str| {
            let n = s
                .parse::<u32>()
                .map_err(|_| Error::msg(format!("--user {u:?}: {what} must be numeric")))?;
            crate::spec::check_id(&format!("--user {u:?}: {what}"), n).map(|()| n)
        };
        let mut user = p.user().clone();
        user.set_uid(num(uid, "uid")?);
        if let Some(g) = gid {
            user.set_gid(num(g, "gid")?);
        }
        p.set_user(user);
    }
    if !req.additional_gids.is_empty() {
        for g in &req.additional_gids {
            crate::spec::check_id("--additional-gids", *g)?;
        }
        let mut user = p.user().clone();
        user.set_additional_gids(Some(req.additional_gids.clone()));
        p.set_user(user);
    }
    if !req.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let has_inheritable = caps.inheritable().as_ref().is_some_and(|i| !i.is_empty());
        for name in &req.caps {
            let name = if name.starts_with("CAP_") {
                name.clone()
            } else {
                format!("CAP_{name}")
            };
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| Error::msg(format!("--cap: unknown capability {name:?}")))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            if has_inheritable {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    if req.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// A process.json for `exec --process FILE` (`file` names it in errors).
pub fn parse_process(data: &[u8], file: &Path) -> Result<oci_spec::runtime::Process> {
    let raw: serde_json::Value = serde_json::from_slice(data)
        .map_err(|e| Error::msg(format!("--process {}: {e}", file.display())))?;
    let p: oci_spec::runtime::Process = serde_path_to_error::deserialize(&raw).map_err(|e| {
        Error::msg(format!(
            "--process {}: {}: {}",
            file.display(),
            e.path(),
            e.inner()
        ))
    })?;
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!(
            "--process {}: args: must name a program to run",
            file.display()
        );
    }
    crate::spec::check_user(p.user(), &format!("--process {}: user", file.display()))?;
    Ok(p)
}

/// Resolves `--bundle` (default: the current directory).
pub fn bundle_dir(b: Option<&Path>) -> PathBuf {
    b.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn exists_error(id: &str) -> Error {
    not_exist(id)
}
