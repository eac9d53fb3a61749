//! How a new container process (the init, or an `exec` process) gets into
//! the container's cgroups without anyone writing its pid.
//!
//! Moving another process (writing its pid to `cgroup.procs`) makes the
//! kernel take its global threadgroup lock for writing, which first waits
//! for an RCU grace period: 5 to 12 ms measured on an idle host, the largest
//! single cost of a `create`. Two moves avoid that lock:
//! - cgroup2: the process is born in its directory (clone3 with
//!   CLONE_INTO_CGROUP, see [`crate::sys::clone_into_cgroup`]);
//! - cgroup v1: the process moves itself by writing `0` to `tasks`, which
//!   moves only the calling thread and needs no threadgroup lock. capsa is
//!   single-threaded, so that thread is the whole process.
//!
//! The parent opens every file before it clones; the kernel checks the
//! credentials the file was opened with (the parent's), so the child needs
//! no access of its own to the host's cgroup filesystems, whatever user
//! namespace it is already in.

use super::{Record, UNIFIED, write_error};
use crate::error::{Error, Result, errno_text};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The files a new process joins its cgroups through, opened by the parent.
pub struct Join {
    /// v1: each hierarchy's `tasks`, with the directory (for errors).
    tasks: Vec<(PathBuf, OwnedFd)>,
    /// The cgroup2 directory (the only one on a cgroup2 host, `unified` on
    /// a hybrid one) and its `cgroup.procs`, in case clone3 could not put
    /// the child there.
    v2: Option<(PathBuf, OwnedFd, OwnedFd)>,
}

/// Opens `dir/file` (`dir` itself when `file` is empty).
fn open(dir: &Path, file: &str, flags: OFlag) -> Result<OwnedFd> {
    let path = dir.join(file);
    nix::fcntl::open(&path, flags | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| match e {
        Errno::ENOENT => write_error(dir, file, "", &format!("cgroup {}", dir.display()), e),
        e => Error::msg(format!(
            "cgroup {}: open {}: {}",
            dir.display(),
            path.display(),
            errno_text(e)
        )),
    })
}

impl Join {
    /// Opens the files for the cgroups of `rec`, which must exist.
    pub fn open(rec: &Record) -> Result<Join> {
        let mut join = Join {
            tasks: Vec::new(),
            v2: None,
        };
        // A cgroup2 host has only this one; a hybrid host has it beside
        // the v1 hierarchies.
        let v2_dir = rec.paths.get(UNIFIED);
        for dir in rec.dirs() {
            if v2_dir.is_some_and(|d| d == dir) {
                let d = open(dir, "", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                let procs = open(dir, "cgroup.procs", OFlag::O_WRONLY)?;
                join.v2 = Some((dir.to_path_buf(), d, procs));
            } else {
                let tasks = open(dir, "tasks", OFlag::O_WRONLY)?;
                join.tasks.push((dir.to_path_buf(), tasks));
            }
        }
        Ok(join)
    }

    /// The cgroup2 directory to give clone3 (CLONE_INTO_CGROUP).
    pub fn cgroup_fd(&self) -> Option<BorrowedFd<'_>> {
        self.v2.as_ref().map(|(_, d, _)| d.as_fd())
    }

    /// In the new process, before anything else: moves it into each
    /// cgroup, the cgroup2 one too unless it was born there. (The files are
    /// close-on-exec.)
    pub fn join_self(&self, born: crate::sys::Born) -> Result<()> {
        let moved = |dir: &Path, file: &str, fd: &OwnedFd| -> Result<()> {
            match nix::unistd::write(fd, b"0") {
                Ok(_) => Ok(()),
                Err(e) => Err(write_error(
                    dir,
                    file,
                    "0",
                    &format!("cgroup {}: join", dir.display()),
                    e,
                )),
            }
        };
        if let Some((dir, _, procs)) = &self.v2
            && born != crate::sys::Born::InCgroup
        {
            moved(dir, "cgroup.procs", procs)?;
        }
        for (dir, tasks) in &self.tasks {
            moved(dir, "tasks", tasks)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Join {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Join")
            .field(
                "tasks",
                &self.tasks.iter().map(|(d, _)| d).collect::<Vec<_>>(),
            )
            .field("v2", &self.v2.as_ref().map(|(d, _, _)| d))
            .finish()
    }
}
