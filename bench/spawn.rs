// Process spawner for bench/bench.py: a small, long-lived worker that forks and execs runtime commands
// and reports their wall time (CLOCK_MONOTONIC, the same clock as Python's time.monotonic_ns) and the
// peak RSS from wait4's rusage (the process and the children it reaped).
//
// Why not spawn from Python: ru_maxrss also covers the memory the child had before exec, and a fork of
// the Python interpreter carries ~10 MB of it. A fork of this tiny program carries almost nothing, and
// it is measured (bench.py times a static `true` through it as the floor).
//
// It makes itself a child subreaper, as a containerd shim or conmon does: container inits orphaned by
// `create` are reparented to it, and it reaps them (and nothing escapes as a zombie).
//
// Protocol on stdin/stdout, one request per line, fields separated by TAB:
//   R <argv...>          run one command; reply "rc t0_ns t1_ns maxrss_kib"
//   M <k>                then k lines of argv: start all k at once, wait for all;
//                        reply "nfail first_failed_rc t0_ns t1_ns sum_maxrss_kib max_maxrss_kib"
// rc is the exit status, or 128+signal. Children get /dev/null as stdin and stdout, and stderr
// appended to the log file named by argv[1] of this program.
// Build: rustc -O --edition 2021 bench/spawn.rs -o target/bench/spawn   (no crates)
use std::ffi::CString;
use std::io::{BufRead, Write};
use std::os::raw::{c_char, c_int, c_long};

#[repr(C)]
struct Timespec {
    sec: c_long,
    nsec: c_long,
}

extern "C" {
    fn fork() -> c_int;
    fn execv(path: *const c_char, argv: *const *const c_char) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn open(path: *const c_char, flags: c_int, mode: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
    fn wait4(pid: c_int, status: *mut c_int, options: c_int, rusage: *mut c_long) -> c_int;
    fn prctl(option: c_int, arg2: c_long, arg3: c_long, arg4: c_long, arg5: c_long) -> c_int;
    fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int;
    fn signal(sig: c_int, handler: usize) -> usize;
}

const O_RDWR: c_int = 2;
const O_WRONLY: c_int = 1;
const O_CREAT: c_int = 0o100;
const O_APPEND: c_int = 0o2000;
const O_CLOEXEC: c_int = 0o2000000;
const WNOHANG: c_int = 1;
const PR_SET_CHILD_SUBREAPER: c_int = 36;
const CLOCK_MONOTONIC: c_int = 1;
const RUSAGE_LONGS: usize = 18; // struct rusage on 64-bit Linux: 2 timevals + 14 longs
const RU_MAXRSS: usize = 4;

fn now_ns() -> i128 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.sec as i128 * 1_000_000_000 + ts.nsec as i128
}

struct Cmd {
    _args: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

fn cmd(fields: &[&str]) -> Cmd {
    let args: Vec<CString> = fields.iter().map(|a| CString::new(*a).expect("NUL in argument")).collect();
    let mut ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    Cmd { _args: args, ptrs }
}

/// Fork and exec; only async-signal-safe calls between fork and exec (everything is prepared before).
fn spawn(c: &Cmd, devnull: c_int, log: c_int) -> c_int {
    let pid = unsafe { fork() };
    if pid == 0 {
        unsafe {
            signal(13, 0); // Rust ignores SIGPIPE; give the runtime the default disposition back
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(log, 2);
            execv(c.ptrs[0], c.ptrs.as_ptr());
            _exit(127);
        }
    }
    pid
}

fn exit_code(status: c_int) -> c_int {
    if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) }
}

/// Reap children until every pid in `pending` has been reaped; other children (orphaned container
/// inits) are reaped and forgotten. Returns (pid, rc, maxrss KiB) in reaping order.
fn reap(pending: &mut Vec<c_int>) -> Vec<(c_int, c_int, c_long)> {
    let mut done = Vec::new();
    while !pending.is_empty() {
        let mut status: c_int = 0;
        let mut ru = [0 as c_long; RUSAGE_LONGS];
        let pid = unsafe { wait4(-1, &mut status, 0, ru.as_mut_ptr()) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(4) {
                continue; // EINTR
            }
            break;
        }
        if let Some(i) = pending.iter().position(|&p| p == pid) {
            pending.swap_remove(i);
            done.push((pid, exit_code(status), ru[RU_MAXRSS]));
        }
    }
    done
}

fn reap_strays() {
    let mut status: c_int = 0;
    while unsafe { wait4(-1, &mut status, WNOHANG, std::ptr::null_mut()) } > 0 {}
}

fn main() {
    let log_path = std::env::args().nth(1).unwrap_or_else(|| "/dev/null".into());
    let cpath = |p: &str| CString::new(p).unwrap();
    let devnull = unsafe { open(cpath("/dev/null").as_ptr(), O_RDWR | O_CLOEXEC, 0) };
    let log = unsafe { open(cpath(&log_path).as_ptr(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) };
    assert!(devnull >= 0 && log >= 0, "spawn: cannot open /dev/null or {log_path}");
    unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout();
    while let Some(Ok(line)) = lines.next() {
        reap_strays();
        let fields: Vec<&str> = line.split('\t').collect();
        let reply = match fields[0] {
            "R" if fields.len() > 1 => {
                let c = cmd(&fields[1..]);
                let t0 = now_ns();
                let pid = spawn(&c, devnull, log);
                let done = if pid > 0 { reap(&mut vec![pid]) } else { Vec::new() };
                let t1 = now_ns();
                match done.first() {
                    Some(&(_, rc, rss)) => format!("{rc} {t0} {t1} {rss}"),
                    None => format!("255 {t0} {t1} 0"),
                }
            }
            "M" if fields.len() == 2 => {
                let k: usize = fields[1].parse().unwrap_or(0);
                let mut cmds = Vec::with_capacity(k);
                for _ in 0..k {
                    let l = lines.next().and_then(|l| l.ok()).unwrap_or_default();
                    let f: Vec<&str> = l.split('\t').collect();
                    cmds.push(cmd(&f));
                }
                let t0 = now_ns();
                let mut pending: Vec<c_int> = cmds.iter().map(|c| spawn(c, devnull, log)).collect();
                let mut nfail = pending.iter().filter(|&&p| p <= 0).count();
                pending.retain(|&p| p > 0);
                let done = reap(&mut pending);
                let t1 = now_ns();
                let mut first_rc = 0;
                for &(_, rc, _) in &done {
                    if rc != 0 {
                        nfail += 1;
                        if first_rc == 0 {
                            first_rc = rc;
                        }
                    }
                }
                let sum: c_long = done.iter().map(|d| d.2).sum();
                let max = done.iter().map(|d| d.2).max().unwrap_or(0);
                format!("{nfail} {first_rc} {t0} {t1} {sum} {max}")
            }
            _ => "ERR".to_string(),
        };
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    reap_strays();
}
