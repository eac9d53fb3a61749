//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup
//! is a transient unit systemd knows, made and removed over D-Bus, with
//! the limits systemd has a property for as unit properties (so a reload or
//! a change of another unit does not undo them), and the rest written to
//! the cgroup files by the cgroupfs backends, as runc does.
//!
//! Nothing here runs for a container made without `--systemd-cgroup`: the
//! record's [`Record::unit`] is what brings a command here. Every D-Bus
//! conversation happens in a forked child of capsa: the D-Bus library runs
//! threads of its own, and capsa clones and forks (the init, hooks) in ways
//! that a multi-threaded process must not; the child also bounds the
//! conversation in time (an alarm) and goes away with everything it mapped.

use super::devices::{self, Kind};
use super::path::SystemdUnit;
use super::{Fields, Manager, Record, Version};
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use std::collections::HashMap;
use zbus::zvariant::{OwnedObjectPath, Value};

/// How long one D-Bus operation (its job included) may take.
const TIMEOUT_SECS: u32 = 30;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// A unit property as StartTransientUnit and SetUnitProperties take it.
pub type Property = (String, Value<'static>);

const INFINITY: u64 = u64::MAX;

fn prop(name: &str, v: impl Into<Value<'static>>) -> Property {
    (name.to_string(), v.into())
}

/// A limit where -1 (or any negative value) means none.
fn limit(v: i64) -> u64 {
    if v < 0 { INFINITY } else { v as u64 }
}

/// The properties for `r` on a host whose controllers are `version`'s.
/// Only what systemd has a property for; the cgroupfs backend writes the
/// rest (and, after systemd, these again: the files then hold capsa's exact
/// values where systemd rounds, as the CPU quota).
pub fn resource_properties(
    r: &LinuxResources,
    version: Version,
    f: &Fields,
) -> Result<Vec<Property>> {
    let v2 = version == Version::V2;
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        let l = m.limit().filter(|l| *l != 0);
        if let Some(l) = l {
            out.push(prop(if v2 { "MemoryMax" } else { "MemoryLimit" }, limit(l)));
        }
        if v2 {
            if let Some(res) = m.reservation().filter(|r| *r != 0) {
                out.push(prop("MemoryLow", limit(res)));
            }
            let swap = m.swap().filter(|s| *s != 0);
            let swap = if l == Some(-1) && swap.is_none() {
                Some(-1)
            } else {
                swap
            };
            match super::v2::swap_to_v2(swap, l) {
                Ok(Some(s)) => out.push(prop(
                    "MemorySwapMax",
                    if s == "max" {
                        INFINITY
                    } else {
                        s.parse::<u64>().unwrap_or(INFINITY)
                    },
                )),
                Ok(None) => {}
                Err(e) => return Err(Error::msg(format!("{}: {e}", f.name("memory.swap")))),
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            if v2 {
                out.push(prop("CPUWeight", super::v2::shares_to_weight(s)));
            } else {
                out.push(prop("CPUShares", s));
            }
        }
        let period = c.period().filter(|p| *p != 0);
        if let Some(p) = period {
            out.push(prop("CPUQuotaPeriodUSec", p));
        }
        if let Some(q) = c.quota().filter(|q| *q != 0) {
            let per_sec = if q < 0 {
                INFINITY
            } else {
                // systemd keeps whole percents of a CPU (10 ms a second):
                // rounded up, so the unit never allows less than asked.
                let p = period.unwrap_or(100_000);
                let us = (q as u64).saturating_mul(1_000_000) / p;
                us.div_ceil(10_000) * 10_000
            };
            out.push(prop("CPUQuotaPerSecUSec", per_sec));
        }
        if v2 {
            for (val, name, field) in [
                (c.cpus(), "AllowedCPUs", "cpu.cpus"),
                (c.mems(), "AllowedMemoryNodes", "cpu.mems"),
            ] {
                if let Some(list) = val.as_deref().filter(|v| !v.is_empty()) {
                    out.push(prop(name, cpu_mask(list, &f.name(field))?));
                }
            }
        }
    }
    if let Some(p) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l != 0) {
        out.push(prop("TasksMax", limit(p)));
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        if v2 {
            out.push(prop("IOWeight", super::v2::blkio_to_io_weight(w)));
        } else {
            out.push(prop("BlockIOWeight", u64::from(w)));
        }
    }
    if !f.update {
        out.extend(device_properties(r, f)?);
    }
    Ok(out)
}

/// A cpuset list (`0-2,5`) as systemd's bitmask: byte i bit j is CPU 8i+j.
fn cpu_mask(list: &str, field: &str) -> Result<Vec<u8>> {
    let bad = || Error::msg(format!("{field}: invalid list {list:?}"));
    let mut mask: Vec<u8> = Vec::new();
    for part in list.split(',') {
        let (a, b) = match part.trim().split_once('-') {
            Some((a, b)) => (a, b),
            None => (part.trim(), part.trim()),
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        for n in a..=b {
            if mask.len() <= n / 8 {
                mask.resize(n / 8 + 1, 0);
            }
            mask[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(mask)
}

/// The device rules (with runc's defaults) as DevicePolicy and DeviceAllow:
/// what the kernel would make of them is a default and exceptions; a
/// deny-all default with allowed exceptions is `strict` and the list (a
/// device by number as `/dev/char/M:m`, a major's devices by its driver's
/// name in /proc/devices, every device of a kind as `char-*`). An allow-all
/// default with denied exceptions has no systemd form: refused, since
/// systemd would allow everything again whenever it applies the unit.
fn device_properties(r: &LinuxResources, f: &Fields) -> Result<Vec<Property>> {
    let field = f.name("devices");
    let rules = devices::rules(r.devices().as_ref(), &field)?;
    let eff = devices::effective(&rules);
    if eff.default_allow {
        if !eff.exceptions.is_empty() {
            return Err(Error::msg(format!(
                "{field}: denying some devices while allowing the rest cannot be expressed as systemd unit properties (--systemd-cgroup); deny all and allow what is needed"
            )));
        }
        return Ok(vec![
            prop("DevicePolicy", "auto"),
            prop("DeviceAllow", Vec::<(String, String)>::new()),
        ]);
    }
    let names = proc_devices();
    let mut allow: Vec<(String, String)> = Vec::new();
    for x in &eff.exceptions {
        let kind = match x.kind {
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::All => continue,
        };
        let what = match (x.major, x.minor) {
            (Some(ma), Some(mi)) => format!("/dev/{kind}/{ma}:{mi}"),
            (None, None) => format!("{kind}-*"),
            (Some(ma), None) => match names.get(&(kind, ma)) {
                Some(n) => format!("{kind}-{n}"),
                // No driver has this major: nothing to allow.
                None => continue,
            },
            (None, Some(mi)) => {
                return Err(Error::msg(format!(
                    "{field}: a rule for minor {mi} of every major cannot be expressed as a systemd DeviceAllow= entry (--systemd-cgroup)"
                )));
            }
        };
        allow.push((what, devices::access_str(x.access)));
    }
    Ok(vec![
        prop("DevicePolicy", "strict"),
        prop("DeviceAllow", allow),
    ])
}

/// /proc/devices: (char|block, major) → driver name.
fn proc_devices() -> HashMap<(&'static str, u32), String> {
    let mut out = HashMap::new();
    let text = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut kind = "char";
    for line in text.lines() {
        match line.trim() {
            "Character devices:" => kind = "char",
            "Block devices:" => kind = "block",
            l => {
                if let Some((n, name)) = l.split_once(' ')
                    && let Ok(n) = n.parse()
                {
                    out.insert((kind, n), name.trim().to_string());
                }
            }
        }
    }
    out
}

/// `org.systemd.property.NAME` annotations as properties, as runc takes
/// them: a value in GVariant text form (`true`, `uint64 1024`, `'text'`);
/// a bare number is a uint64; `NAMESec` with a number (seconds, GVariant
/// `uint64` microseconds) becomes `NAMEUSec`. Properties capsa sets for
/// the unit to work (PIDs, Slice, Delegate) cannot be overridden.
pub fn annotation_properties(a: Option<&HashMap<String, String>>) -> Result<Vec<Property>> {
    let mut out = Vec::new();
    let Some(a) = a else { return Ok(out) };
    let mut keys: Vec<&String> = a.keys().collect();
    keys.sort();
    for key in keys {
        let Some(name) = key.strip_prefix("org.systemd.property.") else {
            continue;
        };
        let field = format!("config.json: annotations[{key:?}]");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::msg(format!(
                "{field}: {name:?} is not a systemd property name"
            )));
        }
        if matches!(
            name,
            "PIDs" | "Slice" | "Delegate" | "DefaultDependencies" | "Description"
        ) {
            return Err(Error::msg(format!(
                "{field}: {name} is set by capsa for the container's unit and cannot be overridden"
            )));
        }
        let v = parse_gvariant(a[key].trim())
            .ok_or_else(|| Error::msg(format!("{field}: cannot parse {:?} (expected true/false, a number, `uint64 N`-style typed numbers or a quoted string)", a[key])))?;
        if let Some(base) = name.strip_suffix("Sec")
            && !name.ends_with("USec")
        {
            let secs = match v {
                Value::U64(n) => n,
                Value::U32(n) => u64::from(n),
                Value::I64(n) if n >= 0 => n as u64,
                Value::I32(n) if n >= 0 => n as u64,
                _ => {
                    return Err(Error::msg(format!(
                        "{field}: {name} takes a number of seconds"
                    )));
                }
            };
            out.push(prop(&format!("{base}USec"), secs.saturating_mul(1_000_000)));
            continue;
        }
        out.push((name.to_string(), v));
    }
    Ok(out)
}

fn parse_gvariant(s: &str) -> Option<Value<'static>> {
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            if inner.contains(q) || inner.contains('\\') {
                return None;
            }
            return Some(Value::from(inner.to_string()));
        }
    }
    let (ty, num) = s.split_once(' ').unwrap_or(("uint64", s));
    let num = num.trim();
    Some(match ty {
        "uint64" => Value::U64(num.parse().ok()?),
        "int64" => Value::I64(num.parse().ok()?),
        "uint32" => Value::U32(num.parse().ok()?),
        "int32" => Value::I32(num.parse().ok()?),
        "uint16" => Value::U16(num.parse().ok()?),
        "int16" => Value::I16(num.parse().ok()?),
        "byte" => Value::U8(num.parse().ok()?),
        "double" => Value::F64(num.parse().ok()?),
        _ => return None,
    })
}

/// The properties of a new unit: placement and delegation, then the
/// resources, then the annotations (later assignments win).
fn unit_properties(
    unit: &SystemdUnit,
    pid: Option<i32>,
    rec: &Record,
    annotations: Option<&HashMap<String, String>>,
) -> Result<Vec<Property>> {
    let mut props = vec![
        prop(
            "Description",
            format!("capsa container {}", unit.name.trim_end_matches(".scope")),
        ),
        prop("DefaultDependencies", false),
    ];
    if unit.is_slice() {
        // A slice holds no processes and delegates nothing; it is ordered
        // after its parent (which systemd makes if it has to).
        props.push(prop("Wants", vec![unit.slice.clone()]));
        props.push(prop("After", vec![unit.slice.clone()]));
    } else {
        props.push(prop("Slice", unit.slice.clone()));
        props.push(prop("Delegate", true));
        if let Some(pid) = pid {
            props.push(prop("PIDs", vec![pid as u32]));
        }
    }
    // Accounting on, so the controllers' directories exist for the
    // cgroupfs writes and the stats.
    for a in ["MemoryAccounting", "CPUAccounting", "TasksAccounting"] {
        props.push(prop(a, true));
    }
    props.push(prop(
        if rec.version == Version::V2 {
            "IOAccounting"
        } else {
            "BlockIOAccounting"
        },
        true,
    ));
    if let Some(r) = &rec.resources {
        props.extend(resource_properties(r, rec.version, &Fields::config())?);
    }
    props.extend(annotation_properties(annotations)?);
    Ok(props)
}

/// `create` with the systemd driver, once the init exists (and waits for
/// the go-ahead): the unit started with the init in it, then the
/// directories systemd has no controller for made, the init put in each
/// (where systemd did, that changes nothing), and every limit written.
pub fn place(
    m: &mut dyn Manager,
    pid: i32,
    annotations: Option<&HashMap<String, String>>,
) -> Result<()> {
    let rec = m.record().clone();
    let unit = rec
        .unit
        .clone()
        .ok_or_else(|| Error::msg("cgroups: no systemd unit on record"))?;
    let props = unit_properties(&unit, Some(pid), &rec, annotations)?;
    in_child(|| start(&unit, props))?;
    crate::logging::phase("systemd unit started");
    m.create()?;
    let pid_s = pid.to_string();
    for dir in m.record().dirs() {
        super::write(
            dir,
            "cgroup.procs",
            &pid_s,
            &format!("cgroup {}: add the init", dir.display()),
        )?;
    }
    if let Some(r) = &rec.resources {
        m.set(r, &Fields::config())?;
    }
    Ok(())
}

/// `update` with the systemd driver: the unit's properties, then the files.
pub fn update(rec: &Record, r: &LinuxResources) -> Result<()> {
    let unit = rec
        .unit
        .clone()
        .ok_or_else(|| Error::msg("cgroups: no systemd unit on record"))?;
    let props = resource_properties(r, rec.version, &Fields::update())?;
    if !props.is_empty() {
        in_child(|| set_properties(&unit, props))?;
    }
    super::open(rec).set(r, &Fields::update())
}

/// Stops the unit (a unit systemd already forgot, as an empty scope once
/// its processes are gone, is fine).
pub fn stop(unit: &SystemdUnit) -> Result<()> {
    let unit = unit.clone();
    in_child(move || stop_unit(&unit))
}

/// Runs `f` in a forked child, which reports its error (if any) through a
/// pipe; the child is killed by an alarm should systemd not answer.
fn in_child(f: impl FnOnce() -> Result<()>) -> Result<()> {
    use nix::unistd::{ForkResult, fork, pipe2};
    use std::io::{Read, Write};
    let (r, w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::msg(format!("pipe: {e}")))?;
    // SAFETY: capsa is single-threaded here (no D-Bus threads exist in
    // this process, which is the point); the child only runs `f` and exits.
    match unsafe { fork() } {
        Err(e) => Err(Error::msg(format!("fork for systemd's D-Bus: {e}"))),
        Ok(ForkResult::Child) => {
            drop(r);
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(nix::sys::signal::Signal::SIGALRM);
            let _ = set.thread_unblock();
            // SAFETY: restoring the default disposition of SIGALRM.
            unsafe {
                let _ = nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGALRM,
                    nix::sys::signal::SigHandler::SigDfl,
                );
                libc::alarm(TIMEOUT_SECS);
            }
            let code = match f() {
                Ok(()) => 0,
                Err(e) => {
                    let mut w = std::fs::File::from(w);
                    let _ = w.write_all(e.to_string().as_bytes());
                    1
                }
            };
            // SAFETY: leaving without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            let status = loop {
                match nix::sys::wait::waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    s => break s,
                }
            };
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(..)) if !msg.is_empty() => {
                    Err(Error::Msg(msg))
                }
                Ok(nix::sys::wait::WaitStatus::Signaled(
                    _,
                    nix::sys::signal::Signal::SIGALRM,
                    _,
                )) => Err(Error::msg(format!(
                    "systemd: no answer over D-Bus within {TIMEOUT_SECS} s"
                ))),
                s => Err(Error::msg(format!("systemd: D-Bus helper process: {s:?}"))),
            }
        }
    }
}

fn connect() -> Result<zbus::blocking::Connection> {
    zbus::blocking::Connection::system().map_err(|e| {
        Error::msg(format!(
            "--systemd-cgroup: cannot reach systemd over the D-Bus system bus ({}): {e}",
            std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into())
        ))
    })
}

fn dbus_err(what: &str, e: zbus::Error) -> Error {
    match e {
        zbus::Error::MethodError(name, Some(detail), _) => {
            Error::msg(format!("systemd: {what}: {detail} ({name})"))
        }
        e => Error::msg(format!("systemd: {what}: {e}")),
    }
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _)
        if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit")
}

/// Calls a Manager method that queues a job, and waits for the job's
/// JobRemoved signal; its result must be `done`. A call that fails with an
/// error `fine` accepts queued nothing and is success.
fn run_job<B>(
    conn: &zbus::blocking::Connection,
    method: &str,
    unit: &str,
    body: &B,
    fine: fn(&zbus::Error) -> bool,
) -> Result<()>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    let what = format!("{method} {unit}");
    // Signals are only sent to subscribers; the match is in place before
    // the job exists, so its end cannot be missed.
    conn.call_method(Some(DEST), PATH, Some(MANAGER), "Subscribe", &())
        .map_err(|e| dbus_err("Subscribe", e))?;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(DEST)
        .and_then(|b| b.interface(MANAGER))
        .and_then(|b| b.member("JobRemoved"))
        .map_err(|e| dbus_err("match rule", e))?
        .build();
    let signals = zbus::blocking::MessageIterator::for_match_rule(rule, conn, None)
        .map_err(|e| dbus_err("AddMatch", e))?;
    let reply = match conn.call_method(Some(DEST), PATH, Some(MANAGER), method, body) {
        Ok(r) => r,
        Err(e) if fine(&e) => return Ok(()),
        Err(e) => return Err(dbus_err(&what, e)),
    };
    let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| dbus_err(&what, e))?;
    for msg in signals {
        let msg = msg.map_err(|e| dbus_err("JobRemoved", e))?;
        let Ok((_, path, _, result)) = msg
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        if path == job {
            if result == "done" {
                return Ok(());
            }
            return Err(Error::msg(format!(
                "systemd: {what}: the job ended with {result:?} (see `journalctl -u {unit}` or `systemctl status {unit}`)"
            )));
        }
    }
    Err(Error::msg(format!(
        "systemd: {what}: the bus connection closed"
    )))
}

fn start(unit: &SystemdUnit, props: Vec<Property>) -> Result<()> {
    let conn = connect()?;
    // A unit of the same name that failed before would block the name.
    let _ = conn.call_method(
        Some(DEST),
        PATH,
        Some(MANAGER),
        "ResetFailedUnit",
        &(unit.name.as_str(),),
    );
    let aux: Vec<(String, Vec<Property>)> = Vec::new();
    run_job(
        &conn,
        "StartTransientUnit",
        &unit.name,
        &(unit.name.as_str(), "replace", props, aux),
        |_| false,
    )
}

fn set_properties(unit: &SystemdUnit, props: Vec<Property>) -> Result<()> {
    let conn = connect()?;
    conn.call_method(
        Some(DEST),
        PATH,
        Some(MANAGER),
        "SetUnitProperties",
        &(unit.name.as_str(), true, props),
    )
    .map_err(|e| dbus_err(&format!("SetUnitProperties {}", unit.name), e))?;
    Ok(())
}

fn stop_unit(unit: &SystemdUnit) -> Result<()> {
    let conn = connect()?;
    let stopped = run_job(
        &conn,
        "StopUnit",
        &unit.name,
        &(unit.name.as_str(), "replace"),
        is_no_such_unit,
    );
    // Leaves no failed unit behind to block the name.
    if let Err(e) = conn.call_method(
        Some(DEST),
        PATH,
        Some(MANAGER),
        "ResetFailedUnit",
        &(unit.name.as_str(),),
    ) && !is_no_such_unit(&e)
    {
        crate::logging::debug(&format!("systemd: ResetFailedUnit {}: {e}", unit.name));
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn names(p: &[Property]) -> Vec<&str> {
        p.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn resources_map_to_properties() {
        let r = res(serde_json::json!({
            "memory": {"limit": 1048576, "reservation": 4096, "swap": 2097152},
            "cpu": {"shares": 1024, "quota": 12345, "period": 100000, "cpus": "0-1,3"},
            "pids": {"limit": 42},
            "blockIO": {"weight": 500},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        let v1 = resource_properties(&r, Version::V1, &Fields::config()).unwrap();
        assert_eq!(
            names(&v1),
            [
                "MemoryLimit",
                "CPUShares",
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "TasksMax",
                "BlockIOWeight",
                "DevicePolicy",
                "DeviceAllow"
            ]
        );
        assert_eq!(v1[3].1, Value::U64(130_000));
        let v2 = resource_properties(&r, Version::V2, &Fields::config()).unwrap();
        assert_eq!(
            names(&v2),
            [
                "MemoryMax",
                "MemoryLow",
                "MemorySwapMax",
                "CPUWeight",
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "AllowedCPUs",
                "TasksMax",
                "IOWeight",
                "DevicePolicy",
                "DeviceAllow"
            ]
        );
        assert_eq!(v2[2].1, Value::U64(1048576));
        assert_eq!(v2[6].1, Value::from(vec![0b1011u8]));
        let up = resource_properties(&r, Version::V1, &Fields::update()).unwrap();
        assert!(!names(&up).contains(&"DevicePolicy"));
    }

    #[test]
    fn devices_map_to_a_policy() {
        let r = res(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"},
            {"allow": true, "type": "b", "access": "m"}
        ]}));
        let p = device_properties(&r, &Fields::config()).unwrap();
        assert_eq!(p[0].1, Value::from("strict"));
        let Value::Array(list) = &p[1].1 else {
            panic!("{:?}", p[1])
        };
        let text = format!("{list:?}");
        assert!(text.contains("/dev/char/10:200"), "{text}");
        assert!(text.contains("block-*"), "{text}");
        // runc's default list is appended: /dev/null is 1:3.
        assert!(text.contains("/dev/char/1:3"), "{text}");
        let r = res(serde_json::json!({"devices": [
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "rwm"}
        ]}));
        let e = device_properties(&r, &Fields::config()).unwrap_err();
        assert!(e.to_string().contains("linux.resources.devices"), "{e}");
    }

    #[test]
    fn annotations_parse_as_gvariant_text() {
        let a: HashMap<String, String> = [
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.TimeoutStopSec", "7"),
            ("org.systemd.property.CPUQuotaPeriodUSec", "uint64 20000"),
            ("org.systemd.property.SendSIGHUP", "true"),
            ("other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = annotation_properties(Some(&a)).unwrap();
        assert_eq!(
            p,
            vec![
                prop("CPUQuotaPeriodUSec", 20000u64),
                prop("CollectMode", "inactive-or-failed".to_string()),
                prop("SendSIGHUP", true),
                prop("TimeoutStopUSec", 7_000_000u64),
            ]
        );
        for (k, v) in [
            ("org.systemd.property.PIDs", "1"),
            ("org.systemd.property.X", "[1, 2]"),
            ("org.systemd.property.Bad-Name", "1"),
            ("org.systemd.property.TimeoutSec", "'x'"),
        ] {
            let a: HashMap<String, String> = [(k.to_string(), v.to_string())].into();
            let e = annotation_properties(Some(&a)).unwrap_err().to_string();
            assert!(e.starts_with("config.json: annotations["), "{e}");
        }
    }

    #[test]
    fn cpu_masks() {
        assert_eq!(cpu_mask("0", "f").unwrap(), [1]);
        assert_eq!(cpu_mask("1,9-10", "f").unwrap(), [2, 6]);
        assert!(cpu_mask("3-1", "f").is_err());
        assert!(cpu_mask("x", "f").is_err());
    }
}
