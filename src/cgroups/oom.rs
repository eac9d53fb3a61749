//! OOM notifications for `events`: on v1 an eventfd registered on
//! memory.oom_control through cgroup.event_control; on v2 inotify on
//! memory.events and its `oom_kill` counter.

use crate::error::{Context, Result};
use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

pub struct OomWatch {
    dir: PathBuf,
    kind: Kind,
}

enum Kind {
    V1 {
        efd: EventFd,
        /// Kept open: the registration lasts as long as this fd.
        _control: std::fs::File,
    },
    V2 {
        ino: Inotify,
        seen: u64,
    },
}

impl OomWatch {
    pub fn v1(dir: &Path) -> Result<OomWatch> {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .ctx(|| "eventfd")?;
        let ctl_path = dir.join("memory.oom_control");
        let control =
            std::fs::File::open(&ctl_path).ctx(|| format!("open {}", ctl_path.display()))?;
        let reg = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        super::write(dir, "cgroup.event_control", &reg, "register for OOM events")?;
        Ok(OomWatch {
            dir: dir.to_path_buf(),
            kind: Kind::V1 {
                efd,
                _control: control,
            },
        })
    }

    pub fn v2(dir: &Path) -> Result<OomWatch> {
        let ino =
            Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ctx(|| "inotify")?;
        let file = dir.join("memory.events");
        ino.add_watch(&file, AddWatchFlags::IN_MODIFY)
            .ctx(|| format!("watch {}", file.display()))?;
        let seen = super::read_key(dir, "memory.events", "oom_kill").unwrap_or(0);
        Ok(OomWatch {
            dir: dir.to_path_buf(),
            kind: Kind::V2 { ino, seen },
        })
    }

    /// Becomes readable when there may be news.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { efd, .. } => efd.as_fd(),
            Kind::V2 { ino, .. } => ino.as_fd(),
        }
    }

    /// OOM events since the last call (0 if none); `None` once the cgroup
    /// is gone.
    pub fn take(&mut self) -> Option<u64> {
        match &mut self.kind {
            Kind::V1 { efd, .. } => {
                let n = match efd.read() {
                    Ok(n) => n,
                    Err(Errno::EAGAIN) => 0,
                    Err(_) => return None,
                };
                // The eventfd also fires when the cgroup is removed.
                self.dir.join("memory.oom_control").exists().then_some(n)
            }
            Kind::V2 { ino, seen } => {
                while matches!(ino.read_events(), Ok(ev) if !ev.is_empty()) {}
                let now = super::read_key(&self.dir, "memory.events", "oom_kill")?;
                let n = now.saturating_sub(*seen);
                *seen = now;
                Some(n)
            }
        }
    }
}
