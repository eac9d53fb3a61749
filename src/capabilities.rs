//! The five capability sets of `process.capabilities`. The bounding set is
//! reduced while the init is still root, the others are set after the
//! switch to the container user (kept across it with PR_SET_KEEPCAPS).

use crate::error::{Context, Error, Result};
use crate::logging;
use caps::{CapSet, Capability};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use std::str::FromStr;

/// Capability masks resolved against what this kernel supports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Masks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// Every capability the kernel knows.
    pub supported: u64,
}

fn to_caps(c: &oci_spec::runtime::Capability) -> Option<Capability> {
    let name = c.to_string();
    let name = if name.starts_with("CAP_") {
        name
    } else {
        format!("CAP_{name}")
    };
    Capability::from_str(&name).ok()
}

fn mask(set: &Option<Capabilities>, field: &str, supported: u64) -> u64 {
    let mut m = 0;
    for c in set.iter().flatten() {
        match to_caps(c) {
            Some(cap) if cap.bitmask() & supported != 0 => m |= cap.bitmask(),
            _ => logging::warn(&format!(
                "process.capabilities.{field}: {c} is not supported by this kernel; ignored"
            )),
        }
    }
    m
}

/// Resolves the config's sets against the capabilities this kernel has.
pub fn resolve(c: &LinuxCapabilities) -> Masks {
    let supported = caps::runtime::thread_all_supported()
        .iter()
        .fold(0u64, |m, c| m | c.bitmask());
    Masks {
        bounding: mask(c.bounding(), "bounding", supported),
        effective: mask(c.effective(), "effective", supported),
        permitted: mask(c.permitted(), "permitted", supported),
        inheritable: mask(c.inheritable(), "inheritable", supported),
        ambient: mask(c.ambient(), "ambient", supported),
        supported,
    }
}

fn each(m: u64) -> impl Iterator<Item = Capability> {
    caps::all()
        .into_iter()
        .filter(move |c| m & c.bitmask() != 0)
}

/// Drops everything outside the bounding set (needs CAP_SETPCAP, so it runs
/// before the user switch).
pub fn apply_bounding(m: &Masks) -> Result<()> {
    for cap in each(m.supported & !m.bounding) {
        caps::drop(None, CapSet::Bounding, cap)
            .map_err(|e| Error::msg(format!("process.capabilities.bounding: drop {cap}: {e}")))?;
    }
    Ok(())
}

/// Sets effective, permitted and inheritable at once, then the ambient set.
pub fn apply_sets(m: &Masks) -> Result<()> {
    crate::sys::capset(m.effective, m.permitted, m.inheritable)
        .ctx(|| "process.capabilities: capset")?;
    // The kernel only lets a capability into the ambient set when it is
    // both permitted and inheritable; like runc, skip the others.
    let allowed = m.permitted & m.inheritable;
    if m.ambient & !allowed != 0 {
        logging::debug(
            "process.capabilities.ambient: capabilities not both permitted and inheritable are left out",
        );
    }
    for cap in each(m.ambient & allowed) {
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| Error::msg(format!("process.capabilities.ambient: raise {cap}: {e}")))?;
    }
    Ok(())
}
