//! The runtime-spec's per-process scheduling attributes, applied to the
//! init and to every `exec`: `process.ioPriority` (ioprio_set),
//! `process.scheduler` (sched_setattr), `process.execCPUAffinity`
//! (sched_setaffinity: `initial` in capsa before the process is made in
//! the container's cgroup, `final` in the process after), and the
//! container's `linux.personality` and `linux.memoryPolicy`
//! (personality, set_mempolicy). Configs are checked up front
//! ([`validate`]) so that a value the kernel would refuse is named before
//! anything is made. None of this runs for a config without these fields.

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use nix::sched::CpuSet;
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process, Spec,
};

const CONFIG: &str = crate::spec::CONFIG;

/// `field` names the file too: "config.json: process.scheduler", or
/// "exec process.scheduler" for an exec's process.
fn err(field: &str, msg: impl std::fmt::Display) -> Error {
    Error::msg(format!("{field}: {msg}"))
}

/// A CPU or node list ("0-3,7") as the indices it names.
fn parse_list(s: &str, max: usize) -> std::result::Result<Vec<usize>, String> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a list such as 0-3,7"))?;
        let b: usize = b
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a list such as 0-3,7"))?;
        if a > b || b >= max {
            return Err(format!("{part:?} is not a range below {max}"));
        }
        v.extend(a..=b);
    }
    Ok(v)
}

fn cpuset(s: &str, field: &str) -> Result<CpuSet> {
    let mut set = CpuSet::new();
    for cpu in parse_list(s, CpuSet::count()).map_err(|m| err(field, m))? {
        set.set(cpu)
            .map_err(|_| err(field, format!("cpu {cpu} is out of range")))?;
    }
    Ok(set)
}

/// Checks what can be checked without the kernel.
pub fn validate(spec: &Spec) -> Result<()> {
    if let Some(p) = spec.process() {
        validate_process(p, &format!("{CONFIG}: process"))?;
    }
    let Some(l) = spec.linux() else {
        return Ok(());
    };
    if let Some(p) = l.personality()
        && p.flags().as_ref().is_some_and(|f| !f.is_empty())
    {
        return Err(err(
            &format!("{CONFIG}: linux.personality.flags"),
            "no personality flags are supported (only the domain LINUX or LINUX32)",
        ));
    }
    if let Some(m) = l.memory_policy() {
        let nodes = m.nodes().as_deref().filter(|n| !n.is_empty());
        let needs_nodes = !matches!(
            m.mode(),
            MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal
        );
        match (needs_nodes, nodes) {
            (true, None) => {
                return Err(err(
                    &format!("{CONFIG}: linux.memoryPolicy.nodes"),
                    format!("{} needs nodes", m.mode()),
                ));
            }
            (false, Some(_)) => {
                return Err(err(
                    &format!("{CONFIG}: linux.memoryPolicy.nodes"),
                    format!("{} takes no nodes", m.mode()),
                ));
            }
            (_, Some(n)) => {
                parse_list(n, 1024)
                    .map_err(|e| err(&format!("{CONFIG}: linux.memoryPolicy.nodes"), e))?;
            }
            _ => {}
        }
        if !needs_nodes && m.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(err(
                &format!("{CONFIG}: linux.memoryPolicy.flags"),
                format!("{} takes no flags", m.mode()),
            ));
        }
    }
    Ok(())
}

/// The checks of one process (the config's, or an `exec --process`'s).
pub fn validate_process(p: &Process, at: &str) -> Result<()> {
    if let Some(io) = p.io_priority()
        && !(0..=7).contains(&io.priority())
    {
        return Err(err(
            &format!("{at}.ioPriority.priority"),
            format!("{} is not in 0..7", io.priority()),
        ));
    }
    if let Some(s) = p.scheduler() {
        let f = |x: &str| format!("{at}.scheduler.{x}");
        let prio = s.priority().unwrap_or(0);
        let rt = matches!(
            s.policy(),
            LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
        );
        if *s.policy() == LinuxSchedulerPolicy::SchedIso {
            return Err(err(
                &f("policy"),
                "SCHED_ISO is not a Linux scheduling policy",
            ));
        }
        if rt && !(1..=99).contains(&prio) {
            return Err(err(
                &f("priority"),
                format!("{prio} is not in 1..99 for {}", s.policy()),
            ));
        }
        if !rt && prio != 0 {
            return Err(err(&f("priority"), format!("must be 0 for {}", s.policy())));
        }
        if *s.policy() == LinuxSchedulerPolicy::SchedDeadline
            && (s.runtime().is_none() || s.deadline().is_none())
        {
            return Err(err(
                &f("policy"),
                "SCHED_DEADLINE needs runtime and deadline",
            ));
        }
        if let Some(n) = *s.nice()
            && !(-20..=19).contains(&n)
        {
            return Err(err(&f("nice"), format!("{n} is not in -20..19")));
        }
    }
    if let Some(a) = p.exec_cpu_affinity() {
        if let Some(s) = a.initial() {
            cpuset(s, &format!("{at}.execCPUAffinity.initial"))?;
        }
        if let Some(s) = a.cpu_affinity_final() {
            cpuset(s, &format!("{at}.execCPUAffinity.final"))?;
        }
    }
    Ok(())
}

/// `execCPUAffinity.initial`, applied to capsa itself right before it
/// makes the process (which inherits it); returns capsa's own affinity
/// to [`restore`] afterwards.
pub fn set_initial(p: &Process, at: &str) -> Result<Option<CpuSet>> {
    let Some(s) = p
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
    else {
        return Ok(None);
    };
    let field = format!("{at}.execCPUAffinity.initial");
    let want = cpuset(s, &field)?;
    let saved =
        nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ctx(|| "sched_getaffinity")?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &want)
        .ctx(|| format!("{field}: sched_setaffinity {s}"))?;
    Ok(Some(saved))
}

pub fn restore(saved: Option<CpuSet>) {
    if let Some(s) = saved {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &s);
    }
}

/// In the new process, in the container's cgroups, before its
/// capabilities are dropped: final CPU affinity, I/O priority, memory
/// policy, personality, then the scheduling policy.
pub fn apply(p: &Process, linux: Option<&Linux>, at: &str) -> Result<()> {
    if let Some(s) = p
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.cpu_affinity_final().as_deref())
    {
        let field = format!("{at}.execCPUAffinity.final");
        let set = cpuset(s, &field)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .ctx(|| format!("{field}: sched_setaffinity {s}"))?;
    }
    if let Some(io) = p.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let value = (class << 13) | io.priority();
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        // SAFETY: ioprio_set takes three integers and touches no memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_long,
                value as libc::c_long,
            )
        };
        Errno::result(r).ctx(|| format!("{at}.ioPriority: ioprio_set"))?;
    }
    if let Some(l) = linux {
        if let Some(m) = l.memory_policy() {
            set_mempolicy(m)?;
        }
        if let Some(pers) = l.personality() {
            let domain: libc::c_ulong = match pers.domain() {
                LinuxPersonalityDomain::PerLinux => 0,
                LinuxPersonalityDomain::PerLinux32 => 0x0008,
            };
            // SAFETY: personality takes one integer and touches no memory.
            let r = unsafe { libc::personality(domain) };
            Errno::result(r)
                .ctx(|| format!("{CONFIG}: linux.personality: personality {}", pers.domain()))?;
        }
    }
    if let Some(s) = p.scheduler() {
        set_scheduler(s, at)?;
    }
    Ok(())
}

fn set_mempolicy(m: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<()> {
    let mut mode: libc::c_int = match m.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    for f in m.flags().iter().flatten() {
        mode |= match f {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        };
    }
    let mut mask = [0 as libc::c_ulong; 1024 / libc::c_ulong::BITS as usize];
    let nodes = m.nodes().as_deref().filter(|n| !n.is_empty());
    if let Some(n) = nodes {
        for node in parse_list(n, 1024)
            .map_err(|e| err(&format!("{CONFIG}: linux.memoryPolicy.nodes"), e))?
        {
            let bits = libc::c_ulong::BITS as usize;
            mask[node / bits] |= 1 << (node % bits);
        }
    }
    let (ptr, maxnode) = if nodes.is_some() {
        (mask.as_ptr(), 1024 as libc::c_ulong)
    } else {
        (std::ptr::null(), 0)
    };
    // SAFETY: a node mask of `maxnode` bits (or none), alive for the call;
    // the kernel only reads it.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    Errno::result(r).map(drop).map_err(|e| {
        let why = match e {
            Errno::ENOSYS => " (this kernel has no NUMA support)".to_string(),
            Errno::EINVAL => {
                " (a node is not online, or the mode does not take these flags)".to_string()
            }
            _ => String::new(),
        };
        err(
            &format!("{CONFIG}: linux.memoryPolicy"),
            format!(
                "set_mempolicy {}: {}{why}",
                m.mode(),
                crate::error::errno_text(e)
            ),
        )
    })
}

/// struct sched_attr of sched_setattr(2).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn set_scheduler(s: &oci_spec::runtime::Scheduler, at: &str) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: a sched_attr whose size field matches the struct, alive for
    // the call; the kernel only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::c_long,
            &attr as *const SchedAttr,
            0 as libc::c_long,
        )
    };
    Errno::result(r).map(drop).map_err(|e| {
        let why = if e == Errno::EPERM && matches!(policy, 1 | 2 | 6) {
            " (a real-time policy needs CAP_SYS_NICE and, with cgroup v1 RT group scheduling, cpu.rt_runtime_us in the container's cgroup)"
        } else {
            ""
        };
        err(&format!("{at}.scheduler"), format!("sched_setattr {}: {}{why}", s.policy(), crate::error::errno_text(e)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-2,5", 8).unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_list("2-1", 8).is_err());
        assert!(parse_list("8", 8).is_err());
        assert!(parse_list("a", 8).is_err());
    }
}
