//! Self-protection against CVE-2019-5736 at no per-start cost: the last
//! `execve` of every process capsa starts inside a container goes through
//! a tiny sealed program instead of being made by capsa's own image.
//!
//! The danger is a container process running capsa's binary, or holding
//! it: until it execs, a container's init or `exec` process is a clone of
//! capsa, and a `#!/proc/self/exe` entrypoint (or an ELF whose interpreter
//! is `/proc/self/exe`) makes the kernel resolve that interpreter while the
//! process still is capsa, and so run capsa's host binary inside the
//! container; anything there can then keep `/proc/PID/exe` open and write
//! through it once the process is gone.
//!
//! So capsa never makes that exec itself. It execs the *stub*: a static
//! program of a few hundred bytes in a sealed memfd
//! (`F_SEAL_WRITE|GROW|SHRINK|SEAL`), whose job is `execve(argv[1], argv +
//! 2, envp)`. While the kernel resolves the container program's
//! interpreter, `/proc/self/exe` is that memfd: a `#!/proc/self/exe` script
//! gets the stub (which just execs its arguments), and nothing can write
//! it. The stub holds no memory of capsa's and no privilege of its own; the
//! one fd it is handed (argv[0]), it makes close-on-exec before the exec and
//! writes the exec's error to should it fail, so `start`, `run` and `exec`
//! report that error as a direct exec would have let them.
//!
//! Before that exec the process is capsa, and it is non-dumpable from birth
//! (the parent clears the flag before it clones), so no container process
//! without CAP_SYS_PTRACE in the host's user namespace can open its
//! `/proc/PID/exe`, memory or fds. (A container with that capability can
//! ptrace any runtime's setup processes, capsa's or runc's, which hold
//! every capability at that point: such containers are privileged.)
//!
//! The stub is assembled by the compiler from the source below (x86_64;
//! other architectures, and hosts where memfds may not be executable
//! (`vm.memfd_noexec=2`), use [`crate::sealed_exe`]'s sealed re-exec of
//! capsa instead). Creating it costs one small memfd per `create`, `run`
//! or `exec`; running it, one extra exec of a one-page program.

use crate::error::{Context, Error, Result};
use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

// The stub's code: position-independent, no data of its own.
// At entry the kernel's stack holds argc, argv[0..argc], NULL, envp...
// argv[0] is the decimal number of the report fd (anything else: none),
// argv[1] the program, argv[2..] its argv. The stub makes the report fd
// close-on-exec (or closes it, if it cannot), then execs the program; the
// program's exec thus closes the report fd, which its reader takes for
// success. Should the exec fail, the stub writes [0, errno (16 bits, little
// endian)] to the report fd and exits 127 for ENOENT, 126 otherwise, as
// shells do. Fewer than 3 arguments: exit 127.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".pushsection .rodata.capsa_exec_stub,\"a\"",
    ".globl capsa_exec_stub_code",
    "capsa_exec_stub_code:",
    "mov rax, qword ptr [rsp]",
    "cmp rax, 3",
    "jb capsa_exec_stub_not_found",
    // r12d = the report fd parsed from argv[0], or -1.
    "mov rsi, qword ptr [rsp + 8]",
    "xor r12d, r12d",
    "movzx ecx, byte ptr [rsi]",
    "test ecx, ecx",
    "jz capsa_exec_stub_no_fd",
    "capsa_exec_stub_digit:",
    "sub ecx, 48",
    "cmp ecx, 9",
    "ja capsa_exec_stub_no_fd",
    "cmp r12d, 100000000",
    "jae capsa_exec_stub_no_fd",
    "imul r12d, r12d, 10",
    "add r12d, ecx",
    "inc rsi",
    "movzx ecx, byte ptr [rsi]",
    "test ecx, ecx",
    "jnz capsa_exec_stub_digit",
    // fcntl(fd, F_SETFD, FD_CLOEXEC); failing that, close(fd) and no report.
    "mov edi, r12d",
    "mov esi, 2",
    "mov edx, 1",
    "mov eax, 72",
    "syscall",
    "test rax, rax",
    "jz capsa_exec_stub_exec",
    "mov edi, r12d",
    "mov eax, 3",
    "syscall",
    "capsa_exec_stub_no_fd:",
    "mov r12d, -1",
    "capsa_exec_stub_exec:",
    "mov rax, qword ptr [rsp]",
    "mov rdi, qword ptr [rsp + 16]",
    "lea rsi, [rsp + 24]",
    "lea rdx, [rsp + rax*8 + 16]",
    "mov eax, 59",
    "syscall",
    // Failed: rbx = errno; report it.
    "mov rbx, rax",
    "neg rbx",
    "test r12d, r12d",
    "js capsa_exec_stub_status",
    "sub rsp, 16",
    "mov byte ptr [rsp], 0",
    "mov word ptr [rsp + 1], bx",
    "mov edi, r12d",
    "mov rsi, rsp",
    "mov edx, 3",
    "mov eax, 1",
    "syscall",
    "capsa_exec_stub_status:",
    "cmp rbx, 2",
    "je capsa_exec_stub_not_found",
    "mov edi, 126",
    "jmp capsa_exec_stub_exit",
    "capsa_exec_stub_not_found:",
    "mov edi, 127",
    "capsa_exec_stub_exit:",
    "mov eax, 231",
    "syscall",
    "ud2",
    ".globl capsa_exec_stub_code_end",
    "capsa_exec_stub_code_end:",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
unsafe extern "C" {
    static capsa_exec_stub_code: u8;
    static capsa_exec_stub_code_end: u8;
}

/// The stub's machine code.
#[cfg(target_arch = "x86_64")]
fn code() -> Option<&'static [u8]> {
    // SAFETY: the two symbols delimit the bytes global_asm! above placed in
    // a read-only section of this binary; they are never written.
    unsafe {
        let start = &raw const capsa_exec_stub_code;
        let end = &raw const capsa_exec_stub_code_end;
        Some(std::slice::from_raw_parts(
            start,
            end as usize - start as usize,
        ))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn code() -> Option<&'static [u8]> {
    None
}

#[cfg(target_arch = "x86_64")]
const EM_MACHINE: u16 = 62; // EM_X86_64
#[cfg(not(target_arch = "x86_64"))]
const EM_MACHINE: u16 = 0;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const HEADERS: usize = EHDR_SIZE + 2 * PHDR_SIZE;

/// A minimal ELF64 executable around `code`: a position-independent
/// (ET_DYN, no interpreter) image with one read+execute PT_LOAD of the
/// whole file and a non-executable stack (PT_GNU_STACK).
fn elf(code: &[u8]) -> Vec<u8> {
    let total = (HEADERS + code.len()) as u64;
    let mut f = Vec::with_capacity(HEADERS + code.len());
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SYSV ABI.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&3u16.to_le_bytes()); // e_type: ET_DYN
    f.extend_from_slice(&EM_MACHINE.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&(HEADERS as u64).to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes()); // e_ehsize
    f.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes()); // e_phentsize
    f.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    let phdr = |f: &mut Vec<u8>, typ: u32, flags: u32, size: u64, align: u64| {
        f.extend_from_slice(&typ.to_le_bytes());
        f.extend_from_slice(&flags.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // p_offset
        f.extend_from_slice(&0u64.to_le_bytes()); // p_vaddr
        f.extend_from_slice(&0u64.to_le_bytes()); // p_paddr
        f.extend_from_slice(&size.to_le_bytes()); // p_filesz
        f.extend_from_slice(&size.to_le_bytes()); // p_memsz
        f.extend_from_slice(&align.to_le_bytes());
    };
    phdr(&mut f, 1, 5, total, 0x1000); // PT_LOAD, PF_R | PF_X
    phdr(&mut f, 0x6474_e551, 6, 0, 16); // PT_GNU_STACK, PF_R | PF_W
    f.extend_from_slice(code);
    f
}

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// The stub, in a sealed memfd (close-on-exec: it reaches no program).
pub struct Stub {
    fd: OwnedFd,
    /// `/proc/self/fd/N`: what is exec'd when a procfs is at /proc.
    proc_path: CString,
}

static STUB: OnceLock<Stub> = OnceLock::new();

/// Makes the stub for this capsa process (and the processes it clones).
/// Fails where it cannot be used: an architecture without one, or a host
/// that refuses executable memfds; capsa then protects itself with
/// [`crate::sealed_exe`].
pub fn install() -> Result<()> {
    if STUB.get().is_some() {
        return Ok(());
    }
    let stub = Stub::create()?;
    let _ = STUB.set(stub);
    Ok(())
}

/// The stub, once [`install`]ed.
pub fn get() -> Option<&'static Stub> {
    STUB.get()
}

fn memfd(flags: libc::c_uint) -> nix::Result<OwnedFd> {
    // SAFETY: memfd_create reads the NUL-terminated name and returns a new
    // fd that nothing else owns.
    let r = unsafe { libc::syscall(libc::SYS_memfd_create, c"capsa-exec".as_ptr(), flags) };
    let fd = Errno::result(r)?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl Stub {
    fn create() -> Result<Stub> {
        let code = code().ok_or_else(|| Error::msg("no exec stub for this architecture"))?;
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // MFD_EXEC: executable even where vm.memfd_noexec=1 makes memfds
        // non-executable by default (Linux 6.3); older kernels refuse the
        // flag, and their memfds are executable anyway. With
        // vm.memfd_noexec=2 the kernel refuses it: no stub then.
        let fd = match memfd(flags | libc::MFD_EXEC) {
            Err(Errno::EINVAL) => memfd(flags),
            r => r,
        }
        .ctx(|| "exec stub: memfd_create")?;
        let image = elf(code);
        let n = nix::unistd::write(&fd, &image).ctx(|| "exec stub: write")?;
        if n != image.len() {
            return Err(Error::msg("exec stub: short write"));
        }
        // SAFETY: F_ADD_SEALS takes an int of seal flags.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) };
        Errno::result(r).ctx(|| "exec stub: seal")?;
        let proc_path =
            CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number");
        Ok(Stub { fd, proc_path })
    }

    /// A ready-to-run exec of `program` with `args` (its argv, argv[0]
    /// included) and `env`, through the stub. `report`: an fd the stub
    /// keeps open across its own exec and writes the program's exec error to
    /// (see [`exec_error`]); it is closed by the program's exec. Everything
    /// is allocated here, so [`Launch::exec`] only makes system calls.
    pub fn launch(
        &self,
        program: &CStr,
        args: &[CString],
        env: &[CString],
        report: Option<RawFd>,
    ) -> Launch {
        let mut argv = Vec::with_capacity(args.len() + 2);
        let fd = report.map_or_else(|| "-".to_string(), |fd| fd.to_string());
        argv.push(CString::new(fd).expect("no NUL in a number"));
        argv.push(program.to_owned());
        if args.is_empty() {
            // execve with an empty argv would give the program none; as
            // with a plain exec, its argv[0] is its path.
            argv.push(program.to_owned());
        } else {
            argv.extend(args.iter().cloned());
        }
        let envp = env.to_vec();
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Launch {
            stub_fd: self.fd.as_raw_fd(),
            proc_path: self.proc_path.clone(),
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            _argv: argv,
            _envp: envp,
        }
    }
}

/// The error for a program the stub could not exec, worded as capsa words
/// a failed exec of its own (`exec "PROGRAM": CAUSE`).
pub fn exec_failed(program: &str, e: Errno) -> crate::error::Error {
    crate::error::Error::msg(format!("exec {program:?}: {}", crate::error::errno_text(e)))
}

/// The program's exec error if `msg` (what was read from a report fd) is
/// the stub's report of one.
pub fn exec_error(msg: &[u8]) -> Option<Errno> {
    match msg {
        [0, lo, hi, ..] => Some(Errno::from_raw(i32::from(u16::from_le_bytes([*lo, *hi])))),
        _ => None,
    }
}

/// A copy of `fd` for the stub to report through: not close-on-exec (so it
/// survives the exec of the stub), numbered from `lowest` up (above the fds
/// the program is given).
pub fn report_fd(fd: std::os::fd::BorrowedFd<'_>, lowest: RawFd) -> nix::Result<OwnedFd> {
    // SAFETY: F_DUPFD makes a new fd, not close-on-exec, that nothing else
    // owns.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, lowest) };
    let fd = Errno::result(r)?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One exec through the stub, prepared by [`Stub::launch`].
pub struct Launch {
    stub_fd: RawFd,
    proc_path: CString,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    // The strings the pointers point into (moving a CString does not move
    // its heap buffer).
    _argv: Vec<CString>,
    _envp: Vec<CString>,
}

// SAFETY: the pointers only point into the CStrings the Launch owns, which
// are never changed; sharing or sending it shares read-only data.
unsafe impl Send for Launch {}
// SAFETY: as above.
unsafe impl Sync for Launch {}

impl Launch {
    /// Replaces this process with the program (through the stub). Returns
    /// only on failure, with the error of the exec of the stub (the
    /// program's own exec failing makes the stub exit 126 or 127). Only
    /// system calls: usable right after a fork.
    ///
    /// The stub is exec'd by its `/proc/self/fd/N` path with `execve`,
    /// which every seccomp profile that lets a container start at all
    /// allows; without a procfs at /proc, with `execveat` on the fd. (A
    /// /proc the image planted instead of a procfs could only make this
    /// exec one of the image's own programs, as the container process,
    /// never capsa: /proc/self/exe is no magic link there either.)
    pub fn exec(&self) -> Errno {
        let argv = self.argv_ptrs.as_ptr();
        let envp = self.envp_ptrs.as_ptr();
        // SAFETY: NUL-terminated path; argv and envp are NULL-terminated
        // arrays of pointers to NUL-terminated strings owned by self. It
        // returns only on failure.
        unsafe { libc::execve(self.proc_path.as_ptr(), argv, envp) };
        let by_path = Errno::last();
        if !matches!(by_path, Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) {
            return by_path;
        }
        // SAFETY: as above, with the stub's fd and an empty path.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.stub_fd,
                c"".as_ptr(),
                argv,
                envp,
                libc::AT_EMPTY_PATH,
            )
        };
        Errno::last()
    }
}

/// Whether this process may be protected by the stub: not when it already
/// runs from a sealed binary, nor when asked to re-execute sealed instead
/// (`CAPSA_SEAL=overlay|memfd`, which the tests of that fallback use).
pub fn wanted() -> bool {
    std::env::var_os("CAPSA_SEAL").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_headers() {
        let img = elf(&[0x90, 0x0f, 0x0b]);
        assert_eq!(&img[..4], b"\x7fELF");
        assert_eq!(img.len(), HEADERS + 3);
        // e_entry points right after the headers.
        assert_eq!(
            u64::from_le_bytes(img[24..32].try_into().unwrap()),
            HEADERS as u64
        );
        assert_eq!(u16::from_le_bytes(img[56..58].try_into().unwrap()), 2);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_stub_runs_programs_and_reports_failures() {
        use std::io::Read;
        let stub = Stub::create().unwrap();
        // Runs args through the stub with a pipe as the report fd: the exit
        // status, and what the stub wrote to the pipe.
        let run = |args: &[&str]| -> (i32, Vec<u8>) {
            let args: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
            let (prog, rest) = args.split_first().unwrap();
            let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            let report = report_fd(std::os::fd::AsFd::as_fd(&wr), 10).unwrap();
            let env = [
                c"X=1".to_owned(),
                CString::new(format!("R={}", report.as_raw_fd())).unwrap(),
            ];
            let launch = stub.launch(prog, rest, &env, Some(report.as_raw_fd()));
            let mut cmd = std::process::Command::new("/nonexistent");
            // SAFETY: exec() only makes system calls.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    Err(std::io::Error::from_raw_os_error(launch.exec() as i32))
                });
            }
            let mut child = cmd.spawn().unwrap();
            drop((wr, report));
            let mut msg = Vec::new();
            std::fs::File::from(rd).read_to_end(&mut msg).unwrap();
            (child.wait().unwrap().code().unwrap(), msg)
        };
        // The program runs, with its environment; the report fd is closed
        // by its exec (nothing written), so it does not reach the program.
        let (code, msg) = run(&[
            "/bin/sh",
            "sh",
            "-c",
            "[ \"$X\" = 1 ] && ! [ -e /proc/$$/fd/$R ] && exit 7",
        ]);
        assert_eq!((code, msg), (7, vec![]));
        let (code, msg) = run(&["/nonexistent/prog", "prog"]);
        assert_eq!(code, 127);
        assert_eq!(exec_error(&msg), Some(Errno::ENOENT));
        let dir = std::env::temp_dir().join(format!("capsa-stub-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, "text\n").unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            p.to_str().unwrap().to_string()
        };
        let (code, msg) = run(&[&file("not-executable", 0o644), "x"]);
        assert_eq!(code, 126);
        assert_eq!(exec_error(&msg), Some(Errno::EACCES));
        let (code, msg) = run(&[&file("not-a-program", 0o755), "x"]);
        assert_eq!(code, 126);
        assert_eq!(exec_error(&msg), Some(Errno::ENOEXEC));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reports() {
        assert_eq!(exec_error(&[0, 8, 0]), Some(Errno::ENOEXEC));
        assert_eq!(exec_error(b"exec failed"), None);
        assert_eq!(exec_error(&[]), None);
    }
}
