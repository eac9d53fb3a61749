//! The cgroup v1 backend (legacy and hybrid hosts): one directory per
//! hierarchy, each controller's files written the way runc writes them.

use super::{Fields, Manager, Record, UNIFIED, devices, oom, stats, write, write_error};
use crate::error::{Error, Result};
use nix::errno::Errno;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxPids, LinuxRdma, LinuxResources,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct V1 {
    rec: Record,
}

/// A value of 0 means "not set" for these fields, as in runc (clients such
/// as `runc update` send 0 for what they leave alone).
fn set_i64(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

fn set_u64(v: Option<u64>) -> Option<u64> {
    v.filter(|v| *v != 0)
}

impl V1 {
    pub fn new(rec: Record) -> V1 {
        V1 { rec }
    }

    fn dir(&self, ctrl: &str) -> Option<&Path> {
        self.rec.paths.get(ctrl).map(PathBuf::as_path)
    }

    /// The controller's directory, or an error naming the field that needs it.
    fn need(&self, ctrl: &str, field: &str) -> Result<&Path> {
        self.dir(ctrl).ok_or_else(|| {
            Error::msg(format!(
                "{field}: the {ctrl} cgroup controller is not mounted on this host"
            ))
        })
    }

    fn set_cpuset(&self, cpu: Option<&LinuxCpu>, f: &Fields) -> Result<()> {
        let Some(cpu) = cpu else { return Ok(()) };
        for (file, val, name) in [
            ("cpuset.cpus", cpu.cpus(), "cpu.cpus"),
            ("cpuset.mems", cpu.mems(), "cpu.mems"),
        ] {
            if let Some(v) = val.as_deref().filter(|v| !v.is_empty()) {
                let field = f.name(name);
                write(self.need("cpuset", &field)?, file, v, &field)?;
            }
        }
        Ok(())
    }

    /// The rules in order, then runc's defaults: `a` rules switch between
    /// deny-all and allow-all, the others add or remove exceptions.
    fn set_devices(&self, devs: Option<&Vec<LinuxDeviceCgroup>>, f: &Fields) -> Result<()> {
        let Some(devs) = devs else { return Ok(()) };
        let field = f.name("devices");
        let rules = devices::rules(Some(devs), &field)?;
        let dir = self.need("devices", &field)?;
        // Each write is one rule: the two files are opened once for all.
        let mut files: [Option<std::fs::File>; 2] = [None, None];
        for (i, r) in rules.iter().enumerate() {
            let file = if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            let name = if i < devs.len() {
                format!("{field}[{i}]")
            } else {
                format!("{field} (runc's default rule {})", r.v1_line())
            };
            let line = r.v1_line();
            let slot = &mut files[usize::from(r.allow)];
            if slot.is_none() {
                *slot = Some(
                    super::open_write(dir, file)
                        .map_err(|e| write_error(dir, file, &line, &name, e))?,
                );
            }
            let f = slot.as_mut().expect("just opened");
            std::io::Write::write_all(f, line.as_bytes())
                .map_err(|e| write_error(dir, file, &line, &name, super::errno_of(&e)))?;
        }
        Ok(())
    }

    fn set_memory(&self, m: Option<&LinuxMemory>, f: &Fields) -> Result<()> {
        let Some(m) = m else { return Ok(()) };
        let limit = set_i64(m.limit());
        let mut swap = set_i64(m.swap());
        let reservation = set_i64(m.reservation());
        let any = limit.is_some()
            || swap.is_some()
            || reservation.is_some()
            || set_i64(m.kernel()).is_some()
            || set_i64(m.kernel_tcp()).is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some();
        if !any {
            return Ok(());
        }
        let dir = self.need("memory", &f.name("memory"))?;
        let lf = f.name("memory.limit");
        let sf = f.name("memory.swap");
        if limit == Some(-1) && swap.is_none() {
            // Unlimited memory implies unlimited swap, or the old swap limit
            // would now be below the memory limit.
            swap = Some(-1);
        }
        if let Some(l) = limit.filter(|l| *l > 0)
            && f.update
            && m.check_before_update() == Some(true)
        {
            let usage = super::read_u64(dir, "memory.usage_in_bytes").unwrap_or(0);
            if (l as u64) < usage {
                return Err(Error::msg(format!(
                    "{lf}: rejecting memory limit {l} below the current usage {usage} (checkBeforeUpdate)"
                )));
            }
        }
        let write_swap = |v: i64| {
            if !dir.join("memory.memsw.limit_in_bytes").exists() {
                return Err(Error::msg(format!(
                    "{sf}: swap accounting is not enabled on this host (no memory.memsw.limit_in_bytes)"
                )));
            }
            write(dir, "memory.memsw.limit_in_bytes", &v.to_string(), &sf)
        };
        // memory.limit must stay <= memory.memsw.limit at every step: raise
        // swap first when it grows.
        match (limit, swap) {
            (Some(l), Some(s)) => {
                let cur = super::read_u64(dir, "memory.limit_in_bytes").unwrap_or(u64::MAX);
                if s == -1 || cur < s as u64 {
                    write_swap(s)?;
                    write(dir, "memory.limit_in_bytes", &l.to_string(), &lf)?;
                } else {
                    write(dir, "memory.limit_in_bytes", &l.to_string(), &lf)?;
                    write_swap(s)?;
                }
            }
            (Some(l), None) => write(dir, "memory.limit_in_bytes", &l.to_string(), &lf)?,
            (None, Some(s)) => write_swap(s)?,
            (None, None) => {}
        }
        if let Some(r) = reservation {
            let rf = f.name("memory.reservation");
            write(dir, "memory.soft_limit_in_bytes", &r.to_string(), &rf)?;
        }
        for (v, file, name) in [
            (m.kernel(), "memory.kmem.limit_in_bytes", "memory.kernel"),
            (
                m.kernel_tcp(),
                "memory.kmem.tcp.limit_in_bytes",
                "memory.kernelTCP",
            ),
        ] {
            let Some(v) = set_i64(v) else { continue };
            let field = f.name(name);
            if dir.join(file).exists() {
                write(dir, file, &v.to_string(), &field)?;
                // Linux 5.16+ keeps memory.kmem.limit_in_bytes but ignores it.
                if v > 0 && super::read_u64(dir, file).is_some_and(|got| got >= 1 << 62) {
                    crate::logging::warn(&format!(
                        "{field}: ignored by this kernel (kernel memory is no longer limited separately)"
                    ));
                }
            } else {
                // Deprecated by the runtime-spec; runc ignores it always.
                crate::logging::warn(&format!(
                    "{field}: ignored: this kernel has no kernel memory limits"
                ));
            }
        }
        if let Some(s) = m.swappiness() {
            let field = f.name("memory.swappiness");
            if s > 100 {
                return Err(Error::msg(format!(
                    "{field}: {s} is not in the range 0-100"
                )));
            }
            write(dir, "memory.swappiness", &s.to_string(), &field)?;
        }
        if let Some(d) = m.disable_oom_killer() {
            let field = f.name("memory.disableOOMKiller");
            write(dir, "memory.oom_control", if d { "1" } else { "0" }, &field)?;
        }
        if let Some(h) = m.use_hierarchy() {
            let field = f.name("memory.useHierarchy");
            write(
                dir,
                "memory.use_hierarchy",
                if h { "1" } else { "0" },
                &field,
            )?;
        }
        Ok(())
    }

    fn set_cpu(&self, cpu: Option<&LinuxCpu>, f: &Fields) -> Result<()> {
        let Some(cpu) = cpu else { return Ok(()) };
        let need = |name: &str| self.need("cpu", &f.name(name));
        // An idle group refuses shares (its weight is the minimum): leaving
        // idle goes first, entering it last, and shares are not rewritten
        // while it stays idle.
        let idle = cpu.idle();
        let stays_idle = idle.is_some_and(|i| i != 0)
            && self
                .dir("cpu")
                .and_then(|d| super::read(d, "cpu.idle"))
                .as_deref()
                == Some("1");
        if idle == Some(0) {
            write(need("cpu.idle")?, "cpu.idle", "0", &f.name("cpu.idle"))?;
        }
        if let Some(s) = set_u64(cpu.shares()).filter(|_| !stays_idle) {
            let field = f.name("cpu.shares");
            let dir = need("cpu.shares")?;
            write(dir, "cpu.shares", &s.to_string(), &field)?;
            // The kernel clamps silently; say so instead.
            if let Some(got) = super::read_u64(dir, "cpu.shares")
                && got != s
            {
                return Err(Error::msg(format!(
                    "{field}: the kernel set {got} instead of {s} (its range is 2-262144)"
                )));
            }
        }
        let period = set_u64(cpu.period());
        let quota = set_i64(cpu.quota());
        let mut period_pending = false;
        if let Some(p) = period {
            let field = f.name("cpu.period");
            let dir = need("cpu.period")?;
            let v = p.to_string();
            match super::write_raw(dir, "cpu.cfs_period_us", &v) {
                Ok(()) => {}
                // A shorter period can be refused while the old quota would
                // exceed the parent's; retried after the quota.
                Err(Errno::EINVAL) if quota.is_some() => period_pending = true,
                Err(e) => {
                    return Err(super::write_error(dir, "cpu.cfs_period_us", &v, &field, e));
                }
            }
        }
        if let Some(b) = cpu.burst() {
            let field = f.name("cpu.burst");
            write(
                need("cpu.burst")?,
                "cpu.cfs_burst_us",
                &b.to_string(),
                &field,
            )?;
        }
        if let Some(q) = quota {
            let field = f.name("cpu.quota");
            write(
                need("cpu.quota")?,
                "cpu.cfs_quota_us",
                &q.to_string(),
                &field,
            )?;
            if period_pending && let Some(p) = period {
                let field = f.name("cpu.period");
                write(
                    need("cpu.period")?,
                    "cpu.cfs_period_us",
                    &p.to_string(),
                    &field,
                )?;
            }
        }
        if let Some(p) = set_u64(cpu.realtime_period()) {
            let field = f.name("cpu.realtimePeriod");
            write(
                need("cpu.realtimePeriod")?,
                "cpu.rt_period_us",
                &p.to_string(),
                &field,
            )?;
        }
        if let Some(r) = set_i64(cpu.realtime_runtime()) {
            let field = f.name("cpu.realtimeRuntime");
            write(
                need("cpu.realtimeRuntime")?,
                "cpu.rt_runtime_us",
                &r.to_string(),
                &field,
            )?;
        }
        if let Some(i) = idle.filter(|i| *i != 0) {
            let field = f.name("cpu.idle");
            write(need("cpu.idle")?, "cpu.idle", &i.to_string(), &field)?;
        }
        Ok(())
    }

    fn set_pids(&self, pids: Option<&LinuxPids>, f: &Fields) -> Result<()> {
        let Some(limit) = pids.map(|p| p.limit()).filter(|l| *l != 0) else {
            return Ok(());
        };
        let field = f.name("pids.limit");
        let v = if limit < 0 {
            "max".to_string()
        } else {
            limit.to_string()
        };
        write(self.need("pids", &field)?, "pids.max", &v, &field)
    }

    fn set_blkio(&self, b: Option<&LinuxBlockIo>, f: &Fields) -> Result<()> {
        let Some(b) = b else { return Ok(()) };
        let need = |name: &str| self.need("blkio", &f.name(name));
        // Without CFQ (gone since Linux 5.0) the weights are BFQ's.
        let weight_file = |dir: &Path, cfq: &'static str, bfq: &'static str, field: &str| {
            if dir.join(cfq).exists() {
                Ok(cfq)
            } else if dir.join(bfq).exists() {
                Ok(bfq)
            } else {
                Err(Error::msg(format!(
                    "{field}: this host does not support it (neither {cfq} nor {bfq} exists: no CFQ or BFQ I/O scheduler)"
                )))
            }
        };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let field = f.name("blockIO.weight");
            let dir = need("blockIO.weight")?;
            let file = weight_file(dir, "blkio.weight", "blkio.bfq.weight", &field)?;
            write(dir, file, &w.to_string(), &field)?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            let field = f.name("blockIO.leafWeight");
            write(
                need("blockIO.leafWeight")?,
                "blkio.leaf_weight",
                &w.to_string(),
                &field,
            )?;
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let base = format!("blockIO.weightDevice[{i}]");
            if let Some(w) = d.weight() {
                let field = f.name(&format!("{base}.weight"));
                let dir = need(&base)?;
                let file = weight_file(
                    dir,
                    "blkio.weight_device",
                    "blkio.bfq.weight_device",
                    &field,
                )?;
                write(
                    dir,
                    file,
                    &format!("{}:{} {w}", d.major(), d.minor()),
                    &field,
                )?;
            }
            if let Some(w) = d.leaf_weight() {
                let field = f.name(&format!("{base}.leafWeight"));
                let v = format!("{}:{} {w}", d.major(), d.minor());
                write(need(&base)?, "blkio.leaf_weight_device", &v, &field)?;
            }
        }
        for (list, name, file, _) in super::throttles(b) {
            for (i, d) in list.iter().enumerate() {
                let field = f.name(&format!("blockIO.{name}[{i}]"));
                let v = format!("{}:{} {}", d.major(), d.minor(), d.rate());
                write(self.need("blkio", &field)?, file, &v, &field)?;
            }
        }
        Ok(())
    }

    fn set_hugetlb(&self, limits: Option<&Vec<LinuxHugepageLimit>>, f: &Fields) -> Result<()> {
        for (i, l) in limits.into_iter().flatten().enumerate() {
            let field = f.name(&format!("hugepageLimits[{i}]"));
            let size = check_pagesize(l.page_size(), &field)?;
            let dir = self.need("hugetlb", &field)?;
            let v = l.limit().to_string();
            write(dir, &format!("hugetlb.{size}.limit_in_bytes"), &v, &field)?;
            let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
            if dir.join(&rsvd).exists() {
                write(dir, &rsvd, &v, &field)?;
            }
        }
        Ok(())
    }

    fn set_network(&self, n: Option<&LinuxNetwork>, f: &Fields) -> Result<()> {
        let Some(n) = n else { return Ok(()) };
        if let Some(id) = n.class_id() {
            let field = f.name("network.classID");
            write(
                self.need("net_cls", &field)?,
                "net_cls.classid",
                &id.to_string(),
                &field,
            )?;
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let field = f.name(&format!("network.priorities[{i}]"));
            let v = format!("{} {}", p.name(), p.priority());
            write(
                self.need("net_prio", &field)?,
                "net_prio.ifpriomap",
                &v,
                &field,
            )?;
        }
        Ok(())
    }

    fn set_rdma(&self, r: Option<&HashMap<String, LinuxRdma>>, f: &Fields) -> Result<()> {
        for (dev, l) in r.into_iter().flatten() {
            let field = f.name(&format!("rdma[{dev:?}]"));
            write(
                self.need("rdma", &field)?,
                "rdma.max",
                &rdma_line(dev, l),
                &field,
            )?;
        }
        Ok(())
    }
}

/// A hugepage size as the control files spell it (`2MB`, `1GB`, `64KB`).
pub(crate) fn check_pagesize<'a>(size: &'a str, field: &str) -> Result<&'a str> {
    let ok = size
        .strip_suffix("B")
        .and_then(|s| s.strip_suffix(['K', 'M', 'G']))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(size)
    } else {
        Err(Error::msg(format!(
            "{field}.pageSize: {size:?} is not a page size such as \"2MB\" or \"1GB\""
        )))
    }
}

pub(crate) fn rdma_line(dev: &str, l: &LinuxRdma) -> String {
    let mut s = dev.to_string();
    if let Some(h) = l.hca_handles() {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = l.hca_objects() {
        s.push_str(&format!(" hca_object={o}"));
    }
    s
}

/// A new cpuset cgroup starts with no CPUs and no memory nodes, and no
/// process may join it so: give it its parent's.
fn init_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if super::read(dir, file).is_some_and(|v| v.is_empty())
            && let Some(v) = super::read(parent, file)
        {
            write(dir, file, &v, &format!("cgroup {}", dir.display()))?;
        }
    }
    Ok(())
}

impl Manager for V1 {
    fn record(&self) -> &Record {
        &self.rec
    }

    fn create(&mut self) -> Result<()> {
        let dirs: Vec<(String, PathBuf)> = self
            .rec
            .paths
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let cpuset_dir = self.rec.paths.get("cpuset").cloned();
        let mut done: Vec<PathBuf> = Vec::new();
        for (name, dir) in dirs {
            if done.contains(&dir) {
                continue;
            }
            let cpuset = cpuset_dir.as_ref() == Some(&dir);
            // Recorded as they are made, so a failure half-way leaves
            // nothing that delete would not find.
            super::mkdir_all(&dir, &mut self.rec.created, &mut |d| {
                if cpuset { init_cpuset(d) } else { Ok(()) }
            })
            .map_err(|e| e.prefixed(format!("cgroup {name}")))?;
            if cpuset {
                init_cpuset(&dir)?;
            }
            done.push(dir);
        }
        super::adopt_unit_dirs(&mut self.rec)
    }

    fn set(&self, r: &LinuxResources, f: &Fields) -> Result<()> {
        self.set_cpuset(r.cpu().as_ref(), f)?;
        if !f.update {
            self.set_devices(r.devices().as_ref(), f)?;
        }
        self.set_memory(r.memory().as_ref(), f)?;
        self.set_cpu(r.cpu().as_ref(), f)?;
        self.set_pids(r.pids().as_ref(), f)?;
        self.set_blkio(r.block_io().as_ref(), f)?;
        self.set_hugetlb(r.hugepage_limits().as_ref(), f)?;
        self.set_network(r.network().as_ref(), f)?;
        self.set_rdma(r.rdma().as_ref(), f)?;
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::msg(format!(
                "{}: raw cgroup v2 files need a cgroup v2 host; this host's controllers are v1",
                f.name("unified")
            )));
        }
        Ok(())
    }

    fn procs_dir(&self) -> Option<&Path> {
        [
            "pids",
            "devices",
            "memory",
            "freezer",
            "cpu",
            "name=systemd",
            UNIFIED,
        ]
        .iter()
        .find_map(|c| self.dir(c))
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let dir = self.dir("freezer").ok_or_else(|| {
            Error::msg("cgroups: the freezer controller is not mounted on this host")
        })?;
        let field = format!("cgroup {}", dir.display());
        if !frozen {
            return write(dir, "freezer.state", "THAWED", &field);
        }
        // FREEZING can last while tasks are in uninterruptible sleep; keep
        // asking, and give up (thawed) if it does not settle.
        for _ in 0..100 {
            write(dir, "freezer.state", "FROZEN", &field)?;
            if super::wait_until(Duration::from_millis(10), || {
                super::read(dir, "freezer.state").as_deref() == Some("FROZEN")
            }) {
                return Ok(());
            }
        }
        let _ = write(dir, "freezer.state", "THAWED", &field);
        Err(Error::msg(format!(
            "cgroup {}: the processes could not be frozen",
            dir.display()
        )))
    }

    fn is_frozen(&self) -> bool {
        self.dir("freezer")
            .and_then(|d| super::read(d, "freezer.state"))
            .is_some_and(|s| s == "FROZEN")
    }

    fn can_freeze(&self) -> bool {
        self.dir("freezer").is_some()
    }

    fn stats(&self) -> Result<stats::Stats> {
        Ok(stats::v1(&self.rec.paths))
    }

    fn oom_watch(&self) -> Result<Option<oom::OomWatch>> {
        match self.dir("memory") {
            Some(d) => oom::OomWatch::v1(d).map(Some),
            None => Ok(None),
        }
    }
}
