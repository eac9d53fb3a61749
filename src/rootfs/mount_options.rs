//! Parsing the `options` of a config mount into mount(2) flags, propagation
//! flags and the filesystem-specific data string.

use nix::mount::MsFlags;

#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (MS_RDONLY, MS_NOSUID, MS_BIND, ...).
    pub flags: MsFlags,
    /// Flags cleared explicitly (`rw`, `suid`, ...), relevant when remounting.
    pub cleared: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// Everything else, passed to the filesystem.
    pub data: String,
    /// `idmap` (`Some(false)`) or `ridmap` (`Some(true)`, the mapping
    /// applied to every mount of an `rbind` tree): never passed to mount(2).
    pub idmap: Option<bool>,
    /// The recursive attributes (`rro`, `rnosuid`, ...), applied to the
    /// mount and every mount below it with mount_setattr(AT_RECURSIVE).
    pub rec: RecursiveAttrs,
    /// `tmpcopyup`: fill a new tmpfs with what the image has at its
    /// destination.
    pub tmpcopyup: bool,
}

/// A `struct mount_attr`'s set and clear masks (MOUNT_ATTR_*).
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clr: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0
    }
}

/// MS_NOSYMFOLLOW (Linux 5.10), which nix's MsFlags does not name.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// The filesystem types whose mounts take no data string from capsa: a
/// bind mount's options are capsa's alone, and capsa builds the cgroup
/// mounts itself.
pub fn takes_data(typ: &str, bind: bool) -> bool {
    !bind && !matches!(typ, "" | "bind" | "cgroup" | "cgroup2")
}

/// Checks `mounts[index]`'s options before anything is mounted: an option
/// capsa does not know is refused unless the mount's filesystem takes
/// filesystem options (a tmpfs's `size=`, a devpts's `newinstance`), and
/// `tmpcopyup` only goes with a tmpfs.
pub fn check(index: usize, m: &oci_spec::runtime::Mount) -> Result<(), String> {
    let opts = parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = typ == "bind" || opts.is_bind();
    let dest = m.destination().display();
    if !opts.data.is_empty() && !takes_data(typ, bind) {
        let what = if bind {
            "a bind mount".to_string()
        } else {
            format!("a {typ} mount")
        };
        // A bind mount's filesystem was mounted with its own options long
        // before: the kernel takes no data for a bind, and clients (and
        // runtime-tools' mounts test) put a tmpfs's `mode=`/`size=` on
        // binds, which runc hands on for the kernel to drop. Such a
        // `key=value` is said to have no effect; a word capsa does not
        // know (a misspelt flag) is refused.
        let (values, words): (Vec<&str>, Vec<&str>) =
            opts.data.split(',').partition(|o| bind && o.contains('='));
        if let Some(w) = words.first() {
            return Err(format!(
                "mounts[{index}] ({dest}): unknown mount option {w:?} ({what} takes no filesystem options)"
            ));
        }
        crate::logging::warn(&format!(
            "mounts[{index}] ({dest}): {} not applied: a bind mount takes no filesystem options",
            values.join(",")
        ));
    }
    if opts.tmpcopyup && (bind || typ != "tmpfs") {
        return Err(format!(
            "mounts[{index}] ({dest}): the option \"tmpcopyup\" needs a tmpfs mount"
        ));
    }
    Ok(())
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        idmap: None,
        rec: RecursiveAttrs::default(),
        tmpcopyup: false,
    };
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "idmap" => {
                o.idmap = Some(o.idmap.unwrap_or(false));
                continue;
            }
            "ridmap" => {
                o.idmap = Some(true);
                continue;
            }
            "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW),
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            p => {
                if let Some((set, clr)) = recursive(p) {
                    o.rec.set = (o.rec.set & !clr) | set;
                    o.rec.clr = (o.rec.clr & !set) | clr;
                    continue;
                }
                if let Some(f) = propagation(p) {
                    o.propagation.push(f);
                } else {
                    data.push(p);
                }
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
        o.cleared.insert(clear);
        o.cleared.remove(set);
    }
    o.data = data.join(",");
    o
}

/// The MOUNT_ATTR_* bits a recursive option sets and clears. The atime
/// modes are one field (MOUNT_ATTR__ATIME), replaced as a whole: `ratime`,
/// `rnorelatime` and `rnostrictatime` all leave the kernel's default,
/// relatime, as mount(2) does for `atime`, `norelatime`, `nostrictatime`.
fn recursive(name: &str) -> Option<(u64, u64)> {
    use libc::{
        MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
        MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
        MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME,
    };
    Some(match name {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => {
            (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME)
        }
        _ => return None,
    })
}

/// Every option [`parse`] knows besides the propagation keywords, for
/// `capsa features`.
pub const RECURSIVE_OPTIONS: &[&str] = &[
    "ratime",
    "rdev",
    "rdiratime",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "rrelatime",
    "rro",
    "rrw",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
];

/// The mount(2) flags of a propagation keyword (`rslave`, `private`, ...).
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = parse(&s(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rslave",
            "ro",
            "rw",
        ]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert!(parse(&s(&["rbind"])).flags.contains(MsFlags::MS_REC));
        assert_eq!(parse(&s(&["rbind"])).idmap, None);
        let o = parse(&s(&["bind", "idmap"]));
        assert_eq!((o.idmap, o.data.as_str()), (Some(false), ""));
        assert_eq!(parse(&s(&["ridmap", "idmap"])).idmap, Some(true));
        assert_eq!(parse(&s(&["idmap", "ridmap"])).idmap, Some(true));
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&s(&["rbind", "rro", "rnosuid", "rnoatime", "nosymfollow"]));
        assert_eq!(o.data, "");
        assert!(o.flags.contains(MS_NOSYMFOLLOW));
        let a = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOATIME;
        assert_eq!((o.rec.set, o.rec.clr), (a, libc::MOUNT_ATTR__ATIME));
        // A later option undoes an earlier one.
        let o = parse(&s(&["rro", "rnoatime", "rrw", "rstrictatime"]));
        assert_eq!(o.rec.set, libc::MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.rec.clr, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR__ATIME);
        assert!(parse(&s(&["tmpcopyup"])).tmpcopyup);
    }
}
