//! The on-disk record of each container under `--root/ID/`: `state.json`
//! (written to a temporary file and renamed, so readers never see half of
//! it), a lock taken by every command that changes the container, and the
//! `exec.sock` the init waits on until `start`.

use crate::bail;
use crate::error::{Context, Error, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
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
    /// Set once `start` has released the init.
    #[serde(default)]
    pub started: bool,
    /// The config the container was created from, so later commands do not
    /// depend on the bundle's config.json staying the same.
    pub config: serde_json::Value,
    /// The container's cgroups (absent in states written before capsa
    /// managed cgroups).
    #[serde(default)]
    pub cgroup: Option<crate::cgroups::Record>,
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
        lock_dir(dir)
    }

    /// Locks an existing container's directory.
    pub fn lock(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        let dir = self.dir(id);
        if !dir.join(STATE_FILE).exists() {
            return Err(not_exist(id));
        }
        lock_dir(dir)
    }

    /// Reads a container's state without locking (writes are atomic).
    pub fn load(&self, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_exist(id)),
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

fn lock_dir(dir: PathBuf) -> Result<Locked> {
    let f = File::open(&dir).ctx(|| format!("open {}", dir.display()))?;
    let lock = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .ctx(|| format!("lock {}", dir.display()))?;
    Ok(Locked { dir, _lock: lock })
}

impl Locked {
    /// Writes state.json atomically: a temporary file, then a rename.
    pub fn save(&self, state: &State) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let path = self.dir.join(STATE_FILE);
        let data = serde_json::to_vec(state).map_err(|e| Error::msg(e.to_string()))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .ctx(|| format!("write {}", tmp.display()))?;
        // No fsync: the state describes live processes and lives in a
        // runtime directory (tmpfs on most hosts); a crash loses the
        // processes too. The rename alone keeps readers from seeing half.
        f.write_all(&data)
            .ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &path).ctx(|| format!("rename {}", path.display()))
    }

    /// Removes the whole state directory.
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.dir).ctx(|| format!("remove {}", self.dir.display()))
    }

    pub fn exec_socket(&self) -> PathBuf {
        self.dir.join(EXEC_SOCKET)
    }
}

pub fn exec_socket_exists(store: &Store, id: &str) -> bool {
    store.dir(id).join(EXEC_SOCKET).exists()
}

/// The directory of the state root to use when `--root` is not given.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/capsa");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("capsa"),
        _ => PathBuf::from(format!("/tmp/capsa-{}", nix::unistd::geteuid())),
    }
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
