//! Usage figures in the JSON of runc's `events --stats` (runc's `types`
//! package; Go's `omitempty` rules reproduced), read from v1 or v2 files.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// Always null: capsa reports no network statistics (runc neither,
    /// unless it runs in the container's network namespace).
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Debug, Default, Serialize)]
pub struct IntelRdt {}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    /// Nanoseconds.
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime", skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

use super::{read, read_key, read_u64};

/// `key value` lines as a map.
fn flat_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn numbers(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// A cpuset list (`0-3,8`) as numbers.
pub fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// Huge page sizes the kernel offers, as the control files name them.
fn hugepage_sizes() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().into_string().ok()?;
                    let kb: u64 = n
                        .strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()?;
                    Some(match kb {
                        kb if kb >= 1 << 20 && kb % (1 << 20) == 0 => format!("{}GB", kb >> 20),
                        kb if kb >= 1 << 10 && kb % (1 << 10) == 0 => format!("{}MB", kb >> 10),
                        kb => format!("{kb}KB"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The stats of a v1 cgroup, each controller from its own directory.
pub fn v1(paths: &BTreeMap<String, PathBuf>) -> Stats {
    let mut s = Stats::default();
    let dir = |c: &str| paths.get(c).map(PathBuf::as_path);
    if let Some(d) = dir("cpuacct") {
        let u = &mut s.cpu.usage;
        u.total = read_u64(d, "cpuacct.usage").unwrap_or(0);
        u.percpu = numbers(&read(d, "cpuacct.usage_percpu").unwrap_or_default());
        // "cpu user system" per line, in nanoseconds.
        for l in read(d, "cpuacct.usage_all")
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let n = numbers(l);
            if n.len() == 3 {
                u.percpu_user.push(n[1]);
                u.percpu_kernel.push(n[2]);
            }
        }
        // cpuacct.stat is in clock ticks.
        let tick = 1_000_000_000 / clock_ticks();
        u.user = read_key(d, "cpuacct.stat", "user").unwrap_or(0) * tick;
        u.kernel = read_key(d, "cpuacct.stat", "system").unwrap_or(0) * tick;
    }
    if let Some(d) = dir("cpu") {
        let t = flat_keyed(d, "cpu.stat");
        s.cpu.throttling = Throttling {
            periods: t.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: t.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(d) = dir("cpuset") {
        let n = |f: &str| read_u64(d, f).unwrap_or(0);
        s.cpuset = CpuSet {
            cpus: parse_list(&read(d, "cpuset.cpus").unwrap_or_default()),
            cpu_exclusive: n("cpuset.cpu_exclusive"),
            mems: parse_list(&read(d, "cpuset.mems").unwrap_or_default()),
            mem_hardwall: n("cpuset.mem_hardwall"),
            mem_exclusive: n("cpuset.mem_exclusive"),
            memory_migrate: n("cpuset.memory_migrate"),
            memory_spread_page: n("cpuset.memory_spread_page"),
            memory_spread_slab: n("cpuset.memory_spread_slab"),
            memory_pressure: n("cpuset.memory_pressure"),
            sched_load_balance: n("cpuset.sched_load_balance"),
            sched_relax_domain_level: read(d, "cpuset.sched_relax_domain_level")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        };
    }
    if let Some(d) = dir("memory") {
        let m = &mut s.memory;
        m.raw = flat_keyed(d, "memory.stat");
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
        let entry = |prefix: &str| MemoryEntry {
            limit: read_u64(d, &format!("{prefix}.limit_in_bytes")).unwrap_or(0),
            usage: read_u64(d, &format!("{prefix}.usage_in_bytes")).unwrap_or(0),
            max: read_u64(d, &format!("{prefix}.max_usage_in_bytes")).unwrap_or(0),
            failcnt: read_u64(d, &format!("{prefix}.failcnt")).unwrap_or(0),
        };
        m.usage = entry("memory");
        m.swap = entry("memory.memsw");
        m.kernel = entry("memory.kmem");
        m.kernel_tcp = entry("memory.kmem.tcp");
    }
    if let Some(d) = dir("pids") {
        s.pids.current = read_u64(d, "pids.current").unwrap_or(0);
        s.pids.limit = read_u64(d, "pids.max")
            .filter(|m| *m != u64::MAX)
            .unwrap_or(0);
    }
    if let Some(d) = dir("blkio") {
        s.blkio = v1_blkio(d);
    }
    if let Some(d) = dir("hugetlb") {
        for size in hugepage_sizes() {
            let n = |f: &str| read_u64(d, &format!("hugetlb.{size}.{f}")).unwrap_or(0);
            s.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage: n("usage_in_bytes"),
                    max: n("max_usage_in_bytes"),
                    failcnt: n("failcnt"),
                },
            );
        }
    }
    s
}

/// Block I/O figures the way runc picks them: CFQ's files, else BFQ's
/// debug ones, else BFQ's, else the throttling layer's (recursive, then
/// not): the first group whose first file has entries.
fn v1_blkio(d: &Path) -> Blkio {
    type Slot = fn(&mut Blkio) -> &mut Vec<BlkioEntry>;
    let bytes: Slot = |b| &mut b.io_service_bytes_recursive;
    let serviced: Slot = |b| &mut b.io_serviced_recursive;
    let queued: Slot = |b| &mut b.io_queued_recursive;
    let service_time: Slot = |b| &mut b.io_service_time_recursive;
    let wait_time: Slot = |b| &mut b.io_wait_time_recursive;
    let merged: Slot = |b| &mut b.io_merged_recursive;
    let time: Slot = |b| &mut b.io_time_recursive;
    let sectors: Slot = |b| &mut b.sectors_recursive;
    let groups: [&[(&str, Slot)]; 5] = [
        &[
            ("blkio.io_serviced_recursive", serviced),
            ("blkio.io_service_bytes_recursive", bytes),
            ("blkio.io_queued_recursive", queued),
            ("blkio.io_service_time_recursive", service_time),
            ("blkio.io_wait_time_recursive", wait_time),
            ("blkio.io_merged_recursive", merged),
            ("blkio.time_recursive", time),
            ("blkio.sectors_recursive", sectors),
        ],
        &[
            ("blkio.bfq.sectors_recursive", sectors),
            ("blkio.bfq.io_service_time_recursive", service_time),
            ("blkio.bfq.io_wait_time_recursive", wait_time),
            ("blkio.bfq.io_merged_recursive", merged),
            ("blkio.bfq.io_queued_recursive", queued),
            ("blkio.bfq.time_recursive", time),
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", serviced),
            ("blkio.throttle.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced", serviced),
            ("blkio.throttle.io_service_bytes", bytes),
        ],
    ];
    let mut b = Blkio::default();
    for group in groups {
        if blkio_entries(d, group[0].0).is_empty() {
            continue;
        }
        for (file, slot) in group {
            *slot(&mut b) = blkio_entries(d, file);
        }
        break;
    }
    b
}

/// `MAJ:MIN Op value` lines (the `Total` line left out).
fn blkio_entries(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, op, value) = match f.as_slice() {
                [dev, op, v] => (*dev, op.to_string(), v.parse().ok()?),
                [dev, v] if dev.contains(':') => (*dev, String::new(), v.parse().ok()?),
                _ => return None,
            };
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op,
                value,
            })
        })
        .collect()
}

/// The stats of a v2 cgroup.
pub fn v2(d: &Path) -> Stats {
    let mut s = Stats::default();
    let cpu = flat_keyed(d, "cpu.stat");
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = us("usage_usec") * 1000;
    s.cpu.usage.user = us("user_usec") * 1000;
    s.cpu.usage.kernel = us("system_usec") * 1000;
    s.cpu.throttling = Throttling {
        periods: us("nr_periods"),
        throttled_periods: us("nr_throttled"),
        throttled_time: us("throttled_usec") * 1000,
    };
    if let Some(cpus) = read(d, "cpuset.cpus.effective") {
        s.cpuset.cpus = parse_list(&cpus);
        s.cpuset.mems = parse_list(&read(d, "cpuset.mems.effective").unwrap_or_default());
    }
    if d.join("memory.current").exists() {
        let m = &mut s.memory;
        m.raw = flat_keyed(d, "memory.stat");
        m.cache = m.raw.get("file").copied().unwrap_or(0);
        let events = flat_keyed(d, "memory.events");
        m.usage = MemoryEntry {
            limit: read_u64(d, "memory.max").unwrap_or(0),
            usage: read_u64(d, "memory.current").unwrap_or(0),
            max: read_u64(d, "memory.peak").unwrap_or(0),
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        // runc reports memory+swap here, as v1's memsw does.
        if let Some(swap) = read_u64(d, "memory.swap.current") {
            let swap_max = read_u64(d, "memory.swap.max").unwrap_or(u64::MAX);
            m.swap = MemoryEntry {
                limit: swap_max.saturating_add(m.usage.limit),
                usage: swap + m.usage.usage,
                max: 0,
                failcnt: 0,
            };
        }
    }
    if d.join("pids.current").exists() {
        s.pids.current = read_u64(d, "pids.current").unwrap_or(0);
        s.pids.limit = read_u64(d, "pids.max")
            .filter(|m| *m != u64::MAX)
            .unwrap_or(0);
    }
    for l in read(d, "io.stat").unwrap_or_default().lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    for size in hugepage_sizes() {
        if let Some(usage) = read_u64(d, &format!("hugetlb.{size}.current")) {
            let failcnt = read_key(d, &format!("hugetlb.{size}.events"), "max").unwrap_or(0);
            s.hugetlb.insert(
                size,
                Hugetlb {
                    usage,
                    max: 0,
                    failcnt,
                },
            );
        }
    }
    s
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100, |t| t as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_serialize_like_runc() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
                "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                           "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                           "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
                "memory": {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                           "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}},
                "pids": {}, "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": null
            })
        );
    }

    #[test]
    fn lists_and_blkio_lines() {
        assert_eq!(parse_list("0-2,5"), [0, 1, 2, 5]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
        let dir = std::env::temp_dir().join(format!("capsa-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("f"),
            "254:0 Read 4096\n254:0 Write 0\n254:0 Total 4096\nTotal 4096\n",
        )
        .unwrap();
        let e = blkio_entries(&dir, "f");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            BlkioEntry {
                major: 254,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
    }
}
