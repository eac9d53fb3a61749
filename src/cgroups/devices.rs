//! Device rules (`linux.resources.devices`): parsed and checked, followed by
//! runc's default allow-list (what every container's default /dev needs),
//! written in order for the v1 devices controller, and reduced for v2 to
//! what the v1 kernel code would have computed (a default plus exceptions),
//! which the eBPF program then checks.

use crate::bail;
use crate::error::Result;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// Access bits, numbered as the kernel's BPF device context numbers them.
pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
pub const ALL: u8 = MKNOD | READ | WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    All,
    Char,
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    /// `None` is the wildcard `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    const fn allow(kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The line written to devices.allow / devices.deny.
    pub fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let t = match self.kind {
            Kind::All => return "a".into(),
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        format!(
            "{t} {}:{} {}",
            num(self.major),
            num(self.minor),
            access_str(self.access)
        )
    }

    /// A rule over every device (`a`, or `a *:* rwm`).
    fn is_all(&self) -> bool {
        self.kind == Kind::All
    }
}

pub fn access_str(a: u8) -> String {
    let mut s = String::new();
    if a & READ != 0 {
        s.push('r');
    }
    if a & WRITE != 0 {
        s.push('w');
    }
    if a & MKNOD != 0 {
        s.push('m');
    }
    s
}

/// runc's default rules, appended after the config's own: mknod of any
/// device, and the devices every container gets in /dev (null, random,
/// full, tty, zero, urandom, the pty slaves, ptmx) plus /dev/net/tun.
pub const DEFAULT_ALLOWED: &[Rule] = &[
    Rule::allow(Kind::Char, None, None, MKNOD),
    Rule::allow(Kind::Block, None, None, MKNOD),
    Rule::allow(Kind::Char, Some(1), Some(3), ALL),
    Rule::allow(Kind::Char, Some(1), Some(8), ALL),
    Rule::allow(Kind::Char, Some(1), Some(7), ALL),
    Rule::allow(Kind::Char, Some(5), Some(0), ALL),
    Rule::allow(Kind::Char, Some(1), Some(5), ALL),
    Rule::allow(Kind::Char, Some(1), Some(9), ALL),
    Rule::allow(Kind::Char, Some(136), None, ALL),
    Rule::allow(Kind::Char, Some(5), Some(2), ALL),
    Rule::allow(Kind::Char, Some(10), Some(200), ALL),
];

/// The config's rules, checked, then the defaults. `field` names
/// `linux.resources.devices` for errors.
pub fn rules(devices: Option<&Vec<LinuxDeviceCgroup>>, field: &str) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for (i, d) in devices.into_iter().flatten().enumerate() {
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => Kind::All,
            Some(LinuxDeviceType::C) => Kind::Char,
            Some(LinuxDeviceType::B) => Kind::Block,
            Some(t) => bail!(
                "{field}[{i}].type: {:?} is not a cgroup device type (a, b or c)",
                t.as_str()
            ),
        };
        let num = |n: Option<i64>, what: &str| -> Result<Option<u32>> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) => match u32::try_from(n) {
                    Ok(n) => Ok(Some(n)),
                    Err(_) => bail!("{field}[{i}].{what}: {n} is not a device number"),
                },
            }
        };
        let major = num(d.major(), "major")?;
        let minor = num(d.minor(), "minor")?;
        let access = match d.access().as_deref() {
            None | Some("") => {
                bail!("{field}[{i}].access: missing (a combination of r, w and m)")
            }
            Some(a) => parse_access(a).ok_or_else(|| {
                crate::Error::msg(format!(
                    "{field}[{i}].access: {a:?} is not a combination of r, w and m"
                ))
            })?,
        };
        out.push(Rule {
            allow: d.allow(),
            kind,
            major,
            minor,
            access,
        });
    }
    out.extend_from_slice(DEFAULT_ALLOWED);
    Ok(out)
}

fn parse_access(a: &str) -> Option<u8> {
    let mut bits = 0;
    for c in a.chars() {
        bits |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => return None,
        };
    }
    Some(bits)
}

/// What the v1 devices controller ends up with after the rules are written
/// in order to a new cgroup (which starts by allowing everything): a
/// default and the exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub default_allow: bool,
    pub exceptions: Vec<Rule>,
}

/// Replays `rules` the way the kernel's v1 devices controller does: a rule
/// over all devices sets the default and clears the exceptions; a rule that
/// agrees with the default removes its access from the exception for that
/// exact device; one that disagrees adds (merges) an exception.
pub fn effective(rules: &[Rule]) -> Effective {
    let mut e = Effective {
        default_allow: true,
        exceptions: Vec::new(),
    };
    for r in rules {
        if r.is_all() && r.access == ALL {
            e.default_allow = r.allow;
            e.exceptions.clear();
            continue;
        }
        // `a` with partial access: the same for both device kinds.
        let kinds: &[Kind] = if r.is_all() {
            &[Kind::Char, Kind::Block]
        } else {
            std::slice::from_ref(&r.kind)
        };
        for &kind in kinds {
            let same = |x: &Rule| x.kind == kind && x.major == r.major && x.minor == r.minor;
            if r.allow == e.default_allow {
                if let Some(x) = e.exceptions.iter_mut().find(|x| same(x)) {
                    x.access &= !r.access;
                }
                e.exceptions.retain(|x| x.access != 0);
            } else if let Some(x) = e.exceptions.iter_mut().find(|x| same(x)) {
                x.access |= r.access;
            } else {
                e.exceptions.push(Rule {
                    allow: r.allow,
                    kind,
                    major: r.major,
                    minor: r.minor,
                    access: r.access,
                });
            }
        }
    }
    e
}

impl Effective {
    /// Whether an access of `kind` `major:minor` with `access` bits is
    /// allowed (the reference the eBPF program is tested against).
    pub fn allows(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let hit = |x: &&Rule| {
            x.kind == kind
                && x.major.is_none_or(|m| m == major)
                && x.minor.is_none_or(|m| m == minor)
        };
        if self.default_allow {
            // Denied if any exception covers part of the access.
            !self
                .exceptions
                .iter()
                .filter(hit)
                .any(|x| x.access & access != 0)
        } else {
            // Allowed if one exception covers all of it.
            self.exceptions
                .iter()
                .filter(hit)
                .any(|x| access & !x.access == 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(
        allow: bool,
        t: &str,
        major: Option<i64>,
        minor: Option<i64>,
        a: &str,
    ) -> LinuxDeviceCgroup {
        serde_json::from_value(serde_json::json!({
            "allow": allow, "type": t, "major": major, "minor": minor, "access": a
        }))
        .unwrap()
    }

    #[test]
    fn parsing_and_lines() {
        let devs = vec![
            dev(false, "a", None, None, "rwm"),
            dev(true, "c", Some(10), Some(229), "rwm"),
            dev(true, "b", Some(8), None, "r"),
        ];
        let r = rules(Some(&devs), "f").unwrap();
        assert_eq!(r.len(), 3 + DEFAULT_ALLOWED.len());
        assert_eq!(r[0].v1_line(), "a");
        assert!(!r[0].allow);
        assert_eq!(r[1].v1_line(), "c 10:229 rwm");
        assert_eq!(r[2].v1_line(), "b 8:* r");
        assert_eq!(r[3].v1_line(), "c *:* m");
        let e = rules(Some(&vec![dev(true, "c", Some(1), Some(1), "rx")]), "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f[0].access: \"rx\" is not a combination of r, w and m"
        );
        let e = rules(Some(&vec![dev(true, "p", None, None, "r")]), "f").unwrap_err();
        assert!(e.to_string().starts_with("f[0].type: "), "{e}");
        let e = rules(Some(&vec![dev(true, "c", None, None, "")]), "f").unwrap_err();
        assert!(e.to_string().starts_with("f[0].access: missing"), "{e}");
    }

    #[test]
    fn effective_rules_follow_the_kernel() {
        let devs = vec![
            dev(false, "a", None, None, "rwm"),
            dev(true, "c", Some(1), Some(3), "r"),
            dev(true, "c", Some(1), Some(3), "w"),
            dev(true, "c", Some(1), Some(5), "rw"),
            dev(false, "c", Some(1), Some(5), "w"),
        ];
        let e = effective(&rules(Some(&devs), "f").unwrap());
        assert!(!e.default_allow);
        assert!(e.allows(Kind::Char, 1, 3, READ | WRITE));
        assert!(
            e.allows(Kind::Char, 1, 5, READ | WRITE),
            "defaults re-allow zero"
        );
        assert!(!e.allows(Kind::Char, 4, 1, READ), "tty1 not allowed");
        assert!(e.allows(Kind::Char, 136, 7, READ | WRITE), "pts");
        assert!(
            e.allows(Kind::Block, 8, 0, MKNOD),
            "mknod of any block device"
        );
        assert!(!e.allows(Kind::Block, 8, 0, READ));

        // Without a deny-all everything stays allowed but what is denied.
        let devs = vec![dev(false, "c", Some(4), None, "w")];
        let e = effective(&rules(Some(&devs), "f").unwrap());
        assert!(e.default_allow);
        assert!(!e.allows(Kind::Char, 4, 1, READ | WRITE));
        assert!(e.allows(Kind::Char, 4, 1, READ));
        assert!(e.allows(Kind::Block, 8, 0, READ | WRITE | MKNOD));
    }
}
