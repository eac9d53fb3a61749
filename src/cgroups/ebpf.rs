//! The cgroup v2 device filter: a small BPF_PROG_TYPE_CGROUP_DEVICE program
//! assembled here from the effective device rules, loaded and attached to
//! the container's cgroup with the bpf(2) system call. The attachment
//! outlives capsa (the kernel keeps the program while it is attached) and
//! goes away with the cgroup.

use super::devices::{ALL, Effective, Kind};
use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One BPF instruction, as `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst register in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes used (class | op | source).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND64_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const JNE32_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JEQ32_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = access << 16 | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// The program for `rules`: r2 = device type, r3 = requested access,
/// r4 = major, r5 = minor; then one block per exception; then the default.
/// With a deny default an exception allows when it covers all of the
/// requested access; with an allow default it denies when it covers any.
pub fn program(rules: &Effective) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for ex in &rules.exceptions {
        // Jumps carry a placeholder offset (1) fixed below to "skip the
        // rest of this block".
        let mut block = Vec::new();
        match ex.kind {
            Kind::Char => block.push(insn(JNE32_K, 2, 0, 1, DEV_CHAR)),
            Kind::Block => block.push(insn(JNE32_K, 2, 0, 1, DEV_BLOCK)),
            Kind::All => {}
        }
        if let Some(m) = ex.major {
            block.push(insn(JNE32_K, 4, 0, 1, m as i32));
        }
        if let Some(m) = ex.minor {
            block.push(insn(JNE32_K, 5, 0, 1, m as i32));
        }
        block.push(insn(MOV64_X, 6, 3, 0, 0));
        if rules.default_allow {
            block.push(insn(AND64_K, 6, 0, 0, i32::from(ex.access)));
            block.push(insn(JEQ32_K, 6, 0, 1, 0));
            block.push(insn(MOV64_K, 0, 0, 0, 0));
        } else {
            block.push(insn(AND64_K, 6, 0, 0, i32::from(!ex.access & ALL)));
            block.push(insn(JNE32_K, 6, 0, 1, 0));
            block.push(insn(MOV64_K, 0, 0, 0, 1));
        }
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, JNE32_K | JEQ32_K) {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV64_K, 0, 0, 0, i32::from(rules.default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The fields of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::result::Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a repr(C) prefix of union bpf_attr, initialised,
    // and lives for the call; the size passed is its size, and the kernel
    // treats the union's remaining fields as zero.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    Errno::result(r)
}

/// Loads `prog` as a cgroup device program; a verifier rejection carries
/// the verifier's log.
pub fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"capsa_device");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let fd = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => fd,
        Err(Errno::EACCES | Errno::EINVAL) => {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let r = bpf(BPF_PROG_LOAD, &mut attr);
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            match r {
                Ok(fd) => fd,
                Err(e) => {
                    return Err(Error::msg(format!(
                        "load the eBPF device filter: {}: {text}",
                        crate::error::errno_text(e)
                    )));
                }
            }
        }
        Err(e) => return Err(e).ctx(|| "load the eBPF device filter"),
    };
    // SAFETY: the kernel just returned this new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches a loaded device program to the cgroup directory `dir`. Other
/// programs already attached (the parents') keep applying too.
pub fn attach(prog: &OwnedFd, dir: &Path) -> Result<()> {
    let cg = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", dir.display()))?;
    let mut attr = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map(drop)
        .ctx(|| format!("attach the eBPF device filter to {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::super::devices::{MKNOD, READ, Rule, WRITE};
    use super::*;

    /// Runs the program the way the kernel would, on one request.
    fn interpret(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as i64 as u64,
                AND64_K => r[dst] &= i.imm as i64 as u64,
                JNE32_K if r[dst] as u32 != i.imm as u32 => pc += i.off as usize,
                JEQ32_K if r[dst] as u32 == i.imm as u32 => pc += i.off as usize,
                JNE32_K | JEQ32_K => {}
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn program_matches_the_rules() {
        let rule = |allow, kind, major, minor, access| Rule {
            allow,
            kind,
            major,
            minor,
            access,
        };
        let sets = [
            vec![
                rule(false, Kind::All, None, None, ALL),
                rule(true, Kind::Char, Some(1), Some(3), READ | WRITE),
                rule(true, Kind::Char, Some(136), None, ALL),
                rule(true, Kind::Block, None, None, MKNOD),
                rule(true, Kind::Char, Some(u32::MAX - 1), Some(7), READ),
            ],
            vec![
                rule(false, Kind::Char, Some(4), None, WRITE),
                rule(false, Kind::Block, Some(8), Some(0), READ | MKNOD),
            ],
        ];
        for rules in sets {
            let e = super::super::devices::effective(&rules);
            let p = program(&e);
            for (kind, t) in [(Kind::Char, DEV_CHAR), (Kind::Block, DEV_BLOCK)] {
                for major in [1, 4, 8, 136, u32::MAX - 1] {
                    for minor in [0, 3, 7] {
                        for access in 1..=7u8 {
                            let want = e.allows(kind, major, minor, access);
                            let got = interpret(&p, t as u32, access.into(), major, minor);
                            assert_eq!(
                                got == 1,
                                want,
                                "{kind:?} {major}:{minor} access {access} in {e:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
