//! The cgroup v2 backend: one directory, the controllers enabled from the
//! hierarchy's root down to it, v1-style values converted the way runc
//! converts them, and devices filtered by an eBPF program.

use super::{Fields, Manager, Record, UNIFIED, devices, ebpf, oom, stats, write};
use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct V2 {
    rec: Record,
    /// The hierarchy's root, known at create: controllers are enabled in
    /// every cgroup from there down to the container's.
    mount: Option<PathBuf>,
}

fn set_i64(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

/// runc's conversion of cpu.shares (2-262144) to cpu.weight (1-10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        s if s <= 2 => 1,
        s if s >= 262_144 => 10_000,
        s => 1 + ((s - 2) * 9999) / 262_142,
    }
}

/// runc's conversion of blkio.weight (10-1000) to io.weight (1-10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    match u64::from(w) {
        0 => 0,
        w if w <= 10 => 1,
        w => 1 + ((w - 10) * 9999) / 990,
    }
}

/// v1's memory+swap limit as v2's swap-only limit; `None` leaves it.
pub fn swap_to_v2(
    swap: Option<i64>,
    limit: Option<i64>,
) -> std::result::Result<Option<String>, String> {
    match (swap, limit) {
        (None, _) => Ok(None),
        (Some(-1), _) => Ok(Some("max".into())),
        (Some(_), None | Some(-1)) => Err("a swap limit needs a memory limit".into()),
        (Some(s), Some(l)) if s < l => Err(format!(
            "memory+swap ({s}) must not be below the memory limit ({l})"
        )),
        (Some(s), Some(l)) => Ok(Some((s - l).to_string())),
    }
}

fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

impl V2 {
    pub fn new(rec: Record, mount: Option<PathBuf>) -> V2 {
        V2 { rec, mount }
    }

    fn dir(&self) -> &Path {
        self.rec
            .paths
            .get(UNIFIED)
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("/nonexistent"))
    }

    /// Writes a controller's file; when it is missing, says whether the
    /// controller is not enabled here or the kernel lacks the file.
    fn write(&self, ctrl: &str, file: &str, value: &str, field: &str) -> Result<()> {
        let dir = self.dir();
        if !dir.join(file).exists() && dir.exists() {
            let enabled = super::read(dir, "cgroup.controllers").unwrap_or_default();
            if !enabled.split(' ').any(|c| c == ctrl) {
                return Err(Error::msg(format!(
                    "{field}: the {ctrl} controller is not available in cgroup {} (its cgroup.controllers: {enabled:?})",
                    dir.display()
                )));
            }
        }
        write(dir, file, value, field)
    }

    fn unsupported(field: &str, why: &str) -> Error {
        Error::msg(format!("{field}: not supported on cgroup v2: {why}"))
    }

    fn set_memory(&self, m: Option<&LinuxMemory>, f: &Fields) -> Result<()> {
        let Some(m) = m else { return Ok(()) };
        let limit = set_i64(m.limit());
        let mut swap = set_i64(m.swap());
        if limit == Some(-1) && swap.is_none() {
            swap = Some(-1);
        }
        let lf = f.name("memory.limit");
        if let Some(l) = limit.filter(|l| *l > 0)
            && f.update
            && m.check_before_update() == Some(true)
        {
            let usage = super::read_u64(self.dir(), "memory.current").unwrap_or(0);
            if (l as u64) < usage {
                return Err(Error::msg(format!(
                    "{lf}: rejecting memory limit {l} below the current usage {usage} (checkBeforeUpdate)"
                )));
            }
        }
        let sf = f.name("memory.swap");
        let swap_v2 = swap_to_v2(swap, limit).map_err(|e| Error::msg(format!("{sf}: {e}")))?;
        if let Some(s) = swap_v2 {
            self.write("memory", "memory.swap.max", &s, &sf)?;
        }
        if let Some(l) = limit {
            self.write("memory", "memory.max", &max_or(l), &lf)?;
        }
        if let Some(r) = set_i64(m.reservation()) {
            let rf = f.name("memory.reservation");
            self.write("memory", "memory.low", &max_or(r), &rf)?;
        }
        for (v, name) in [
            (m.kernel(), "memory.kernel"),
            (m.kernel_tcp(), "memory.kernelTCP"),
        ] {
            if set_i64(v).is_some() {
                // Deprecated by the runtime-spec; runc ignores it always.
                crate::logging::warn(&format!(
                    "{}: ignored: cgroup v2 has no kernel memory limits",
                    f.name(name)
                ));
            }
        }
        if m.swappiness().is_some() {
            return Err(Self::unsupported(
                &f.name("memory.swappiness"),
                "there is no per-cgroup swappiness",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(Self::unsupported(
                &f.name("memory.disableOOMKiller"),
                "the OOM killer cannot be disabled",
            ));
        }
        if m.use_hierarchy() == Some(false) {
            return Err(Self::unsupported(
                &f.name("memory.useHierarchy"),
                "accounting is always hierarchical",
            ));
        }
        Ok(())
    }

    fn set_cpu(&self, cpu: Option<&LinuxCpu>, f: &Fields) -> Result<()> {
        let Some(cpu) = cpu else { return Ok(()) };
        for (v, name) in [(cpu.cpus(), "cpu.cpus"), (cpu.mems(), "cpu.mems")] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let file = if name == "cpu.cpus" {
                    "cpuset.cpus"
                } else {
                    "cpuset.mems"
                };
                self.write("cpuset", file, v, &f.name(name))?;
            }
        }
        // An idle group refuses a weight: leaving idle goes first, entering
        // it last, and the weight is not rewritten while it stays idle.
        let idle = cpu.idle();
        let stays_idle = idle.is_some_and(|i| i != 0)
            && super::read(self.dir(), "cpu.idle").as_deref() == Some("1");
        if idle == Some(0) {
            self.write("cpu", "cpu.idle", "0", &f.name("cpu.idle"))?;
        }
        if let Some(s) = cpu.shares().filter(|s| *s != 0 && !stays_idle) {
            let w = shares_to_weight(s).to_string();
            self.write("cpu", "cpu.weight", &w, &f.name("cpu.shares"))?;
        }
        let quota = set_i64(cpu.quota());
        let period = cpu.period().filter(|p| *p != 0);
        if quota.is_some() || period.is_some() {
            let mut v = match quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            if let Some(p) = period {
                v.push_str(&format!(" {p}"));
            }
            let field = f.name(if quota.is_some() {
                "cpu.quota"
            } else {
                "cpu.period"
            });
            self.write("cpu", "cpu.max", &v, &field)?;
        }
        if let Some(b) = cpu.burst() {
            self.write("cpu", "cpu.max.burst", &b.to_string(), &f.name("cpu.burst"))?;
        }
        if let Some(i) = idle.filter(|i| *i != 0) {
            self.write("cpu", "cpu.idle", &i.to_string(), &f.name("cpu.idle"))?;
        }
        for (set, name) in [
            (
                set_i64(cpu.realtime_runtime()).is_some(),
                "cpu.realtimeRuntime",
            ),
            (
                cpu.realtime_period().is_some_and(|p| p != 0),
                "cpu.realtimePeriod",
            ),
        ] {
            if set {
                return Err(Self::unsupported(
                    &f.name(name),
                    "there are no realtime CPU limits",
                ));
            }
        }
        Ok(())
    }

    fn set_io(&self, b: Option<&LinuxBlockIo>, f: &Fields) -> Result<()> {
        let Some(b) = b else { return Ok(()) };
        // BFQ takes blkio-style weights as they are; io.weight wants them
        // converted.
        let bfq = self.dir().join("io.bfq.weight").exists();
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let field = f.name("blockIO.weight");
            if bfq {
                self.write("io", "io.bfq.weight", &w.to_string(), &field)?;
            } else {
                let v = format!("default {}", blkio_to_io_weight(w));
                self.write("io", "io.weight", &v, &field)?;
            }
        }
        if b.leaf_weight().is_some_and(|w| w != 0) {
            return Err(Self::unsupported(
                &f.name("blockIO.leafWeight"),
                "leaf weights were CFQ's only",
            ));
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let base = format!("blockIO.weightDevice[{i}]");
            if let Some(w) = d.weight() {
                let field = f.name(&format!("{base}.weight"));
                let (file, w) = if bfq {
                    ("io.bfq.weight", u64::from(w))
                } else {
                    ("io.weight", blkio_to_io_weight(w))
                };
                self.write(
                    "io",
                    file,
                    &format!("{}:{} {w}", d.major(), d.minor()),
                    &field,
                )?;
            }
            if d.leaf_weight().is_some() {
                return Err(Self::unsupported(
                    &f.name(&format!("{base}.leafWeight")),
                    "leaf weights were CFQ's only",
                ));
            }
        }
        for (list, name, _, key) in super::throttles(b) {
            for (i, d) in list.iter().enumerate() {
                let field = f.name(&format!("blockIO.{name}[{i}]"));
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                let v = format!("{}:{} {key}={rate}", d.major(), d.minor());
                self.write("io", "io.max", &v, &field)?;
            }
        }
        Ok(())
    }

    fn set_devices(&self, r: &LinuxResources, f: &Fields) -> Result<()> {
        let Some(devs) = r.devices() else {
            return Ok(());
        };
        let field = f.name("devices");
        let rules = devices::rules(Some(devs), &field)?;
        let prog = ebpf::program(&devices::effective(&rules));
        let fd = ebpf::load(&prog).map_err(|e| e.prefixed(&field))?;
        ebpf::attach(&fd, self.dir()).map_err(|e| e.prefixed(&field))
    }

    /// Enables every controller the parent offers, in each cgroup from the
    /// root down to the container's parent. Best effort, as runc does: a
    /// cgroup with processes of its own cannot delegate, and a limit that
    /// then finds its controller missing says so.
    fn enable_controllers(&self) {
        let Some(mount) = &self.mount else { return };
        let Ok(rel) = self.dir().strip_prefix(mount) else {
            return;
        };
        let mut cg = mount.clone();
        for comp in rel.components() {
            let avail = super::read(&cg, "cgroup.controllers").unwrap_or_default();
            let on = super::read(&cg, "cgroup.subtree_control").unwrap_or_default();
            let missing: Vec<String> = avail
                .split_whitespace()
                .filter(|c| !on.split_whitespace().any(|o| o == *c))
                .map(|c| format!("+{c}"))
                .collect();
            if !missing.is_empty()
                && super::write_raw(&cg, "cgroup.subtree_control", &missing.join(" ")).is_err()
            {
                for c in &missing {
                    let _ = super::write_raw(&cg, "cgroup.subtree_control", c);
                }
            }
            cg.push(comp);
        }
    }
}

impl Manager for V2 {
    fn record(&self) -> &Record {
        &self.rec
    }

    fn create(&mut self) -> Result<()> {
        let dir = self.dir().to_path_buf();
        super::mkdir_all(&dir, &mut self.rec.created, &mut |_| Ok(()))?;
        super::adopt_unit_dirs(&mut self.rec)?;
        self.enable_controllers();
        Ok(())
    }

    fn set(&self, r: &LinuxResources, f: &Fields) -> Result<()> {
        if !f.update {
            self.set_devices(r, f)?;
        }
        self.set_memory(r.memory().as_ref(), f)?;
        self.set_cpu(r.cpu().as_ref(), f)?;
        if let Some(limit) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l != 0) {
            self.write("pids", "pids.max", &max_or(limit), &f.name("pids.limit"))?;
        }
        self.set_io(r.block_io().as_ref(), f)?;
        for (i, l) in r.hugepage_limits().iter().flatten().enumerate() {
            let field = f.name(&format!("hugepageLimits[{i}]"));
            let size = super::v1::check_pagesize(l.page_size(), &field)?;
            let v = l.limit().to_string();
            self.write("hugetlb", &format!("hugetlb.{size}.max"), &v, &field)?;
            let rsvd = format!("hugetlb.{size}.rsvd.max");
            if self.dir().join(&rsvd).exists() {
                self.write("hugetlb", &rsvd, &v, &field)?;
            }
        }
        if let Some(n) = r.network()
            && (n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
        {
            return Err(Self::unsupported(
                &f.name("network"),
                "there are no net_cls and net_prio controllers (use eBPF in the network stack)",
            ));
        }
        for (dev, l) in r.rdma().iter().flatten() {
            let field = f.name(&format!("rdma[{dev:?}]"));
            self.write("rdma", "rdma.max", &super::v1::rdma_line(dev, l), &field)?;
        }
        let mut unified: Vec<_> = r.unified().iter().flatten().collect();
        unified.sort();
        for (k, v) in unified {
            let field = f.name(&format!("unified[{k:?}]"));
            if k.is_empty() || k.contains('/') || k.starts_with('.') || k == "cgroup.procs" {
                return Err(Error::msg(format!(
                    "{field}: not a cgroup control file name"
                )));
            }
            let ctrl = k.split('.').next().unwrap_or_default();
            self.write(ctrl, k, v, &field)?;
        }
        Ok(())
    }

    fn procs_dir(&self) -> Option<&Path> {
        Some(self.dir())
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let dir = self.dir();
        let field = format!("cgroup {}", dir.display());
        write(dir, "cgroup.freeze", if frozen { "1" } else { "0" }, &field)?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        let settled = super::wait_until(Duration::from_secs(2), || {
            super::read(dir, "cgroup.events").is_some_and(|e| e.lines().any(|l| l == want))
        });
        if frozen && !settled {
            let _ = write(dir, "cgroup.freeze", "0", &field);
            return Err(Error::msg(format!(
                "{field}: the processes could not be frozen"
            )));
        }
        Ok(())
    }

    fn is_frozen(&self) -> bool {
        super::read(self.dir(), "cgroup.freeze").is_some_and(|s| s == "1")
    }

    fn can_freeze(&self) -> bool {
        self.dir().join("cgroup.freeze").exists()
    }

    fn stats(&self) -> Result<stats::Stats> {
        Ok(stats::v2(self.dir()))
    }

    fn oom_watch(&self) -> Result<Option<oom::OomWatch>> {
        if self.dir().join("memory.events").exists() {
            oom::OomWatch::v2(self.dir()).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(swap_to_v2(Some(300), Some(100)), Ok(Some("200".into())));
        assert_eq!(swap_to_v2(Some(-1), None), Ok(Some("max".into())));
        assert_eq!(swap_to_v2(None, Some(5)), Ok(None));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }
}
