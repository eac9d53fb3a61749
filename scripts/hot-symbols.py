#!/usr/bin/env python3
"""Regenerates scripts/hot-symbols.TARGET.txt (TARGET: $CAPSA_TARGET, else the host's triple; one
list per C library, whose functions are in it too): the functions capsa's everyday commands execute, which the
release build links first and together (lld --symbol-ordering-file; see the Makefile's HOT_ORDER).

Why: the kernel maps a program's code in 64 KiB windows around each page it touches (fault-around),
so code touched here and there across a 3.5 MB text maps most of it, and every capsa process would be
about 4 MB resident. With the functions a command runs packed together, a `run` maps a fraction.

How (root, offline; neither the build nor the tests run this):
  1. build a profiling copy of the release binary with every function aligned to its own page
     (LLVM's -align-all-functions=12; the symbol names are the release build's);
  2. run the workloads in stages, most common first (`--version` and a failed `state`; `run`; the
     create/start/state/delete lifecycle; exec, ps, pause/resume, kill, list, spec and failures):
     a. under valgrind's callgrind, which names every function the capsa command itself runs
        (the C library's included; a container's init cannot run under valgrind, which lacks openat2);
     b. for real, with the disk's readahead off and the copy dropped from the page cache, so a page
        fault reads exactly the page it needs: the pages mincore() then finds cached are those some
        process touched, the container's init included, and with one function per page, the Rust
        functions that ran;
  3. write, stage by stage, the command's functions (a), then those only the init ran (b), then the C
     library functions (b)'s code calls directly (objdump's call graph; the C library's code is not
     one function per page): a command then maps little of its init's code, and neither maps later
     stages'. Functions nothing ran keep the linker's order, after these. The readahead setting is
     restored at the end, even on failure.

Usage: make hot-symbols        (root; writes the list and relinks: commit the list)
"""
import ctypes
import json
import mmap
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE_TARGET = os.path.join(REPO, "target", "hot-profile")
PAGE = mmap.PAGESIZE


def host_triple():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(l.split()[1] for l in out.splitlines() if l.startswith("host:"))


def build_profiling_binary(triple):
    flags = os.environ.get("CAPSA_RELEASE_RUSTFLAGS", "")
    env = dict(os.environ, RUSTFLAGS=f"{flags} -C llvm-args=-align-all-functions=12".strip())
    subprocess.run(["cargo", "build", "--release", "--target", triple, "--target-dir", PROFILE_TARGET],
                   cwd=REPO, env=env, check=True)
    return os.path.join(PROFILE_TARGET, triple, "release", "capsa")


def readahead_setting(path):
    """The read_ahead_kb file of the disk holding path."""
    st = os.stat(path)
    name = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    p = f"/sys/class/bdi/{name}/read_ahead_kb"
    if os.path.exists(p):
        return p
    sys.exit(f"hot-symbols: no readahead setting for {path} ({name}); use a directory on a disk")


def resident_pages(path):
    """Indexes of the file's pages in the page cache (mincore on a shared mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            sys.exit("hot-symbols: mmap failed")
        n = (size + PAGE - 1) // PAGE
        vec = (ctypes.c_ubyte * n)()
        if libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
            sys.exit(f"hot-symbols: mincore failed: errno {ctypes.get_errno()}")
        libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))
        return {i for i in range(n) if vec[i] & 1}
    finally:
        os.close(fd)


def callgrind_functions(capsa, root, args, out):
    """Functions the command ran under callgrind (mangled names), or an empty set without valgrind."""
    if not shutil.which("valgrind"):
        return set()
    prof = os.path.join(out, "callgrind.out")
    with open(os.path.join(out, "stderr"), "w") as e:
        subprocess.run(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={prof}",
                        capsa, "--root", root, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=e)
    names, ids = set(), {}
    try:
        with open(prof) as f:
            for line in f:
                m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line.strip())
                if m:
                    if m.group(2):
                        ids[m.group(1)] = re.sub(r"'\d+$", "", m.group(2))
                    name = ids.get(m.group(1))
                    # Symbols only: not valgrind's "(below main)" or bare addresses.
                    if name and not name.startswith(("0x", "(")):
                        names.add(name)
        os.unlink(prof)
    except OSError:
        pass
    return names


def call_graph(binary):
    """Function name -> names of the functions it calls or jumps to directly (objdump)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True, text=True,
                         check=True).stdout
    graph, current = {}, None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            current = graph.setdefault(m.group(1), set())
            continue
        m = re.search(r"\t(?:call|jmp)\S*\s+[0-9a-f]+ <([^+>]+)>", line)
        if m and current is not None:
            current.add(m.group(1))
    return graph


def non_rust_closure(roots, graph):
    """The non-Rust functions (glibc's, libgcc's) reachable from roots through direct calls."""
    out, stack = [], [r for r in roots]
    seen = set(stack)
    while stack:
        fn = stack.pop()
        for callee in sorted(graph.get(fn, ())):
            if callee not in seen:
                seen.add(callee)
                stack.append(callee)
                if not callee.startswith(("_ZN", "_R")):
                    out.append(callee)
    return out


def functions_by_page(binary):
    """File page index -> names of the functions starting or lying in it."""
    segs = []
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD" and "E" in f[6:-1]:
            segs.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    pages = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) != 4 or f[2] not in ("t", "T", "W", "w"):
            continue
        va, size = int(f[0], 16), max(int(f[1], 16), 1)
        for off, vaddr, seg_size in segs:
            if vaddr <= va < vaddr + seg_size:
                first = (va - vaddr + off) // PAGE
                last = (va + size - 1 - vaddr + off) // PAGE
                for p in range(first, last + 1):
                    pages.setdefault(p, []).append(f[3])
    return pages


def stages(bundle, root):
    """The workloads, as lists of capsa command lines, most common first."""
    sleep = bundle + "-sleep"
    pid = os.path.join(root, "..", "pid")
    return [
        ("version, state", [["--version"], ["state", "hot-missing"]]),
        ("run", [["run", "--bundle", bundle, "hot-run"]]),
        ("lifecycle", [["create", "--bundle", bundle, "--pid-file", pid, "hot-c"], ["state", "hot-c"],
                       ["start", "hot-c"], ["delete", "--force", "hot-c"]]),
        ("the rest", [["run", "-d", "--bundle", sleep, "hot-d"], ["exec", "hot-d", "true"], ["list"],
                      ["list", "--format", "json"], ["ps", "--format", "json", "hot-d"], ["pause", "hot-d"],
                      ["resume", "hot-d"], ["exec", "hot-d", "nonexistent-program"], ["kill", "hot-d", "KILL"],
                      ["delete", "--force", "hot-d"], ["delete", "hot-missing"],
                      ["spec", "--bundle", os.path.join(root, "..")]]),
    ]


def main():
    if os.geteuid() != 0:
        sys.exit("hot-symbols: needs root (containers, the readahead setting)")
    triple = os.environ.get("CAPSA_TARGET") or host_triple()
    out = os.path.join(REPO, "scripts", f"hot-symbols.{triple}.txt")
    binary = build_profiling_binary(triple)
    bundle_src = os.path.join(REPO, "bundles", "busybox")
    work = tempfile.mkdtemp(prefix="capsa-hot.", dir=os.path.join(REPO, "target"))
    ra_path = readahead_setting(work)
    with open(ra_path) as f:
        ra_old = f.read().strip()
    capsa = os.path.join(work, "capsa")
    root = os.path.join(work, "root")
    order, seen = [], set()
    try:
        shutil.copy2(binary, capsa)
        # valgrind reads the whole file it runs: a copy of its own keeps it out of the page cache
        # that mincore() reads.
        capsa_vg = os.path.join(work, "capsa-vg")
        shutil.copy2(binary, capsa_vg)
        by_page = functions_by_page(capsa)
        for name, args in (("b", ["/bin/true"]), ("b-sleep", ["sleep", "1000"])):
            d = os.path.join(work, name)
            os.makedirs(d)
            with open(os.path.join(bundle_src, "config.json")) as f:
                cfg = json.load(f)
            cfg["process"]["args"] = args
            cfg["process"]["terminal"] = False
            cfg["root"]["path"] = os.path.realpath(os.path.join(bundle_src, cfg["root"]["path"]))
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f)
        os.makedirs(root)
        with open(ra_path, "w") as f:
            f.write("0")
        fd = os.open(capsa, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        cached = resident_pages(capsa)
        print(f"hot-symbols: {len(cached)} pages cached before the first command", file=sys.stderr)
        err = os.path.join(work, "stderr")
        rust = {fn for fns in by_page.values() for fn in fns if fn.startswith(("_ZN", "_R"))}
        graph = call_graph(capsa_vg)
        for stage, commands in stages(os.path.join(work, "b"), root):
            ran = []
            vg_root = os.path.join(work, "vg-root")
            for args in commands:
                os.makedirs(vg_root, exist_ok=True)
                ran.append(callgrind_functions(capsa_vg, vg_root, args, work))
                for cid in ("hot-c", "hot-d", "hot-run"):
                    subprocess.run([capsa_vg, "--root", vg_root, "delete", "--force", cid],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                # stderr to a file: a created container keeps its stdio open.
                with open(err, "w") as e:
                    subprocess.run([capsa, "--root", root, *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=e)
            now = resident_pages(capsa)
            new_pages = sorted(now - cached)
            touched = [fn for page in new_pages for fn in by_page.get(page, []) if fn in rust]
            # The C library is not one function per page: what the Rust code that ran calls of it,
            # and the string functions on the pages read (the variant glibc picks for this CPU,
            # which valgrind's emulated one need not share).
            libc_used = non_rust_closure(touched, graph) + [
                fn for page in new_pages for fn in by_page.get(page, [])
                if re.match(r"^__(raw)?(mem|str|wmem|wcs)\w*_(sse|ssse|avx|evex|erms)", fn)]
            for fn in [f for names in ran for f in sorted(names)] + touched + libc_used:
                if fn not in seen:
                    seen.add(fn)
                    order.append(fn)
            # A page read that none of these explains (C library start-up code valgrind does not
            # name, say): every function on it.
            for page in new_pages:
                fns = by_page.get(page, [])
                if fns and not any(fn in seen for fn in fns):
                    for fn in fns:
                        seen.add(fn)
                        order.append(fn)
            print(f"hot-symbols: after {stage}: {len(now)} pages touched, {len(order)} functions",
                  file=sys.stderr)
            cached = now
    finally:
        with open(ra_path, "w") as f:
            f.write(ra_old)
        for cid in ("hot-c", "hot-d", "hot-run"):
            subprocess.run([capsa, "--root", root, "delete", "--force", cid], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    with open(out, "w") as f:
        f.write("\n".join(order) + "\n")
    print(f"hot-symbols: {len(order)} functions written to {out}")


if __name__ == "__main__":
    main()
