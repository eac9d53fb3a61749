//! Signal names and numbers as `kill` accepts them: `TERM`, `SIGTERM`,
//! `15`, and the real-time forms `RTMIN+3` / `SIGRTMAX-1`.

use crate::bail;
use crate::error::Result;

const NAMES: [(&str, i32); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
];

/// A signal for `kill`: `0` too, which checks that the container is alive
/// (runc's liveness check) without signalling it.
pub fn parse(s: &str) -> Result<i32> {
    let max = libc::SIGRTMAX();
    if let Ok(n) = s.parse::<i32>() {
        if n < 0 || n > max {
            bail!("invalid signal {s:?}: no signal number {n}");
        }
        return Ok(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        // Checked: `RTMIN+2147483647` is an error, not an overflow.
        let n = base.checked_add(sign.checked_mul(off)?)?;
        (libc::SIGRTMIN()..=max).contains(&n).then_some(n)
    };
    let parsed = if let Some(r) = name.strip_prefix("RTMIN") {
        r.strip_prefix('+').map_or_else(
            || {
                if r.is_empty() {
                    rt(libc::SIGRTMIN(), "", 1)
                } else {
                    None
                }
            },
            |r| rt(libc::SIGRTMIN(), r, 1),
        )
    } else if let Some(r) = name.strip_prefix("RTMAX") {
        r.strip_prefix('-').map_or_else(
            || if r.is_empty() { rt(max, "", 1) } else { None },
            |r| rt(max, r, -1),
        )
    } else {
        None
    };
    match parsed {
        Some(n) => Ok(n),
        None => bail!("invalid signal {s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), 15);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigusr1").unwrap(), 10);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        for bad in [
            "",
            "65",
            "FOO",
            "SIG",
            "-1",
            "RTMIN+99",
            "RTMIN+2147483647",
            "RTMAX--2147483648",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
