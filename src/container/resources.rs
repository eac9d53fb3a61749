//! The lifecycle commands that work on a container's cgroups: update,
//! pause, resume, ps and events, with runc's rules and messages.

use super::{Runtime, Status, init_pidfd};
use crate::bail;
use crate::cgroups::{self, Fields, Manager, Record};
use crate::error::{Context, Error, Result};
use crate::state::State;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn cgroup_of(st: &State) -> Result<&Record> {
    st.cgroup.as_ref().ok_or_else(|| {
        Error::msg(format!(
            "container {:?} has no cgroup: it was created without one (rootless without a \
             delegated cgroup, or --cgroup-manager disabled)",
            st.id
        ))
    })
}

/// The cgroup of a container whose limits or freezer capsa is about to
/// change: as root, only one capsa made (and marked) for it, so that a
/// state.json pointing at a host cgroup cannot have capsa freeze or limit
/// host processes.
fn own_cgroup_of(st: &State) -> Result<&Record> {
    let rec = cgroup_of(st)?;
    if crate::cgroups::marks_apply() && !cgroups::all_made_by_create(rec) {
        bail!(
            "container {:?}: its cgroup was not made by capsa for it; refusing to change it \
             (is state.json forged?)",
            st.id
        );
    }
    Ok(rec)
}

impl Runtime {
    /// Merges `resources` (a runtime-spec LinuxResources document; device
    /// rules are ignored, as runc ignores them) into the resources in
    /// force and applies the result.
    pub fn update(&self, id: &str, resources: &serde_json::Value) -> Result<()> {
        let locked = self.store.lock(id)?;
        let mut st = self.load_checked(id)?;
        if self.status(&st) == Status::Stopped {
            bail!("container not running");
        }
        let rec = own_cgroup_of(&st)?;
        let merged = cgroups::merge_resources(rec.resources.as_ref(), resources)?;
        if rec.unit.is_some() {
            cgroups::systemd::update(rec, &merged)?;
        } else {
            cgroups::open(rec).set(&merged, &Fields::update())?;
        }
        if let Some(rec) = st.cgroup.as_mut() {
            rec.resources = Some(merged);
        }
        locked.save(&st)
    }

    /// Freezes every process of a created or running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let _locked = self.store.lock(id)?;
        let st = self.load_checked(id)?;
        if !matches!(self.status(&st), Status::Created | Status::Running) {
            bail!("container not running");
        }
        let m = cgroups::open(own_cgroup_of(&st)?);
        if !m.can_freeze() {
            bail!("cannot pause container {id:?}: no freezer cgroup on this host");
        }
        m.freeze(true)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let _locked = self.store.lock(id)?;
        let st = self.load_checked(id)?;
        if self.status(&st) != Status::Paused {
            bail!("container not paused");
        }
        cgroups::open(own_cgroup_of(&st)?).freeze(false)
    }

    /// Host pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let st = self.load_checked(id)?;
        match &st.cgroup {
            Some(rec) => cgroups::pids(cgroups::open(rec).as_ref()),
            None if self.status(&st) == Status::Stopped => Ok(Vec::new()),
            None => Ok(super::container_pids(&st)),
        }
    }

    /// `ps ARGS` (default `-ef`) on the host, keeping its header and the
    /// lines of the container's processes, as `runc ps` does.
    pub fn ps_table(&self, id: &str, ps_args: &[String]) -> Result<String> {
        let pids = self.pids(id)?;
        let default = ["-ef".to_string()];
        let args = if ps_args.is_empty() {
            &default[..]
        } else {
            ps_args
        };
        let out = std::process::Command::new("ps")
            .args(args)
            .output()
            .ctx(|| "run ps")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "ps {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                text.trim()
            );
        }
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let col = header
            .split_whitespace()
            .position(|c| c == "PID")
            .ok_or_else(|| Error::msg("ps: no PID column in its output"))?;
        let mut res = format!("{header}\n");
        for l in lines {
            let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
            if pid.is_some_and(|p: i32| pids.contains(&p)) {
                res.push_str(l);
                res.push('\n');
            }
        }
        Ok(res)
    }

    /// runc's `events`: with `stats_only` one stats event; otherwise a
    /// stats event every `interval` and an `oom` event for each OOM
    /// notification, until the container stops. One JSON object a line.
    pub fn events(
        &self,
        id: &str,
        stats_only: bool,
        interval: Duration,
        out: &mut dyn Write,
    ) -> Result<()> {
        if interval.is_zero() {
            bail!("duration interval must be greater than 0");
        }
        let st = self.load_checked(id)?;
        if matches!(self.status(&st), Status::Stopped | Status::Creating) {
            bail!("container with id {id} is not running");
        }
        let m = cgroups::open(cgroup_of(&st)?);
        let emit = |out: &mut dyn Write, typ: &str, data: Option<serde_json::Value>| {
            let mut ev = serde_json::json!({"type": typ, "id": id});
            if let Some(d) = data {
                ev["data"] = d;
            }
            writeln!(out, "{ev}")
                .and_then(|()| out.flush())
                .ctx(|| "write event")
        };
        let stats = |m: &dyn Manager| -> Result<serde_json::Value> {
            serde_json::to_value(m.stats()?).map_err(|e| Error::msg(e.to_string()))
        };
        if stats_only {
            return emit(out, "stats", Some(stats(m.as_ref())?));
        }
        let Some(init) = init_pidfd(&st) else {
            bail!("container with id {id} is not running");
        };
        let mut watch = m.oom_watch()?;
        let mut next = Instant::now() + interval;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let ms = PollTimeout::try_from(wait.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = vec![PollFd::new(init.as_fd(), PollFlags::POLLIN)];
            if let Some(w) = &watch {
                fds.push(PollFd::new(w.fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, ms) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).ctx(|| "poll"),
            }
            let exited = fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
            drop(fds);
            // OOM news first: an OOM kill of the init wakes both.
            if let Some(w) = &mut watch {
                match w.take() {
                    Some(0) => {}
                    Some(_) => emit(out, "oom", None)?,
                    None => watch = None,
                }
            }
            if exited {
                return Ok(());
            }
            if Instant::now() >= next {
                match stats(m.as_ref()) {
                    Ok(s) => emit(out, "stats", Some(s))?,
                    Err(e) => crate::logging::error(&e.to_string()),
                }
                next += interval;
            }
        }
    }
}
