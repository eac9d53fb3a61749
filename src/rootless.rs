//! Whether capsa runs rootless: without root on the host. That is the case
//! for an ordinary user, and also for uid 0 of a user namespace other than
//! the initial one (conmon under rootless podman, `podman unshare`,
//! `unshare --user --map-root-user`): there euid 0 owns nothing of the
//! host. The global `--rootless true|false|auto` flag decides it
//! explicitly, as runc's does; `auto` (the default) looks.
//!
//! Rootless, capsa keeps its state under `$XDG_RUNTIME_DIR/capsa` and runs
//! a container without a cgroup of its own where it cannot make one. The
//! check is made only when one of those needs it, and for root in the
//! initial namespace only on the paths where an answer could differ (one
//! read of /proc/self/uid_map).

use crate::error::{Error, Result};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

const AUTO: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(AUTO);
static DETECTED: OnceLock<bool> = OnceLock::new();

/// Takes the value of `--rootless` (`true`, `false` or `auto`; absent is
/// `auto`).
pub fn set_mode(flag: Option<&str>) -> Result<()> {
    MODE.store(parse_mode(flag)?, Ordering::Relaxed);
    Ok(())
}

fn parse_mode(flag: Option<&str>) -> Result<u8> {
    Ok(match flag {
        None | Some("auto") => AUTO,
        Some("true") => YES,
        Some("false") => NO,
        Some(other) => {
            return Err(Error::msg(format!(
                "invalid value {other:?} for --rootless: expected true, false or auto"
            )));
        }
    })
}

/// Whether capsa acts as rootless (see the module's description).
pub fn is_rootless() -> bool {
    match MODE.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => *DETECTED.get_or_init(detect),
    }
}

fn detect() -> bool {
    !nix::unistd::geteuid().is_root() || !in_initial_userns()
}

/// Whether this process is in the initial user namespace: only there is
/// the uid map the identity over the whole id range. A map that cannot
/// be read (no /proc) counts as the initial namespace, as root's
/// behaviour is the safer default for the state root's permissions.
pub fn in_initial_userns() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => is_identity_map(&map),
        Err(_) => true,
    }
}

fn is_identity_map(map: &str) -> bool {
    let mut lines = map.lines().filter(|l| !l.trim().is_empty());
    let first = lines
        .next()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    lines.next().is_none() && first.as_deref() == Some(&["0", "0", "4294967295"][..])
}

/// The state root when `--root` is not given: `/run/capsa` for root,
/// `$XDG_RUNTIME_DIR/capsa` rootless (for uid 0 of a user namespace only
/// when `USER` is not `root`), else `/tmp/capsa-EUID`.
pub fn default_root() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    let euid = nix::unistd::geteuid();
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    if euid.is_root() {
        // Root in the initial namespace, or told to act as root: no
        // environment variable decides otherwise. The uid map is read only
        // when the environment could make a difference.
        let user_is_root = std::env::var_os("USER").is_some_and(|u| u == "root");
        match xdg {
            Some(d) if !user_is_root && is_rootless() => Path::new(&d).join("capsa"),
            _ => PathBuf::from("/run/capsa"),
        }
    } else {
        match xdg {
            Some(d) => Path::new(&d).join("capsa"),
            None => PathBuf::from(format!("/tmp/capsa-{euid}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_is_the_initial_namespace() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("         0       1000          1\n"));
        assert!(!is_identity_map("0 1000 1\n1 100000 65536\n"));
        assert!(!is_identity_map("0 0 4294967294\n"));
        assert!(!is_identity_map("0 0 4294967295\n1 1 1\n"));
        assert!(!is_identity_map(""));
    }

    #[test]
    fn rootless_flag_values() {
        assert!(parse_mode(Some("maybe")).is_err());
        assert!(parse_mode(Some("")).is_err());
        assert_eq!(parse_mode(None).unwrap(), AUTO);
        assert_eq!(parse_mode(Some("auto")).unwrap(), AUTO);
        assert_eq!(parse_mode(Some("true")).unwrap(), YES);
        assert_eq!(parse_mode(Some("false")).unwrap(), NO);
    }
}
