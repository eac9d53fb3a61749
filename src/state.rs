//! The on-disk record of each container under `--root/ID/`: `state.json`
//! (written to a temporary file and renamed, so readers never see half of
//! it), a lock taken by every command that changes the container, and the
//! `exec.sock` the init waits on until `start`.
//!
//! A container's state is written before anything else of it exists, with
//! the `creating` mark naming the capsa process that creates it; the init's
//! pid and start time are added as soon as it exists, and the mark goes
//! when the container is complete. So whatever point a `create` is killed
//! at, later commands find a state saying what there may be to clean up
//! (see `container::Runtime::status`).

use crate::bail;
use crate::error::{Context, Error, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

pub const STATE_FILE: &str = "state.json";
/// Where a new state.json is written before it is renamed over the old.
const STATE_TMP: &str = ".state.json.tmp";
pub const EXEC_SOCKET: &str = "exec.sock";

/// Checks a container id before any path is built from it: runc's character
/// set (letters, digits, `_ + - .`), not `.` or `..`, at most 1024 bytes.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("invalid container id: the id must not be empty");
    }
    if id.len() > 1024 {
        bail!("invalid container id: longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        bail!("invalid container id {id:?}");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
    {
        bail!(
            "invalid container id {id:?}: character {c:?} is not allowed (use letters, digits, '_', '+', '-', '.')"
        );
    }
    Ok(())
}

/// A process told apart from any later process reusing its pid: its pid
/// and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    /// Clock ticks after boot (field 22 of /proc/PID/stat).
    pub start: u64,
}

impl ProcessId {
    /// This process.
    pub fn current() -> Result<ProcessId> {
        let pid = std::process::id() as i32;
        let (start, _) = crate::sys::proc_stat(pid)
            .ok_or_else(|| Error::msg("read /proc/self/stat: is /proc mounted?"))?;
        Ok(ProcessId { pid, start })
    }

    /// Whether the process still runs (not a zombie).
    pub fn is_alive(&self) -> bool {
        matches!(crate::sys::proc_stat(self.pid),
            Some((start, state)) if start == self.start && state != 'Z' && state != 'X')
    }
}

/// What capsa remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init (0 before it exists).
    pub pid: i32,
    /// The init's start time in clock ticks since boot (field 22 of
    /// /proc/PID/stat), so a reused pid is never mistaken for it.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The config the container was created from, so later commands do not
    /// depend on the bundle's config.json staying the same.
    pub config: serde_json::Value,
    /// The container's cgroups (absent in states written before capsa
    /// managed cgroups).
    #[serde(default)]
    pub cgroup: Option<crate::cgroups::Record>,
    /// While `create` runs: the capsa process creating the container. A
    /// state still marked after that process is gone is the remains of a
    /// create that was killed half-way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating: Option<ProcessId>,
}

/// The root directory holding every container's state.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

/// A container's state directory, locked for the lifetime of this value.
pub struct Locked {
    pub dir: PathBuf,
    _lock: Flock<File>,
}

impl Store {
    pub fn new(root: PathBuf) -> Self {
        Store { root }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn ensure_root(&self) -> Result<()> {
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("create state root {}", self.root.display())),
        }
    }

    /// Creates the state directory of a new container and locks it; fails
    /// if the id is taken.
    pub fn create(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        self.ensure_root()?;
        let dir = self.dir(id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with id {id:?} already exists")
            }
            Err(e) => return Err(e).ctx(|| format!("create state dir {}", dir.display())),
        }
        match self.lock_dir(id) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => bail!("container {id:?} was deleted while it was being created"),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Locks an existing container's directory (waiting for whoever holds
    /// it).
    pub fn lock(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        let dir = self.dir(id);
        if !dir.join(STATE_FILE).exists() {
            return Err(not_exist(id));
        }
        let l = self.lock_dir(id)?.ok_or_else(|| not_exist(id))?;
        // Deleted while we waited.
        if !l.dir.join(STATE_FILE).exists() {
            return Err(not_exist(id));
        }
        Ok(l)
    }

    /// Whether some capsa holds the lock of a container's directory now
    /// (without waiting for it).
    pub fn is_locked(&self, id: &str) -> bool {
        let Ok(Some((f, _))) = self.open_dir(id) else {
            return false;
        };
        matches!(
            Flock::lock(f, FlockArg::LockExclusiveNonblock),
            Err((_, nix::errno::Errno::EWOULDBLOCK))
        )
    }

    /// Locks a container's directory whether or not it holds a state (the
    /// remains of a create killed before its first state, or of a delete
    /// killed after it removed the state); `None` if there is none.
    pub fn lock_any(&self, id: &str) -> Result<Option<Locked>> {
        validate_id(id)?;
        self.lock_dir(id)
    }

    /// Reads a container's state without locking (writes are atomic).
    pub fn load(&self, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let Some((dir, _)) = self.open_dir(id)? else {
            return Err(not_exist(id));
        };
        let data = match nix::fcntl::openat(
            &dir,
            STATE_FILE,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => {
                use std::io::Read;
                let mut d = Vec::new();
                File::from(fd)
                    .read_to_end(&mut d)
                    .ctx(|| format!("read {}", path.display()))?;
                d
            }
            Err(nix::errno::Errno::ENOENT) => return Err(not_exist(id)),
            Err(nix::errno::Errno::ELOOP) => {
                bail!("{}: is a symlink; refusing to follow it", path.display())
            }
            Err(e) => return Err(e).ctx(|| format!("read {}", path.display())),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::msg(format!("{}: corrupt state: {e}", path.display())))
    }

    /// Ids of every container with a state file, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", self.root.display())),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

pub fn not_exist(id: &str) -> Error {
    Error::msg(format!("container {id:?} does not exist"))
}

impl Store {
    /// Opens the state directory of `id` relative to the state root,
    /// never through a symlink (a directory replaced by one is refused
    /// with a clear error); `None` if there is none. Also returns the
    /// root's fd.
    fn open_dir(&self, id: &str) -> Result<Option<(File, OwnedFd)>> {
        use nix::errno::Errno;
        use nix::fcntl::OFlag;
        let root = match nix::fcntl::open(
            &self.root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(r) => r,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("open state root {}", self.root.display())),
        };
        let dir = self.dir(id);
        let f = match nix::fcntl::openat(
            &root,
            id,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(f) => File::from(f),
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                bail!(
                    "state of container {id:?}: {} is not a directory (a symlink?); \
                     refusing to use it",
                    dir.display()
                )
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", dir.display())),
        };
        Ok(Some((f, root)))
    }

    /// Locks the state directory of `id`, waiting for the lock; `None` if
    /// there is no such directory, or none any more once the lock is ours
    /// (a delete removed it meanwhile). The lock is on the directory that
    /// is there when it is granted: one deleted and created again
    /// meanwhile is locked afresh, a bounded number of times.
    fn lock_dir(&self, id: &str) -> Result<Option<Locked>> {
        use nix::errno::Errno;
        use std::os::unix::fs::MetadataExt;
        let dir = self.dir(id);
        for _ in 0..100 {
            let Some((f, root)) = self.open_dir(id)? else {
                return Ok(None);
            };
            let lock = Flock::lock(f, FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .ctx(|| format!("lock {}", dir.display()))?;
            let held = lock.metadata().ctx(|| format!("stat {}", dir.display()))?;
            match nix::sys::stat::fstatat(&root, id, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(m) if m.st_dev == held.dev() && m.st_ino == held.ino() => {
                    return Ok(Some(Locked { dir, _lock: lock }));
                }
                Ok(_) => continue,
                Err(Errno::ENOENT) => return Ok(None),
                Err(e) => return Err(e).ctx(|| format!("stat {}", dir.display())),
            }
        }
        bail!(
            "lock {}: the directory keeps being replaced; giving up",
            dir.display()
        )
    }
}

impl Locked {
    /// Writes state.json atomically: a temporary file, then a rename.
    pub fn save(&self, state: &State) -> Result<()> {
        let tmp = self.dir.join(STATE_TMP);
        let path = self.dir.join(STATE_FILE);
        let data = serde_json::to_vec(state).map_err(|e| Error::msg(e.to_string()))?;
        // Created afresh: whatever is at the temporary name (the old state
        // a failed save left, or a hard link planted to a host file) is
        // unlinked, never opened and truncated.
        let create = || {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
        };
        let mut f = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp).ctx(|| format!("remove {}", tmp.display()))?;
                create()
            }
            r => r,
        }
        .ctx(|| format!("write {}", tmp.display()))?;
        // No fsync: the state describes live processes and lives in a
        // runtime directory (tmpfs on most hosts); a crash loses the
        // processes too. The rename alone keeps readers from seeing half.
        f.write_all(&data)
            .ctx(|| format!("write {}", tmp.display()))?;
        // Swapped with the current state, whose old copy is then unlinked,
        // rather than renamed over it: ext4 (auto_da_alloc) starts writing
        // a file out when it replaces another by rename, which costs each
        // save 0.1-0.2 ms and the final unlink as much again. The exchange
        // is as atomic for readers. A first save, or a filesystem without
        // RENAME_EXCHANGE, takes the plain rename.
        match crate::sys::exchange(&tmp, &path) {
            Ok(()) => {
                // The old state, now under the temporary name: a save
                // truncates it and a delete removes it should this fail.
                let _ = fs::remove_file(&tmp);
                Ok(())
            }
            Err(_) => fs::rename(&tmp, &path).ctx(|| format!("rename {}", path.display())),
        }
    }

    /// Removes the whole state directory: state.json first, so that the
    /// container is gone for every reader at once (a delete killed after
    /// that leaves a directory without state, which the next delete
    /// removes).
    pub fn remove(self) -> Result<()> {
        let state = self.dir.join(STATE_FILE);
        match fs::remove_file(&state) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("remove {}", state.display())),
        }
        crate::fault::point("delete:unlinked");
        // The files capsa makes, by name, then the directory: unlink and
        // rmdir need no fd, so this works at the fd limit too.
        for f in [STATE_TMP, EXEC_SOCKET] {
            let _ = fs::remove_file(self.dir.join(f));
        }
        match fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                fs::remove_dir_all(&self.dir).ctx(|| format!("remove {}", self.dir.display()))
            }
            Err(e) => Err(e).ctx(|| format!("remove {}", self.dir.display())),
        }
    }

    /// For the child of a clone of this process (the container's init):
    /// makes the child's copy of the lock's fd refer to /dev/null instead.
    /// A flock belongs to the open file, which the child would otherwise
    /// share: the lock would then outlive a capsa killed mid-create for as
    /// long as its init lives, and hold up the delete meant to clean up.
    /// The parent's lock is untouched.
    pub fn release_in_child(&self) {
        use std::os::fd::AsRawFd;
        let Ok(null) = File::open("/dev/null") else {
            return;
        };
        // SAFETY: dup3 atomically makes our own fd `lock` a copy of the
        // /dev/null fd (close-on-exec); the Flock keeps owning a valid fd,
        // so nothing that later uses or closes it touches another file.
        unsafe { libc::dup3(null.as_raw_fd(), self._lock.as_raw_fd(), libc::O_CLOEXEC) };
    }

    pub fn exec_socket(&self) -> PathBuf {
        self.dir.join(EXEC_SOCKET)
    }
}

pub fn exec_socket_exists(store: &Store, id: &str) -> bool {
    store.dir(id).join(EXEC_SOCKET).exists()
}

/// The directory of the state root to use when `--root` is not given
/// (see crate::rootless).
pub fn default_root() -> PathBuf {
    crate::rootless::default_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for good in ["a", "abc-1_2+3.4", "A.b", &"x".repeat(1024)] {
            validate_id(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a b",
            "a\0b",
            "é",
            &"x".repeat(1025),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
