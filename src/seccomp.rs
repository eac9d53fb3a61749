//! Seccomp filters from `linux.seccomp`, with libseccomp's (and so runc's)
//! semantics, compiled without libseccomp.
//!
//! The profile becomes ONE classic-BPF program, installed with one
//! `seccomp(2)` call (so nothing in the profile can stop its own
//! installation, and the user-notification listener, if any, belongs to the
//! only filter). Its shape:
//!
//! ```text
//!   load arch; one branch per audit arch of the filter; else KILL_THREAD
//!   per arch:  load nr
//!              [nr > largest listed syscall -> ERRNO(ENOSYS)]   (runc's stub)
//!              unconditional syscalls: jeq nr -> ret ACTION, grouped by action
//!              conditional rules: one block per action, most severe first;
//!                a block returns its action when a rule matches, else
//!                falls through to the next block
//!              ret defaultAction
//! ```
//!
//! The conditional blocks are compiled by `seccompiler` (which does the
//! 32/64-bit argument comparisons); it only knows "match action" and
//! "mismatch action", so each block is compiled with two placeholder
//! actions whose `ret` instructions are then rewritten: the match one into
//! the real return value (this is also how SCMP_ACT_NOTIFY, which seccompiler
//! lacks, is expressed) and the mismatch one into a jump past the block.
//!
//! Semantics, as libseccomp builds them for runc:
//! - a rule whose action equals the default action is dropped (runc skips
//!   them because libseccomp refuses them);
//! - for one syscall, the first unconditional rule decides, whatever comes
//!   before or after it; otherwise the syscall gets the action of a matching
//!   conditional rule, or the default action when none matches. When rules
//!   with different actions match at once (libseccomp's result depends on
//!   its internal tree), the most severe action wins, in the kernel's order
//!   KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > NOTIFY > TRACE > LOG > ALLOW;
//! - the conditions of a rule are ANDed; when one argument index appears
//!   twice in a rule, runc adds every condition as a rule of its own (ORed);
//! - SCMP_CMP_MASKED_EQ matches when `arg & value == valueTwo`;
//! - 32-bit ABIs (x86, x32, arm) compare the low 32 bits only;
//! - syscalls of an architecture outside the filter get KILL_THREAD
//!   (libseccomp's default "bad arch" action), x32 syscalls included when
//!   SCMP_ARCH_X32 is not listed; the native architecture is always in;
//! - when the default action refuses syscalls (anything but ALLOW, LOG and
//!   TRACE), syscalls numbered above the largest one the profile names for
//!   an architecture get ENOSYS, as runc's "-ENOSYS stub" does, so that
//!   programs fall back from syscalls newer than the profile;
//! - without a `flags` field, SECCOMP_FILTER_FLAG_SPEC_ALLOW is used when the
//!   kernel knows it, as runc does.

use crate::error::{Context, Error, Result};
use crate::spec::CONFIG;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};
use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};

// Return values of a seccomp filter (<linux/seccomp.h>).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_DATA: u32 = 0x0000_ffff;
const RET_ACTION_FULL: u32 = 0xffff_0000;

// seccomp(2) operation and SECCOMP_SET_MODE_FILTER flags.
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const FLAG_TSYNC: u32 = 1 << 0;
const FLAG_LOG: u32 = 1 << 1;
const FLAG_SPEC_ALLOW: u32 = 1 << 2;
const FLAG_NEW_LISTENER: u32 = 1 << 3;
const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

// <linux/audit.h>
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const AUDIT_ARCH_RISCV64: u32 = 0xc000_00f3;
/// x32 syscalls run as x86_64 with this bit set in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The kernel's limit on one filter program (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;
/// `struct seccomp_data` offsets.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

// Classic BPF opcodes (<linux/bpf_common.h>).
/// BPF_LD | BPF_W | BPF_ABS
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JSET: u16 = 0x40;
const BPF_RET_K: u16 = 0x06;

/// Unconditional syscalls per `jeq` run: a run's jumps reach its `ret`.
const RUN: usize = 250;

/// Compiled filters ready to install; cheap to keep around.
///
/// Building it makes no system call, so it can as well be built in the
/// parent (where warnings reach capsa's log) and handed to the init.
#[derive(Clone, Debug)]
pub struct Prepared {
    program: Vec<sock_filter>,
    /// SECCOMP_FILTER_FLAG_* to install with.
    flags: u32,
    /// Try SECCOMP_FILTER_FLAG_SPEC_ALLOW too, dropping it if the kernel
    /// does not know it (runc's default when the profile has no `flags`).
    spec_allow_if_known: bool,
}

impl Prepared {
    /// Whether the profile uses SCMP_ACT_NOTIFY, i.e. `install` returns a
    /// listener fd.
    pub fn uses_notify(&self) -> bool {
        self.flags & FLAG_NEW_LISTENER != 0
    }

    /// The number of BPF instructions of the filter.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }
}

/// Validates and compiles the profile. Unknown syscall names are skipped,
/// and so is an architecture capsa has no syscall table for; both are
/// logged at debug level, as runc does: engines' default profiles (podman's,
/// docker's) name syscalls of other kernels and architectures, and a
/// warning in every container's log would break podman, which decodes the
/// whole log file as one JSON object when a create fails.
pub fn prepare(seccomp: &LinuxSeccomp) -> Result<Prepared> {
    let native = Abi::native().ok_or_else(|| {
        Error::msg(format!(
            "{CONFIG}: linux.seccomp: seccomp filters are not supported on {}",
            std::env::consts::ARCH
        ))
    })?;
    let p = compile(seccomp, native, &mut |w| crate::logging::debug(&w))?;
    crate::logging::debug(&format!(
        "seccomp: {} BPF instructions, flags {:#x}",
        p.program.len(),
        p.flags
    ));
    Ok(p)
}

/// Installs the filter on the calling thread (no_new_privs or
/// CAP_SYS_ADMIN is the caller's business). Returns the user-notification
/// listener when the profile uses SCMP_ACT_NOTIFY.
pub fn install(p: &Prepared) -> Result<Option<OwnedFd>> {
    let mut flags = p.flags;
    let mut ret = Err(nix::errno::Errno::EINVAL);
    if p.spec_allow_if_known {
        ret = set_mode_filter(&p.program, flags | FLAG_SPEC_ALLOW);
        if ret.is_ok() {
            flags |= FLAG_SPEC_ALLOW;
        }
    }
    if ret == Err(nix::errno::Errno::EINVAL) {
        ret = set_mode_filter(&p.program, flags);
    }
    let ret = ret.ctx(|| format!("seccomp: load the filter (flags {flags:#x})"))?;
    if flags & FLAG_NEW_LISTENER != 0 {
        let fd = libc::c_int::try_from(ret)
            .map_err(|_| Error::msg(format!("seccomp: bad listener fd {ret}")))?;
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a successful
        // seccomp() returns a new (close-on-exec) fd that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    if ret != 0 {
        // With TSYNC (and no listener) a positive value is the thread that
        // could not be synchronised; the filter was not installed.
        return Err(Error::msg(format!(
            "seccomp: SECCOMP_FILTER_FLAG_TSYNC: thread {ret} could not be synchronized"
        )));
    }
    Ok(None)
}

/// Whether the kernel knows SECCOMP_RET_USER_NOTIF (Linux 5.0).
pub fn notify_supported() -> bool {
    let action: u32 = RET_USER_NOTIF;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL only reads the u32 `action` points
    // at, which lives for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_ulong,
            &action as *const u32,
        )
    };
    ret == 0
}

/// Checks what SCMP_ACT_NOTIFY needs besides the filter: a listener socket
/// to send the listener to, and a kernel with user notification.
pub fn check_notify(seccomp: &LinuxSeccomp) -> Result<()> {
    if seccomp
        .listener_path()
        .as_ref()
        .is_none_or(|p| p.as_os_str().is_empty())
    {
        return Err(field_err(
            "linux.seccomp.listenerPath",
            "required when a rule uses SCMP_ACT_NOTIFY (the unix socket that receives the \
             seccomp listener)",
        ));
    }
    if !notify_supported() {
        return Err(field_err(
            "linux.seccomp",
            "SCMP_ACT_NOTIFY: this kernel has no seccomp user notification (Linux 5.0 or later)",
        ));
    }
    Ok(())
}

/// Hands a seccomp listener to the agent at `linux.seccomp.listenerPath`,
/// as the runtime-spec describes: one connection to the unix stream
/// socket, one message carrying the container process state (JSON) and
/// the listener (SCM_RIGHTS, named "seccompFd" in `fds`), then close.
/// `pid` is the process the filter belongs to, `state` the container's
/// state.
pub fn send_listener(
    seccomp: &LinuxSeccomp,
    listener: std::os::fd::BorrowedFd<'_>,
    pid: i32,
    state: &serde_json::Value,
) -> Result<()> {
    use nix::sys::socket::{
        AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg,
        socket,
    };
    use std::os::fd::AsRawFd;
    let path = seccomp
        .listener_path()
        .as_ref()
        .ok_or_else(|| field_err("linux.seccomp.listenerPath", "missing"))?;
    let field = format!("{CONFIG}: linux.seccomp.listenerPath ({})", path.display());
    let mut doc = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = seccomp
        .listener_metadata()
        .as_ref()
        .filter(|m| !m.is_empty())
    {
        doc["metadata"] = m.as_str().into();
    }
    let body = serde_json::to_vec(&doc).map_err(|e| Error::msg(format!("{field}: {e}")))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| format!("{field}: socket"))?;
    let addr = UnixAddr::new(path.as_path()).ctx(|| field.clone())?;
    connect(sock.as_raw_fd(), &addr).ctx(|| format!("{field}: connect"))?;
    let fds = [listener.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(&body)];
    let mut sent = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .ctx(|| format!("{field}: send the seccomp listener"))?;
    while sent < body.len() {
        sent += nix::sys::socket::send(sock.as_raw_fd(), &body[sent..], MsgFlags::MSG_NOSIGNAL)
            .ctx(|| format!("{field}: send the container process state"))?;
    }
    Ok(())
}

/// The runtime-spec names of the architectures capsa compiles filters for
/// (each one's syscall table), for `features`.
pub fn architectures() -> &'static [&'static str] {
    &[
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
    ]
}

/// The filter flags of the runtime-spec this kernel accepts, for
/// `features`. Each is tried with no program: the kernel checks the flags
/// first (EINVAL for one it does not know) and only then reads the program
/// (EFAULT), so nothing is installed.
pub fn supported_flags() -> Vec<&'static str> {
    let accepts = |flags: u32| {
        // SAFETY: a null program: the kernel fails the copy with EFAULT
        // after checking the flags; no memory of ours is read or written.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                libc::c_ulong::from(flags),
                std::ptr::null::<libc::sock_fprog>(),
            )
        };
        r == -1 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
    };
    [
        ("SECCOMP_FILTER_FLAG_LOG", FLAG_LOG),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", FLAG_SPEC_ALLOW),
        ("SECCOMP_FILTER_FLAG_TSYNC", FLAG_TSYNC),
        // Only valid with a listener (capsa adds one with SCMP_ACT_NOTIFY).
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            FLAG_WAIT_KILLABLE_RECV | FLAG_NEW_LISTENER,
        ),
    ]
    .into_iter()
    .filter(|(_, f)| accepts(*f))
    .map(|(n, _)| n)
    .collect()
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, program).
fn set_mode_filter(program: &[sock_filter], flags: u32) -> nix::Result<libc::c_long> {
    let len = u16::try_from(program.len()).map_err(|_| nix::errno::Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is #[repr(C)] {u16, u8, u8, u32}, the
        // layout of the kernel's (and libc's) struct sock_filter.
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `program`, `len` instructions long, both
    // alive for the whole call; the kernel only reads them (it copies the
    // program) and keeps no pointer. The call has no other memory effects.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    nix::errno::Errno::result(ret)
}

/// The syscall ABIs capsa has tables for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Abi {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
    Riscv64,
}

impl Abi {
    fn native() -> Option<Abi> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Abi::X86_64),
            "aarch64" => Some(Abi::Aarch64),
            "riscv64" => Some(Abi::Riscv64),
            _ => None,
        }
    }

    /// The ABIs a kernel of this native architecture can run.
    fn runnable(self) -> &'static [Abi] {
        match self {
            Abi::X86_64 | Abi::X32 | Abi::X86 => &[Abi::X86_64, Abi::X86, Abi::X32],
            Abi::Aarch64 | Abi::Arm => &[Abi::Aarch64, Abi::Arm],
            Abi::Riscv64 => &[Abi::Riscv64],
        }
    }

    fn from_spec(a: Arch, native: Abi) -> Option<Abi> {
        match a {
            Arch::ScmpArchNative => Some(native),
            Arch::ScmpArchX86_64 => Some(Abi::X86_64),
            Arch::ScmpArchX32 => Some(Abi::X32),
            Arch::ScmpArchX86 => Some(Abi::X86),
            Arch::ScmpArchAarch64 => Some(Abi::Aarch64),
            Arch::ScmpArchArm => Some(Abi::Arm),
            Arch::ScmpArchRiscv64 => Some(Abi::Riscv64),
            _ => None,
        }
    }

    fn audit(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
            Abi::Riscv64 => AUDIT_ARCH_RISCV64,
        }
    }

    /// Whether syscall arguments are 32 bits wide (libseccomp compares only
    /// their low halves).
    fn args_32bit(self) -> bool {
        matches!(self, Abi::X32 | Abi::X86 | Abi::Arm)
    }

    /// The syscall's number in this ABI.
    fn syscall(self, name: &str) -> Option<u32> {
        use std::str::FromStr;
        let id = match self {
            Abi::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
            Abi::X86 => syscalls::x86::Sysno::from_str(name).ok()?.id(),
            Abi::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
            Abi::Arm => syscalls::arm::Sysno::from_str(name).ok()?.id(),
            Abi::Riscv64 => syscalls::riscv64::Sysno::from_str(name).ok()?.id(),
            Abi::X32 => {
                let nr = match X32_OWN.iter().find(|(n, _)| *n == name) {
                    Some((_, nr)) => *nr,
                    None => Abi::X86_64.syscall(name)?,
                };
                return Some(nr | X32_SYSCALL_BIT);
            }
        };
        u32::try_from(id).ok()
    }
}

/// The syscalls x32 numbers apart from x86_64 (the kernel's syscall_64.tbl,
/// entries 512-547); every other x32 syscall has its x86_64 number.
const X32_OWN: &[(&str, u32)] = &[
    ("rt_sigaction", 512),
    ("rt_sigreturn", 513),
    ("ioctl", 514),
    ("readv", 515),
    ("writev", 516),
    ("recvfrom", 517),
    ("sendmsg", 518),
    ("recvmsg", 519),
    ("execve", 520),
    ("ptrace", 521),
    ("rt_sigpending", 522),
    ("rt_sigtimedwait", 523),
    ("rt_sigqueueinfo", 524),
    ("sigaltstack", 525),
    ("timer_create", 526),
    ("mq_notify", 527),
    ("kexec_load", 528),
    ("waitid", 529),
    ("set_robust_list", 530),
    ("get_robust_list", 531),
    ("vmsplice", 532),
    ("move_pages", 533),
    ("preadv", 534),
    ("pwritev", 535),
    ("rt_tgsigqueueinfo", 536),
    ("recvmmsg", 537),
    ("sendmmsg", 538),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("setsockopt", 541),
    ("getsockopt", 542),
    ("io_setup", 543),
    ("io_submit", 544),
    ("execveat", 545),
    ("preadv2", 546),
    ("pwritev2", 547),
];

/// Whether any table capsa has knows the name (a name only another
/// architecture has is not worth a warning).
fn known_anywhere(name: &str) -> bool {
    [Abi::X86_64, Abi::X86, Abi::Aarch64, Abi::Arm, Abi::Riscv64]
        .iter()
        .any(|a| a.syscall(name).is_some())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

/// One argument comparison, as in the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cond {
    arg: u8,
    op: Op,
    value: u64,
    value_two: u64,
}

/// What the profile asks for one syscall name: `action` when all `conds`
/// hold (always, when there are none). `action` is the filter return value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    name: String,
    action: u32,
    conds: Vec<Cond>,
}

fn field_err(field: impl std::fmt::Display, msg: impl std::fmt::Display) -> Error {
    Error::msg(format!("{CONFIG}: {field}: {msg}"))
}

/// The filter return value of an action; `errno_ret` (EPERM if absent) is
/// the data of ERRNO and TRACE, and is ignored by the others, as in runc.
fn action_value(a: LinuxSeccompAction, errno_ret: Option<u32>, field: &str) -> Result<u32> {
    let data = || match errno_ret {
        None => Ok(libc::EPERM as u32),
        Some(e) if e <= RET_DATA => Ok(e),
        Some(e) => Err(field_err(
            field,
            format!("{e} is out of range (0 to 65535)"),
        )),
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data()?,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data()?,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
    })
}

/// Orders actions the way the kernel ranks them: most severe first.
fn severity(action: u32) -> i32 {
    (action & RET_ACTION_FULL) as i32
}

/// Turns `syscalls` into rules (validated, in profile order, with runc's
/// splitting of rules that test one argument twice), skipping rules whose
/// action is the default one. Also returns every name, for the ENOSYS stub.
fn rules(seccomp: &LinuxSeccomp, default: u32) -> Result<(Vec<Rule>, Vec<String>)> {
    let mut rules = Vec::new();
    let mut names = Vec::new();
    for (i, call) in seccomp.syscalls().iter().flatten().enumerate() {
        let at = format!("linux.seccomp.syscalls[{i}]");
        let action = action_value(call.action(), call.errno_ret(), &format!("{at}.errnoRet"))?;
        let mut conds = Vec::new();
        let mut seen = [false; 6];
        let mut repeated = false;
        for (j, a) in call.args().iter().flatten().enumerate() {
            let index = a.index();
            if index > 5 {
                return Err(field_err(
                    format!("{at}.args[{j}].index"),
                    format!("{index} is out of range (a syscall has arguments 0 to 5)"),
                ));
            }
            repeated |= std::mem::replace(&mut seen[index], true);
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
                LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
                LinuxSeccompOperator::ScmpCmpLe => Op::Le,
                LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
                LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
                LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
                LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq,
            };
            conds.push(Cond {
                arg: index as u8,
                op,
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
            });
        }
        for (j, name) in call.names().iter().enumerate() {
            if name.is_empty() {
                return Err(field_err(format!("{at}.names[{j}]"), "empty syscall name"));
            }
            if action == RET_USER_NOTIF && (name == "write" || name == "sendmsg") {
                // Right after installing the filter, before anyone holds the
                // listener, capsa sends it to its parent (sendmsg) and may
                // report an error (write): notified, either would hang.
                return Err(field_err(
                    format!("{at}.names[{j}]"),
                    format!("SCMP_ACT_NOTIFY cannot be used for the {name} syscall"),
                ));
            }
            names.push(name.clone());
            if action == default {
                continue;
            }
            let rule = |conds: Vec<Cond>| Rule {
                name: name.clone(),
                action,
                conds,
            };
            if repeated {
                rules.extend(conds.iter().map(|c| rule(vec![*c])));
            } else {
                rules.push(rule(conds.clone()));
            }
        }
    }
    Ok((rules, names))
}

/// What one syscall number gets in one ABI.
enum Plan {
    Always(u32),
    /// (action, conditions) pairs, any of which may match.
    When(Vec<(u32, Vec<Cond>)>),
}

/// libseccomp's per-syscall merge: the first unconditional rule wins.
fn plans(abi: Abi, rules: &[Rule]) -> BTreeMap<u32, Plan> {
    let mut plans = BTreeMap::new();
    for r in rules {
        let Some(nr) = abi.syscall(&r.name) else {
            continue;
        };
        let plan = plans.entry(nr).or_insert_with(|| Plan::When(Vec::new()));
        match plan {
            Plan::Always(_) => {}
            Plan::When(list) if !r.conds.is_empty() => list.push((r.action, r.conds.clone())),
            Plan::When(_) => *plan = Plan::Always(r.action),
        }
    }
    plans
}

/// seccompiler's form of a condition for this ABI; None when it can never
/// hold (a masked-equal datum with bits outside the mask).
fn condition(abi: Abi, c: &Cond) -> Option<SeccompCondition> {
    let narrow = |v: u64| if abi.args_32bit() { v & 0xffff_ffff } else { v };
    let len = if abi.args_32bit() {
        SeccompCmpArgLen::Dword
    } else {
        SeccompCmpArgLen::Qword
    };
    let (op, value) = match c.op {
        Op::Ne => (SeccompCmpOp::Ne, c.value),
        Op::Lt => (SeccompCmpOp::Lt, c.value),
        Op::Le => (SeccompCmpOp::Le, c.value),
        Op::Eq => (SeccompCmpOp::Eq, c.value),
        Op::Ge => (SeccompCmpOp::Ge, c.value),
        Op::Gt => (SeccompCmpOp::Gt, c.value),
        Op::MaskedEq => {
            let (mask, datum) = (narrow(c.value), narrow(c.value_two));
            if datum & !mask != 0 {
                return None;
            }
            (SeccompCmpOp::MaskedEq(mask), datum)
        }
    };
    // The index was checked to be 0..=5, all seccompiler refuses.
    SeccompCondition::new(c.arg, len, op, value).ok()
}

// Placeholder actions for seccompiler; their `ret`s are rewritten.
const PH_MATCH: SeccompAction = SeccompAction::Trace(0xfffe);
const PH_MISMATCH: SeccompAction = SeccompAction::Trace(0xffff);

/// A block that returns `action` when one of `rules` matches and otherwise
/// falls through to whatever follows it. None when no rule can match.
fn conditional_block(
    abi: Abi,
    action: u32,
    rules: BTreeMap<u32, Vec<&Vec<Cond>>>,
) -> Result<Option<Vec<sock_filter>>> {
    let mut map = BTreeMap::new();
    for (nr, list) in rules {
        let mut out = Vec::new();
        for conds in list {
            let cs: Option<Vec<_>> = conds.iter().map(|c| condition(abi, c)).collect();
            if let Some(cs) = cs {
                out.push(SeccompRule::new(cs).map_err(compile_err)?);
            }
        }
        if !out.is_empty() {
            map.insert(i64::from(nr), out);
        }
    }
    if map.is_empty() {
        return Ok(None);
    }
    let filter =
        SeccompFilter::new(map, PH_MISMATCH, PH_MATCH, TargetArch::x86_64).map_err(compile_err)?;
    let mut prog: BpfProgram = filter.try_into().map_err(|e| match e {
        seccompiler::BackendError::FilterTooLarge(n) => too_large(n),
        e => compile_err(e),
    })?;
    // seccompiler starts with its own 3-instruction architecture check;
    // the rest only jumps forward within itself and ends in `ret`s.
    prog.drain(..3);
    let (ph_match, ph_mismatch) = (u32::from(PH_MATCH), u32::from(PH_MISMATCH));
    let len = prog.len();
    for (i, ins) in prog.iter_mut().enumerate() {
        if ins.code != BPF_RET_K {
            continue;
        }
        if ins.k == ph_match {
            ins.k = action;
        } else if ins.k == ph_mismatch {
            *ins = jump(BPF_JA, (len - i - 1) as u32, 0, 0);
        } else {
            return Err(Error::msg(format!(
                "seccomp: unexpected return {:#x} in compiled rules",
                ins.k
            )));
        }
    }
    Ok(Some(prog))
}

fn compile_err(e: impl std::fmt::Display) -> Error {
    Error::msg(format!(
        "{CONFIG}: linux.seccomp: compiling the filter: {e}"
    ))
}

fn too_large(n: usize) -> Error {
    field_err(
        "linux.seccomp",
        format!(
            "the filter needs at least {n} BPF instructions, more than the kernel's limit of {BPF_MAXINSNS}"
        ),
    )
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: BPF_JMP | code,
        jt,
        jf,
        k,
    }
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A program under construction: straight-line instructions, blocks with
/// internal jumps, and forward `ja`s to labels.
#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

enum Item {
    Ins(sock_filter),
    Block(Vec<sock_filter>),
    Goto(usize),
    Bind(usize),
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }
    fn bind(&mut self, l: usize) {
        self.items.push(Item::Bind(l));
    }
    fn ins(&mut self, i: sock_filter) {
        self.items.push(Item::Ins(i));
    }
    fn goto(&mut self, l: usize) {
        self.items.push(Item::Goto(l));
    }
    fn ret(&mut self, k: u32) {
        self.ins(stmt(BPF_RET_K, k));
    }
    fn load(&mut self, offset: u32) {
        self.ins(stmt(BPF_LD_W_ABS, offset));
    }

    fn finish(self) -> Vec<sock_filter> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pos = 0;
        for item in &self.items {
            match item {
                Item::Ins(_) | Item::Goto(_) => pos += 1,
                Item::Block(b) => pos += b.len(),
                Item::Bind(l) => at[*l] = pos,
            }
        }
        let mut out = Vec::with_capacity(pos);
        for item in self.items {
            match item {
                Item::Ins(i) => out.push(i),
                Item::Block(b) => out.extend(b),
                Item::Goto(l) => {
                    let from = out.len() + 1;
                    assert!(at[l] != usize::MAX && at[l] >= from, "bad jump");
                    out.push(jump(BPF_JA, (at[l] - from) as u32, 0, 0));
                }
                Item::Bind(_) => {}
            }
        }
        out
    }
}

/// Emits the part of the program for one ABI; the accumulator holds
/// anything. `stub` is the largest syscall number below the ENOSYS stub.
fn emit_abi(
    asm: &mut Asm,
    abi: Abi,
    rules: &[Rule],
    default: u32,
    stub: Option<u32>,
) -> Result<()> {
    asm.load(DATA_NR);
    if let Some(max) = stub {
        asm.ins(jump(BPF_JGT, max, 0, 1));
        asm.ret(RET_ERRNO | libc::ENOSYS as u32);
    }
    let plans = plans(abi, rules);

    // Unconditional syscalls, in runs of `jeq`s sharing one `ret`.
    let mut always: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (nr, plan) in &plans {
        if let Plan::Always(action) = plan {
            always.entry(*action).or_default().push(*nr);
        }
    }
    for (action, nrs) in always {
        for run in nrs.chunks(RUN) {
            for (i, nr) in run.iter().enumerate() {
                asm.ins(jump(BPF_JEQ, *nr, (run.len() - i) as u8, 0));
            }
            asm.ins(jump(BPF_JA, 1, 0, 0));
            asm.ret(action);
        }
    }

    // Conditional rules: one block per action, most severe first (ties in
    // order of appearance).
    let mut actions: Vec<u32> = Vec::new();
    for plan in plans.values() {
        if let Plan::When(list) = plan {
            for (a, _) in list {
                if !actions.contains(a) {
                    actions.push(*a);
                }
            }
        }
    }
    actions.sort_by_key(|a| severity(*a));
    for action in actions {
        let mut by_nr: BTreeMap<u32, Vec<&Vec<Cond>>> = BTreeMap::new();
        for (nr, plan) in &plans {
            if let Plan::When(list) = plan {
                for (a, conds) in list {
                    if *a == action {
                        by_nr.entry(*nr).or_default().push(conds);
                    }
                }
            }
        }
        if let Some(block) = conditional_block(abi, action, by_nr)? {
            asm.items.push(Item::Block(block));
        }
    }
    asm.ret(default);
    Ok(())
}

/// Compiles the profile for a host whose native ABI is `native`; warnings
/// go to `warn`.
fn compile(seccomp: &LinuxSeccomp, native: Abi, warn: &mut dyn FnMut(String)) -> Result<Prepared> {
    let default = action_value(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    if default == RET_USER_NOTIF {
        return Err(field_err(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be used as the default action",
        ));
    }

    // The native ABI is always in (as with libseccomp); others only when
    // listed, and only if this kernel can run them at all.
    let mut abis = vec![native];
    for (i, a) in seccomp.architectures().iter().flatten().enumerate() {
        match Abi::from_spec(*a, native) {
            Some(abi) if native.runnable().contains(&abi) => {
                if !abis.contains(&abi) {
                    abis.push(abi);
                }
            }
            Some(_) => {} // cannot occur on this machine: nothing to filter
            None => warn(format!(
                "{CONFIG}: linux.seccomp.architectures[{i}]: {a} is not supported, ignored"
            )),
        }
    }
    abis.sort();

    let (rules, names) = rules(seccomp, default)?;
    for (i, call) in seccomp.syscalls().iter().flatten().enumerate() {
        for (j, name) in call.names().iter().enumerate() {
            if !known_anywhere(name) {
                warn(format!(
                    "{CONFIG}: linux.seccomp.syscalls[{i}].names[{j}]: unknown syscall {name:?}, ignored"
                ));
            }
        }
    }

    let notify = rules.iter().any(|r| r.action == RET_USER_NOTIF);
    let mut flags = 0;
    for f in seccomp.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            // Only meaningful (and only accepted by the kernel) with a
            // listener; libseccomp drops it otherwise.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => {
                FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    if notify {
        flags |= FLAG_NEW_LISTENER;
        if flags & FLAG_TSYNC != 0 {
            // The kernel refuses TSYNC with NEW_LISTENER unless TSYNC
            // failures are reported as ESRCH.
            flags |= FLAG_TSYNC_ESRCH;
        }
    }

    // runc's ENOSYS stub, for default actions that refuse syscalls.
    let allowish = matches!(default & RET_ACTION_FULL, RET_ALLOW | RET_LOG | RET_TRACE);
    let with_stub = !allowish && default != RET_ERRNO | libc::ENOSYS as u32;
    let stub = |abi: Abi| {
        if !with_stub {
            return None;
        }
        names.iter().filter_map(|n| abi.syscall(n)).max()
    };

    let mut asm = Asm::default();
    asm.load(DATA_ARCH);
    let mut audits: Vec<u32> = abis.iter().map(|a| a.audit()).collect();
    audits.dedup();
    let entries: Vec<usize> = audits.iter().map(|_| asm.label()).collect();
    for (audit, entry) in audits.iter().zip(&entries) {
        asm.ins(jump(BPF_JEQ, *audit, 0, 1));
        asm.goto(*entry);
    }
    asm.ret(RET_KILL_THREAD);
    for (audit, entry) in audits.iter().zip(&entries) {
        asm.bind(*entry);
        if *audit != AUDIT_ARCH_X86_64 {
            let abi = *abis.iter().find(|a| a.audit() == *audit).expect("listed");
            emit_abi(&mut asm, abi, &rules, default, stub(abi))?;
            continue;
        }
        // x86_64 and x32 share the audit arch: x32 numbers have bit 30.
        // Syscall -1 (a tracer skipping the syscall) is not x32 (libseccomp).
        let has64 = abis.contains(&Abi::X86_64);
        let has32 = abis.contains(&Abi::X32);
        let (body64, body32) = (asm.label(), asm.label());
        asm.load(DATA_NR);
        asm.ins(jump(BPF_JEQ, u32::MAX, 0, 1));
        asm.goto(body64);
        asm.ins(jump(BPF_JSET, X32_SYSCALL_BIT, 0, 1));
        if has32 {
            asm.goto(body32);
        } else {
            asm.ret(RET_KILL_THREAD);
        }
        if has64 {
            if let Some(max) = stub(Abi::X86_64) {
                asm.ins(jump(BPF_JGT, max, 0, 1));
                asm.ret(RET_ERRNO | libc::ENOSYS as u32);
            }
            asm.bind(body64);
            emit_abi(&mut asm, Abi::X86_64, &rules, default, None)?;
        } else {
            asm.ret(RET_KILL_THREAD);
            asm.bind(body64);
            asm.ret(default);
        }
        if has32 {
            asm.bind(body32);
            emit_abi(&mut asm, Abi::X32, &rules, default, stub(Abi::X32))?;
        }
    }
    let program = asm.finish();
    if program.len() > BPF_MAXINSNS {
        return Err(too_large(program.len()));
    }
    Ok(Prepared {
        program,
        flags,
        spec_allow_if_known: seccomp.flags().is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("valid profile")
    }

    /// Compiles for x86_64 (whatever the host), collecting warnings.
    fn build(v: serde_json::Value) -> (Prepared, Vec<String>) {
        build_for(Abi::X86_64, v)
    }

    fn build_for(native: Abi, v: serde_json::Value) -> (Prepared, Vec<String>) {
        let mut warnings = Vec::new();
        let p = compile(&profile(v), native, &mut |w| warnings.push(w)).expect("compiles");
        check_program(&p.program);
        (p, warnings)
    }

    fn error(v: serde_json::Value) -> String {
        compile(&profile(v), Abi::X86_64, &mut |_| {})
            .expect_err("should fail")
            .to_string()
    }

    /// What the kernel's checker insists on: jumps in range, ends in ret.
    fn check_program(p: &[sock_filter]) {
        assert!(!p.is_empty() && p.len() <= BPF_MAXINSNS);
        for (i, ins) in p.iter().enumerate() {
            if ins.code & 0x07 == BPF_JMP {
                let far = if ins.code == BPF_JMP | BPF_JA {
                    ins.k as usize
                } else {
                    usize::from(ins.jt.max(ins.jf))
                };
                assert!(i + 1 + far < p.len(), "jump out of program at {i}");
            }
        }
        assert_eq!(p.last().unwrap().code, BPF_RET_K);
    }

    /// A classic-BPF interpreter for what the compiler emits.
    fn run(p: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = &p[pc];
            pc += 1;
            match ins.code {
                0x20 => {
                    let o = ins.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                0x54 => acc &= ins.k,
                0x05 => pc += ins.k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let t = match ins.code {
                        0x15 => acc == ins.k,
                        0x25 => acc > ins.k,
                        0x35 => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += usize::from(if t { ins.jt } else { ins.jf });
                }
                0x06 => return ins.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn nr(abi: Abi, name: &str) -> u32 {
        abi.syscall(name).unwrap()
    }

    /// Runs the filter for an x86_64 syscall by name.
    fn x64(p: &Prepared, name: &str, args: [u64; 6]) -> u32 {
        run(&p.program, AUDIT_ARCH_X86_64, nr(Abi::X86_64, name), args)
    }

    const A0: [u64; 6] = [0; 6];
    const EPERM: u32 = RET_ERRNO | 1;

    #[test]
    fn tables_resolve_names_per_architecture() {
        assert_eq!(Abi::X86_64.syscall("read"), Some(0));
        assert_eq!(Abi::X86_64.syscall("mkdir"), Some(83));
        assert_eq!(Abi::Aarch64.syscall("mkdirat"), Some(34));
        assert_eq!(Abi::Aarch64.syscall("mkdir"), None);
        assert_eq!(Abi::X86.syscall("socketcall"), Some(102));
        assert_eq!(Abi::X32.syscall("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(Abi::X32.syscall("ioctl"), Some(X32_SYSCALL_BIT | 514));
        assert_eq!(Abi::Arm.syscall("openat"), Some(322));
        assert!(Abi::X86_64.syscall("clone3").is_some());
    }

    #[test]
    fn every_action_has_its_return_value() {
        let cases = [
            (json!({"action": "SCMP_ACT_ALLOW"}), RET_ALLOW),
            (json!({"action": "SCMP_ACT_ERRNO"}), RET_ERRNO | 1),
            (
                json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 38}),
                RET_ERRNO | 38,
            ),
            (json!({"action": "SCMP_ACT_KILL"}), RET_KILL_THREAD),
            (json!({"action": "SCMP_ACT_KILL_THREAD"}), RET_KILL_THREAD),
            (json!({"action": "SCMP_ACT_KILL_PROCESS"}), RET_KILL_PROCESS),
            (json!({"action": "SCMP_ACT_TRAP"}), RET_TRAP),
            (json!({"action": "SCMP_ACT_TRACE"}), RET_TRACE | 1),
            (
                json!({"action": "SCMP_ACT_TRACE", "errnoRet": 7}),
                RET_TRACE | 7,
            ),
            (json!({"action": "SCMP_ACT_LOG"}), RET_LOG),
            (json!({"action": "SCMP_ACT_NOTIFY"}), RET_USER_NOTIF),
            // errnoRet means nothing to the other actions (runc).
            (json!({"action": "SCMP_ACT_TRAP", "errnoRet": 5}), RET_TRAP),
        ];
        for (mut call, want) in cases {
            call["names"] = json!(["mkdir"]);
            let default = if want == RET_ALLOW {
                "SCMP_ACT_KILL_PROCESS"
            } else {
                "SCMP_ACT_ALLOW"
            };
            let (p, _) = build(json!({"defaultAction": default, "syscalls": [call]}));
            assert_eq!(x64(&p, "mkdir", A0), want, "{call}");
            assert_ne!(x64(&p, "rmdir", A0), want, "{call}");
        }
    }

    #[test]
    fn default_action_and_errno() {
        let (p, _) = build(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
        assert_eq!(x64(&p, "getpid", A0), EPERM);
        let (p, _) = build(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13}));
        assert_eq!(x64(&p, "getpid", A0), RET_ERRNO | 13);
        let (p, _) = build(json!({"defaultAction": "SCMP_ACT_LOG"}));
        assert_eq!(x64(&p, "getpid", A0), RET_LOG);
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getpid", "getppid"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(x64(&p, "getpid", A0), RET_ALLOW);
        assert_eq!(x64(&p, "getppid", A0), RET_ALLOW);
        assert_eq!(x64(&p, "mkdir", A0), EPERM);
    }

    #[test]
    fn conditional_rules_fall_back_to_the_default() {
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 1, "op": "SCMP_CMP_GT"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        assert_eq!(x64(&p, "personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(&p, "personality", [0, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(&p, "personality", [1, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(&p, "personality", [8 | 1 << 32, 0, 0, 0, 0, 0]), EPERM);
        // An unconditional rule overrides conditional ones, even earlier.
        assert_eq!(x64(&p, "kill", [5, 9, 0, 0, 0, 0]), RET_ALLOW);

        // Conditions of one rule are ANDed.
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 1, "op": "SCMP_CMP_GT"}]}]
        }));
        assert_eq!(x64(&p, "kill", [5, 9, 0, 0, 0, 0]), RET_KILL_PROCESS);
        assert_eq!(x64(&p, "kill", [1, 9, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(&p, "kill", [5, 15, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn the_first_unconditional_rule_wins() {
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
                 "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
                {"names": ["mkdir"], "action": "SCMP_ACT_KILL"},
                // Same action as the default: dropped, as runc does.
                {"names": ["rmdir"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["rmdir"], "action": "SCMP_ACT_TRAP"}
            ]
        }));
        assert_eq!(x64(&p, "mkdir", A0), RET_ERRNO | 2);
        assert_eq!(x64(&p, "rmdir", A0), RET_TRAP);
    }

    #[test]
    fn overlapping_conditional_rules_take_the_most_severe_action() {
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_LT"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_LT"}]},
                {"names": ["kill"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        assert_eq!(x64(&p, "kill", [1, 0, 0, 0, 0, 0]), RET_TRAP);
        assert_eq!(x64(&p, "kill", [1, 3, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(&p, "kill", [1, 7, 0, 0, 0, 0]), RET_LOG);
        assert_eq!(x64(&p, "kill", [1, 12, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn a_repeated_argument_splits_the_rule_like_runc() {
        // runc turns every condition into a rule of its own: ORed.
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 100, "op": "SCMP_CMP_EQ"}]}]
        }));
        assert_eq!(x64(&p, "kill", [1, 2, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(&p, "kill", [1, 15, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(&p, "kill", [100, 9, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(&p, "kill", [1, 9, 0, 0, 0, 0]), RET_ALLOW);
    }

    /// A small deterministic generator of "interesting" 64-bit values.
    fn values() -> Vec<u64> {
        let mut v = vec![
            0,
            1,
            2,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 1,
            u64::MAX,
            u64::MAX - 1,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x);
            v.push(x & 0xffff_ffff);
            v.push(x & 0xffff_0000_0000_00ff);
        }
        v
    }

    fn holds(op: &str, arg: u64, value: u64, two: u64) -> bool {
        match op {
            "SCMP_CMP_NE" => arg != value,
            "SCMP_CMP_LT" => arg < value,
            "SCMP_CMP_LE" => arg <= value,
            "SCMP_CMP_EQ" => arg == value,
            "SCMP_CMP_GE" => arg >= value,
            "SCMP_CMP_GT" => arg > value,
            "SCMP_CMP_MASKED_EQ" => arg & value == two,
            _ => unreachable!(),
        }
    }

    #[test]
    fn operators_compare_64_bit_arguments() {
        let ops = [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ];
        let vals = values();
        for op in ops {
            for (k, &value) in vals.iter().enumerate().step_by(7) {
                // For MASKED_EQ: mask `value`, datum both inside and
                // outside the mask.
                for two in [value & 0x00ff_00ff_00ff_00ff, vals[(k + 3) % vals.len()]] {
                    let (p, _) = build(json!({
                        "defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO",
                            "args": [{"index": 2, "value": value, "valueTwo": two, "op": op}]}]
                    }));
                    for &arg in &vals {
                        let want = if holds(op, arg, value, two) {
                            EPERM
                        } else {
                            RET_ALLOW
                        };
                        let got = x64(&p, "ioctl", [0, 0, arg, 0, 0, 0]);
                        assert_eq!(got, want, "{op} arg={arg:#x} value={value:#x} two={two:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn masked_eq_takes_the_mask_from_value() {
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 0o077, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]
        }));
        assert_eq!(x64(&p, "chmod", [0, 0o700, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(&p, "chmod", [0, 0o755, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn thirty_two_bit_abis_compare_the_low_half() {
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 0x1_0000_0009u64, "op": "SCMP_CMP_EQ"}]}]
        }));
        let x86 = |args| run(&p.program, AUDIT_ARCH_I386, nr(Abi::X86, "kill"), args);
        assert_eq!(x86([0, 9, 0, 0, 0, 0]), EPERM);
        assert_eq!(x86([0, 8, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(&p, "kill", [0, 9, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x64(&p, "kill", [0, 0x1_0000_0009, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn architectures_and_bad_arch() {
        let v = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["socketcall", "read", "ioctl"], "action": "SCMP_ACT_ALLOW"}]
        });
        // Native only: 32-bit x86 and x32 syscalls kill the thread, but
        // syscall -1 (a tracer skipping one) gets the default action.
        let (p, _) = build(v.clone());
        assert_eq!(x64(&p, "read", A0), RET_ALLOW);
        assert_eq!(run(&p.program, AUDIT_ARCH_I386, 3, A0), RET_KILL_THREAD);
        assert_eq!(
            run(&p.program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, A0),
            RET_KILL_THREAD
        );
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, u32::MAX, A0), EPERM);
        assert_eq!(run(&p.program, AUDIT_ARCH_AARCH64, 63, A0), RET_KILL_THREAD);

        let mut all = v.clone();
        all["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
        let (p, w) = build(all);
        assert!(w.is_empty(), "{w:?}");
        let x86 = |name| run(&p.program, AUDIT_ARCH_I386, nr(Abi::X86, name), A0);
        let x32 = |name| run(&p.program, AUDIT_ARCH_X86_64, nr(Abi::X32, name), A0);
        assert_eq!(x86("socketcall"), RET_ALLOW);
        assert_eq!(x86("read"), RET_ALLOW);
        assert_eq!(x86("getpid"), EPERM);
        assert_eq!(x32("read"), RET_ALLOW);
        assert_eq!(x32("ioctl"), RET_ALLOW);
        assert_eq!(x32("getpid"), EPERM);
        assert_eq!(x64(&p, "ioctl", A0), RET_ALLOW);
        // x86_64's ioctl number with the x32 bit is not x32's ioctl.
        assert_eq!(
            run(&p.program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 16, A0),
            EPERM
        );

        // On arm64, arm is the other runnable ABI; x86 ones are ignored.
        let mut arm = v.clone();
        arm["architectures"] = json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X86"]);
        let (p, w) = build_for(Abi::Aarch64, arm);
        assert!(w.is_empty(), "{w:?}");
        let read64 = nr(Abi::Aarch64, "read");
        assert_eq!(run(&p.program, AUDIT_ARCH_AARCH64, read64, A0), RET_ALLOW);
        assert_eq!(
            run(
                &p.program,
                AUDIT_ARCH_AARCH64,
                nr(Abi::Aarch64, "openat"),
                A0
            ),
            EPERM
        );
        assert_eq!(
            run(&p.program, AUDIT_ARCH_ARM, nr(Abi::Arm, "read"), A0),
            RET_ALLOW
        );
        assert_eq!(
            run(&p.program, AUDIT_ARCH_ARM, nr(Abi::Arm, "getpid"), A0),
            EPERM
        );
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, 0, A0), RET_KILL_THREAD);
    }

    #[test]
    fn unsupported_architectures_and_unknown_names_warn() {
        let (p, w) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "no_such_syscall", "arm_fadvise64_64"], "action": "SCMP_ACT_ERRNO"}
            ]
        }));
        assert_eq!(
            w,
            [
                "config.json: linux.seccomp.architectures[0]: SCMP_ARCH_MIPS is not supported, ignored",
                "config.json: linux.seccomp.syscalls[0].names[1]: unknown syscall \"no_such_syscall\", ignored",
            ]
        );
        assert_eq!(x64(&p, "mkdir", A0), EPERM);
    }

    #[test]
    fn enosys_stub_for_syscalls_newer_than_the_profile() {
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "openat"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let openat = nr(Abi::X86_64, "openat");
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, openat, A0), RET_ALLOW);
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, openat - 1, A0), EPERM);
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, openat + 1, A0), enosys);
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, 435, A0), enosys);
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, u32::MAX, A0), EPERM);
        let x86 = nr(Abi::X86, "openat");
        assert_eq!(run(&p.program, AUDIT_ARCH_I386, x86 + 1, A0), enosys);
        assert_eq!(run(&p.program, AUDIT_ARCH_I386, x86 - 1, A0), EPERM);
        let x32 = nr(Abi::X32, "openat");
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, x32 + 1, A0), enosys);
        assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, x32 - 1, A0), EPERM);

        // Not when the default action lets syscalls through.
        for default in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
            let (p, _) = build(json!({"defaultAction": default,
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL"}]}));
            assert_ne!(x64(&p, "openat", A0), enosys);
        }
    }

    #[test]
    fn notify_is_patched_in_and_asks_for_a_listener() {
        let (p, _) = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["kill"], "action": "SCMP_ACT_NOTIFY",
                 "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        assert!(p.uses_notify());
        assert_eq!(
            p.flags,
            FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV | FLAG_TSYNC | FLAG_TSYNC_ESRCH
        );
        assert_eq!(x64(&p, "mkdir", A0), RET_USER_NOTIF);
        assert_eq!(x64(&p, "kill", A0), RET_USER_NOTIF);
        assert_eq!(x64(&p, "kill", [0, 9, 0, 0, 0, 0]), RET_ALLOW);
        assert!(!p.spec_allow_if_known);
    }

    #[test]
    fn flags() {
        let (p, _) = build(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                      "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}));
        assert_eq!(p.flags, FLAG_LOG | FLAG_SPEC_ALLOW);
        assert!(!p.uses_notify());
        assert!(!p.spec_allow_if_known);
        let (p, _) = build(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
        assert_eq!(p.flags, 0);
        assert!(p.spec_allow_if_known);
        let (p, _) = build(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": []}));
        assert!(!p.spec_allow_if_known);
    }

    #[test]
    fn errors_name_the_entry() {
        let e = error(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}));
        assert_eq!(
            e,
            "config.json: linux.seccomp.syscalls[1].args[1].index: 6 is out of range (a syscall has arguments 0 to 5)"
        );
        let e = error(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65536}]}));
        assert_eq!(
            e,
            "config.json: linux.seccomp.syscalls[0].errnoRet: 65536 is out of range (0 to 65535)"
        );
        let e = error(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
        assert_eq!(
            e,
            "config.json: linux.seccomp.defaultErrnoRet: 70000 is out of range (0 to 65535)"
        );
        let e = error(json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        assert_eq!(
            e,
            "config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as the default action"
        );
        let e = error(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]}));
        assert_eq!(
            e,
            "config.json: linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
        );
        let e = error(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}));
        assert_eq!(
            e,
            "config.json: linux.seccomp.syscalls[1].names[0]: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall"
        );
        let e = error(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": [""], "action": "SCMP_ACT_KILL"}]}));
        assert_eq!(
            e,
            "config.json: linux.seccomp.syscalls[0].names[0]: empty syscall name"
        );
    }

    #[test]
    fn parse_errors_name_the_field() {
        // Unknown operators, actions, flags and architectures are refused
        // while config.json is parsed, with the JSON path of the field.
        let mut spec = crate::spec::default_spec(false);
        spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0, "op": "FOO"}]}]});
        let e = crate::spec::parse(&spec).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "config.json: linux.seccomp.syscalls[1].args[0].op: unknown variant `FOO`"
            ),
            "{e}"
        );
        spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]});
        let e = crate::spec::parse(&spec).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "config.json: linux.seccomp.flags[0]: unknown variant `SECCOMP_FILTER_FLAG_BOGUS`"
            ),
            "{e}"
        );
    }

    #[test]
    fn large_profiles_fit() {
        // Everything x86_64 has, conditional and not, for three ABIs.
        let names: Vec<String> = syscalls::x86_64::Sysno::iter()
            .map(|s| s.name().to_string())
            .collect();
        let (p, w) = build(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": names, "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]}
            ]
        }));
        assert!(w.is_empty(), "{w:?}");
        assert!(p.instructions() < 2000, "{}", p.instructions());
        assert_eq!(x64(&p, "clone", A0), RET_ALLOW);
        assert_eq!(x64(&p, "mkdir", A0), RET_ALLOW);
        assert_eq!(
            run(&p.program, AUDIT_ARCH_I386, nr(Abi::X86, "mkdir"), A0),
            RET_ALLOW
        );

        // Thousands of conditional rules do not fit: a clear error.
        let calls: Vec<_> = (0..3000)
            .map(|i| {
                json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": i, "op": "SCMP_CMP_EQ"}]})
            })
            .collect();
        let e = error(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": calls}));
        assert!(
            e.starts_with("config.json: linux.seccomp: the filter needs "),
            "{e}"
        );
    }
}
