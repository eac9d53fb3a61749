#!/usr/bin/env python3
"""capsa against runc and crun, measured in one interleaved run.

Usage: python3 bench/bench.py [-n 50] [--concurrent 100] [--rounds 3] [--out BENCHMARKS.md] [--compare OLD.json]
(`make bench` installs the peers, builds capsa and the bundle, then runs this.)
Every run saves its medians to target/bench/results.json; `--compare` with a copy of an earlier one adds a
capsa-against-itself table (a regression check, for reading, never an assertion).

What is measured, per runtime, interleaved (each round runs every runtime once, the order rotating from
round to round so no runtime always goes first):
  run        `run --bundle B ID` of /bin/true in the foreground;
  lifecycle  `create --pid-file` / `start` / wait for the init to exit / `delete`, each phase timed;
  cli        `--version` and `state` of a missing id;
  rss        peak RSS (wait4 ru_maxrss: the runtime process and the children it reaped) of run,
             create, start, delete and --version;
  size       the binary's size;
  concurrent K `create` processes started at once (unique ids): wall time until all returned, sum and
             max of their peak RSS; then `delete --force` of all of them (timed too).
Commands are forked by bench/spawn (a small Rust worker, one per runtime) that reports monotonic
timestamps and rusage; see the comment there for why not from Python. The worker is a child subreaper
like a containerd shim, so orphaned container inits are reparented to it; "wait" is the time from
`start` returning until a pidfd on the init (opened after `create`) reports its exit.

crun 1.8.1 refuses this host's hybrid cgroup layout, so crun's worker (and only crun's) lives in a
private mount namespace with a tmpfs over /sys/fs/cgroup/unified. The namespace is set up once when the
worker starts, so its cost is in no figure; crun then sees a cgroup v1 host, as runc does.
"""
import argparse
import datetime
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPAWN_SRC = os.path.join(REPO, "bench", "spawn.rs")
SPAWN_BIN = os.path.join(REPO, "target", "bench", "spawn")
ROOTFS = os.path.join(REPO, "bundles", "busybox", "rootfs")
STATIC_TRUE = os.path.join(ROOTFS, "bin", "true")  # busybox-static applet: the fork+exec floor
RESULTS_JSON = os.path.join(REPO, "target", "bench", "results.json")
REQUEST_TIMEOUT = 60.0  # seconds for one request (a concurrent batch included) before a runtime is dropped


class RuntimeFailed(Exception):
    pass


def capsa_binary():
    """Where `make release` puts capsa: target/<triple>/release/capsa, the host's musl triple if
    that build exists (the Makefile's choice when it can), else the host's own."""
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout
    triple = next((l.split()[1] for l in host.splitlines() if l.startswith("host:")), "")
    musl = os.path.join(REPO, "target", triple.replace("-gnu", "-musl"), "release", "capsa")
    return musl if os.path.exists(musl) else os.path.join(REPO, "target", triple, "release", "capsa")


def build_spawner():
    if os.path.exists(SPAWN_BIN) and os.path.getmtime(SPAWN_BIN) >= os.path.getmtime(SPAWN_SRC):
        return
    os.makedirs(os.path.dirname(SPAWN_BIN), exist_ok=True)
    subprocess.run(["rustc", "-O", "--edition", "2021", SPAWN_SRC, "-o", SPAWN_BIN], check=True)


class Worker:
    """One bench/spawn process; `private_cgroup2` puts it in crun's private mount namespace."""

    def __init__(self, log_path, private_cgroup2=False):
        self.log_path = log_path
        self.private_cgroup2 = private_cgroup2
        if private_cgroup2:
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    'mount -t tmpfs capsa-bench-cg2 /sys/fs/cgroup/unified && exec "$0" "$1"',
                    SPAWN_BIN, log_path]
        else:
            argv = [SPAWN_BIN, log_path]
        # A session of its own: Ctrl-C reaches only this script, which then cleans up through the worker.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     start_new_session=True, bufsize=0)
        self.buf = b""
        self.busy = False  # a request was sent and its answer not read (e.g. interrupted by Ctrl-C)

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.kill()
                raise RuntimeFailed(f"no answer within {timeout:.0f} s (hung?)")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeFailed("spawn worker died")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def _ask(self, text, timeout=REQUEST_TIMEOUT):
        self.busy = True
        self.proc.stdin.write(text.encode())
        line = self._readline(timeout)
        self.busy = False
        if line.startswith("ERR"):
            raise RuntimeFailed("spawn worker refused a request")
        return [int(x) for x in line.split()]

    def settle(self):
        """After an interruption: read the answer still due, so requests and answers pair up again."""
        if self.busy and self.alive():
            self._readline(REQUEST_TIMEOUT)
            self.busy = False

    def run(self, argv, timeout=REQUEST_TIMEOUT):
        """-> (rc, t0_ns, t1_ns, maxrss_kib)"""
        return tuple(self._ask("R\t" + "\t".join(argv) + "\n", timeout))

    def run_many(self, argvs, timeout=REQUEST_TIMEOUT):
        """-> (nfail, first_rc, t0_ns, t1_ns, sum_maxrss_kib, max_maxrss_kib)"""
        text = f"M\t{len(argvs)}\n" + "".join("\t".join(a) + "\n" for a in argvs)
        return tuple(self._ask(text, timeout))

    def log_tail(self, since):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read()[-400:].decode(errors="replace").strip()
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        if self.alive():
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker's own session: it and what it spawned
            self.proc.wait()


class Runtime:
    def __init__(self, name, binary, workdir, private_cgroup2=False):
        self.name = name
        self.binary = binary
        self.root = os.path.join(workdir, name, "root")
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.root)
        self.private_cgroup2 = private_cgroup2
        self.worker = Worker(os.path.join(self.dir, "stderr.log"), private_cgroup2)
        self.live = set()  # ids created and not yet deleted
        self.samples = {}  # metric -> list of values
        self.failures = {}  # metric -> (count, first message)
        self.broken = None  # set when the runtime hung: it is skipped from then on
        self.cgroups = None  # cgroup directories named after a created container (seen once, untimed)

    def cmd(self, *args):
        return [self.binary, "--root", self.root, *args]

    def add(self, metric, value):
        self.samples.setdefault(metric, []).append(value)

    def fail(self, metric, msg):
        n, first = self.failures.get(metric, (0, msg))
        self.failures[metric] = (n + 1, first)

    def call(self, metric, *args, ok_rc=(0,)):
        """Run one runtime command; record its time (ms) and peak RSS. -> (t1_ns) or raise RuntimeFailed."""
        since = self.worker.log_size()
        rc, t0, t1, rss = self.worker.run(self.cmd(*args))
        if rc not in ok_rc:
            raise RuntimeFailed(f"{metric}: exit {rc}: {self.worker.log_tail(since)}")
        self.add(metric, (t1 - t0) / 1e6)
        self.add("rss " + metric, rss)
        return t1

    def restart_worker(self):
        self.worker.kill()
        self.worker = Worker(self.worker.log_path, self.private_cgroup2)


def make_bundle(workdir):
    bundle = os.path.join(workdir, "bundle")
    os.makedirs(bundle)
    spec_tool = shutil.which("runc")
    if spec_tool:
        subprocess.run([spec_tool, "spec"], cwd=bundle, check=True)
        source = "`runc spec`"
    else:
        subprocess.run([capsa_binary(), "spec"], cwd=bundle, check=True)
        source = "`capsa spec` (runc not installed)"
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["root"]["path"] = ROOTFS  # shared, read-only (runc spec's default): fine for many containers
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return bundle, source


def memory_charged(known, cid):
    """Peak memory charged to the container's memory cgroup so far (KiB): everything the runtime's
    setup did once the init was in its cgroup (the init's own pages, page tables, kernel objects of the
    mounts it made...). cgroup v1's memory.max_usage_in_bytes or cgroup2's memory.peak; None if the
    container has no memory cgroup of its own."""
    for d in known or []:
        if "/memory/" not in d and "/unified/" not in d:
            continue
        d = d[: d.rfind("/") + 1] + cid  # the directory of this container, beside the one seen once
        for f in ("memory.max_usage_in_bytes", "memory.peak"):
            try:
                with open(os.path.join(d, f)) as fh:
                    return int(fh.read().split()[0]) / 1024
            except (OSError, ValueError):
                continue
    return None


def find_cgroups(name, top="/sys/fs/cgroup", depth=4):
    """Cgroup directories called `name` (runc and crun make /sys/fs/cgroup/<controller>/.../<id>)."""
    found = []
    for base, dirs, _ in os.walk(top):
        found += [os.path.join(base, d) for d in dirs if d == name]
        dirs[:] = [d for d in dirs if d != name] if base.count("/") - top.count("/") < depth else []
    return found


class Bench:
    def __init__(self, args):
        self.args = args
        self.tag = f"cb{os.getpid()}"  # every container id starts with it: leftovers are easy to find
        self.seq = 0
        self.workdir = tempfile.mkdtemp(prefix="capsa-bench.")
        self.bundle, self.bundle_source = make_bundle(self.workdir)
        self.runtimes = []
        self.floor = Worker(os.path.join(self.workdir, "floor.log"))
        self.floor_samples = {"static true": [], "rss static true": [], "unshare": []}
        self.load = os.getloadavg()

    def new_id(self, rt):
        self.seq += 1
        return f"{self.tag}-{rt.name}-{self.seq}"

    def add_runtime(self, name, binary, private_cgroup2=False):
        path = shutil.which(binary) or (binary if os.access(binary, os.X_OK) else None)
        if not path:
            print(f"bench: {name} not found ({binary}); it is left out", file=sys.stderr)
            return
        self.runtimes.append(Runtime(name, os.path.abspath(path), self.workdir, private_cgroup2))

    def order(self, i):
        """The runtimes still in the run, in round i's order (rotating, so none always goes first)."""
        live = [rt for rt in self.runtimes if not rt.broken]
        k = i % max(len(live), 1)
        return live[k:] + live[:k]

    def guarded(self, rt, metric, fn):
        try:
            fn()
        except RuntimeFailed as e:
            rt.fail(metric, str(e))
            if not rt.worker.alive():
                rt.broken = str(e)
                rt.restart_worker()  # for the cleanup
            self.cleanup_runtime(rt)

    # --- the measurements -------------------------------------------------------------------------
    def one_run(self, rt):
        cid = self.new_id(rt)
        rt.live.add(cid)
        rt.call("run", "run", "--bundle", self.bundle, cid)
        rt.live.discard(cid)

    def one_lifecycle(self, rt):
        cid = self.new_id(rt)
        pidfile = os.path.join(rt.dir, "pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        rt.live.add(cid)
        rt.call("create", "create", "--bundle", self.bundle, "--pid-file", pidfile, cid)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        if rt.cgroups is None:  # once per runtime, between two timed calls: does it set up cgroups?
            rt.cgroups = find_cgroups(cid)
        charged = memory_charged(rt.cgroups, cid)
        if charged is not None:  # untimed: what the setup cost the container's own memory cgroup
            rt.add("memory charged by create", charged)
        pidfd = os.pidfd_open(pid)  # before start: the init is waiting there, it cannot be gone yet
        try:
            started = rt.call("start", "start", cid)
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(REQUEST_TIMEOUT * 1000):
                raise RuntimeFailed("wait: the container's init did not exit")
            exited = time.monotonic_ns()  # same clock as the worker's CLOCK_MONOTONIC stamps
        finally:
            os.close(pidfd)
        rt.add("wait", max(exited - started, 0) / 1e6)
        rt.call("delete", "delete", cid)
        rt.live.discard(cid)
        s = rt.samples
        rt.add("lifecycle", s["create"][-1] + s["start"][-1] + s["wait"][-1] + s["delete"][-1])

    def one_cli(self, rt):
        rt.call("--version", "--version")
        rt.call("state (missing id)", "state", f"{self.tag}-missing", ok_rc=range(1, 126))

    def one_concurrent(self, rt):
        k = self.args.concurrent
        ids = [self.new_id(rt) for _ in range(k)]
        rt.live.update(ids)
        since = rt.worker.log_size()
        nfail, rc, t0, t1, rss_sum, rss_max = rt.worker.run_many(
            [rt.cmd("create", "--bundle", self.bundle, i) for i in ids])
        if nfail:
            raise RuntimeFailed(f"concurrent create: {nfail}/{k} failed (exit {rc}): {rt.worker.log_tail(since)}")
        rt.add(f"{k} x create, wall", (t1 - t0) / 1e6)
        rt.add(f"{k} x create, RSS sum", rss_sum)
        rt.add(f"{k} x create, RSS max", rss_max)
        since = rt.worker.log_size()
        nfail, rc, t0, t1, _, _ = rt.worker.run_many([rt.cmd("delete", "--force", i) for i in ids])
        if nfail:
            raise RuntimeFailed(f"concurrent delete: {nfail}/{k} failed (exit {rc}): {rt.worker.log_tail(since)}")
        rt.add(f"{k} x delete --force, wall", (t1 - t0) / 1e6)
        rt.live.difference_update(ids)

    def one_floor(self):
        rc, t0, t1, rss = self.floor.run([STATIC_TRUE])
        if rc == 0:
            self.floor_samples["static true"].append((t1 - t0) / 1e6)
            self.floor_samples["rss static true"].append(rss)
        unshare = shutil.which("unshare")
        rc, t0, t1, _ = self.floor.run([unshare, "--pid", "--fork", "--mount", "--net", "--uts", "--ipc",
                                        STATIC_TRUE])
        if rc == 0:
            self.floor_samples["unshare"].append((t1 - t0) / 1e6)

    def measure(self):
        a = self.args
        phases = [
            ("warm-up", a.warmup, lambda rt: (self.one_run(rt), self.one_lifecycle(rt)), "run"),
            ("run", a.n, self.one_run, "run"),
            ("lifecycle", a.n, self.one_lifecycle, "lifecycle"),
            ("cli", a.n, self.one_cli, "cli"),
            (f"concurrent {a.concurrent}", a.rounds if a.concurrent else 0, self.one_concurrent, "concurrent"),
        ]
        for label, n, fn, metric in phases:
            start = time.monotonic()
            print(f"bench: {label}: {n} rounds x {len(self.runtimes)} runtimes", file=sys.stderr, flush=True)
            for i in range(n):
                for rt in self.order(i):
                    self.guarded(rt, metric, lambda: fn(rt))
                if label == "run":
                    self.one_floor()
            if label == "warm-up":
                for rt in self.runtimes:
                    rt.samples.clear()
                    rt.failures.clear()
            print(f"bench: {label}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)

    # --- cleanup ----------------------------------------------------------------------------------
    def cleanup_runtime(self, rt):
        try:
            rt.worker.settle()
        except RuntimeFailed:
            rt.restart_worker()
        for cid in sorted(rt.live):
            try:
                rt.worker.run(rt.cmd("delete", "--force", cid), timeout=20)
            except RuntimeFailed:
                rt.restart_worker()
        rt.live.clear()

    def cleanup(self):
        leftovers = []
        for rt in self.runtimes:
            self.cleanup_runtime(rt)
            rt.worker.close()
            if os.path.isdir(rt.root) and os.listdir(rt.root):
                leftovers.append(f"{rt.name} state left in {rt.root}: {os.listdir(rt.root)[:5]}")
        self.floor.close()
        # Cgroups named after our ids (runc and crun create /sys/fs/cgroup/<controller>/<id>); remove any.
        for base, dirs, _ in os.walk("/sys/fs/cgroup"):
            for d in [d for d in dirs if self.tag in d]:
                path = os.path.join(base, d)
                try:
                    os.rmdir(path)
                    leftovers.append(f"removed leftover cgroup {path}")
                except OSError as e:
                    leftovers.append(f"leftover cgroup {path}: {e.strerror}")
            dirs[:] = [d for d in dirs if self.tag not in d] if base.count("/") < 7 else []
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if self.tag in line or self.workdir in line]
        leftovers += [f"leftover mount {m}" for m in mounts]
        shutil.rmtree(self.workdir, ignore_errors=True)
        return leftovers


# --- report ---------------------------------------------------------------------------------------
def pct(values, q):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def cell(rt, metric, fmt):
    values = rt.samples.get(metric, [])
    n_fail = rt.failures.get(metric.replace("rss ", ""), (0, ""))[0] if not values else 0
    if not values:
        return "FAILED" if (n_fail or rt.failures or rt.broken) else "n/a"
    med, p90 = statistics.median(values), pct(values, 0.9)
    return f"{fmt(med)} ({fmt(p90)})" if len(values) > 1 else fmt(med)


def ratio(a, b, metric):
    va, vb = a.samples.get(metric), b.samples.get(metric)
    if not va or not vb:
        return "-"
    return f"{statistics.median(va) / statistics.median(vb):.2f}"


def report(bench, args, elapsed, leftovers):
    rts = bench.runtimes
    capsa = next((rt for rt in rts if rt.name == "capsa"), None)
    peers = [rt for rt in rts if rt is not capsa]
    ms = lambda v: f"{v:.2f}"
    kib = lambda v: f"{v:.0f}"
    k = args.concurrent

    def table(title, rows, default_fmt):
        head = ["", *[rt.name for rt in rts]] + ([f"capsa/{p.name}" for p in peers] if capsa else [])
        out = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for label, metric, *fmt in rows:
            line = [label] + [cell(rt, metric, fmt[0] if fmt else default_fmt) for rt in rts]
            if capsa:
                line += [ratio(capsa, p, metric) for p in peers]
            out.append("| " + " | ".join(line) + " |")
        return out + [""]

    versions = []
    for rt in rts:
        try:
            v = subprocess.run([rt.binary, "--version"], capture_output=True, text=True, timeout=10).stdout
            versions.append(f"{rt.name}: {v.splitlines()[0] if v else '?'} ({rt.binary})")
        except (OSError, subprocess.TimeoutExpired):
            versions.append(f"{rt.name}: ? ({rt.binary})")
    try:
        git = lambda *a: subprocess.run(["git", "-C", REPO, *a], capture_output=True, text=True,
                                        timeout=10).stdout.strip()
        rev = git("rev-parse", "--short", "HEAD") or "?"
        if git("status", "--porcelain", "--", "src", "build.rs", "Cargo.toml", "Cargo.lock"):
            rev += " with uncommitted changes to the sources"
    except (OSError, subprocess.TimeoutExpired):
        rev = "?"
    cgroups = "; ".join(
        f"{rt.name} " + ("not seen" if rt.cgroups is None else
                         f"{len(rt.cgroups)} ({', '.join(sorted({c.split('/')[4] for c in rt.cgroups}))})"
                         if rt.cgroups else "none")
        for rt in rts)
    fs = bench.floor_samples
    floor = (f"static busybox `true` {statistics.median(fs['static true']):.2f} ms, "
             f"{statistics.median(fs['rss static true']):.0f} KiB peak RSS; "
             f"`unshare --pid --fork --mount --net --uts --ipc true` {statistics.median(fs['unshare']):.2f} ms"
             if fs["static true"] and fs["unshare"] else "not measured")
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    lines = [
        "# Benchmarks",
        "",
        "capsa against runc and crun, measured in one interleaved run by `make bench` (bench/bench.py).",
        "Figures are medians with the 90th percentile in parentheses; ratios are of medians (below 1: capsa",
        "is faster or smaller). The machine is shared and noisy: trust ratios from the same run over absolutes.",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- kernel: {platform.release()} ({platform.machine()}), {os.cpu_count()} CPUs ({cpu})",
        f"- machine: hybrid cgroups (v1 controllers, cgroup2 at /sys/fs/cgroup/unified); see ../shared/host-notes.md",
        f"- iterations: {args.n} per runtime for run, lifecycle and CLI ({args.warmup} warm-up rounds discarded); "
        f"{args.rounds} rounds of {k} concurrent creates; order rotated each round",
        f"- bundle: busybox-static rootfs (read-only), config from {bench.bundle_source} with terminal=false, "
        f"args [\"/bin/true\"]",
        *[f"- {v}" for v in versions],
        f"- capsa built from commit {rev}",
        f"- cgroup directories a runtime made for a created container (looked up once, untimed; crun's "
        f"cgroup2 ones are in its private tmpfs): {cgroups}",
        "- crun 1.8.1 refuses hybrid cgroup hosts, so crun ran in a private mount namespace with a tmpfs over "
        "/sys/fs/cgroup/unified, set up once for a long-lived worker that spawns every crun command (the "
        "unshare/mount cost is in no figure); capsa and runc ran in the host's mount namespace",
        f"- floor (same spawner): {floor}",
        f"- load average (1 min) at start / end: {bench.load[0]:.2f} / {os.getloadavg()[0]:.2f}; "
        f"total bench time: {elapsed:.0f} s; reproduce with `make bench`",
        "",
    ]
    lines += table("Latency, ms", [
        ("`run` (foreground /bin/true)", "run"),
        ("lifecycle: create + start + wait + delete", "lifecycle"),
        ("&nbsp;&nbsp;create", "create"),
        ("&nbsp;&nbsp;start", "start"),
        ("&nbsp;&nbsp;wait (start returned -> init exited)", "wait"),
        ("&nbsp;&nbsp;delete", "delete"),
        ("`--version`", "--version"),
        ("`state` of a missing id", "state (missing id)"),
    ], ms)
    lines += table("Peak RSS, KiB (wait4 ru_maxrss: the runtime process and the children it reaped)", [
        ("`run`", "rss run"), ("`create`", "rss create"), ("`start`", "rss start"),
        ("`delete`", "rss delete"), ("`--version`", "rss --version"),
    ], kib)
    lines += table("Memory charged to the container's own memory cgroup by `create`, KiB (peak usage "
                   "read right after create: the init's setup once it is in its cgroup)", [
        ("created container, before start", "memory charged by create"),
    ], kib)
    if k:
        lines += table(f"{k} containers created concurrently", [
            ("wall time of all creates, ms", f"{k} x create, wall"),
            ("sum of peak RSS, KiB", f"{k} x create, RSS sum", kib),
            ("largest peak RSS, KiB", f"{k} x create, RSS max", kib),
            (f"wall time of {k} concurrent `delete --force`, ms", f"{k} x delete --force, wall"),
        ], ms)
    head = ["", *[rt.name for rt in rts]] + ([f"capsa/{p.name}" for p in peers] if capsa else [])
    sizes = {rt.name: os.path.getsize(rt.binary) for rt in rts}
    lines += ["### Binary size", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head),
              "| bytes | " + " | ".join(f"{sizes[rt.name]:,}" for rt in rts)
              + ("".join(f" | {sizes['capsa'] / sizes[p.name]:.2f}" for p in peers) if capsa else "") + " |", ""]
    if args.compare and capsa:
        lines += compare(capsa, args.compare)
    problems = []
    for rt in rts:
        for metric, (n, first) in rt.failures.items():
            problems.append(f"- {rt.name}: {metric} failed {n} time(s); first: {first}")
        if rt.broken:
            problems.append(f"- {rt.name}: dropped from the run: {rt.broken}")
    problems += [f"- {l}" for l in leftovers]
    if problems:
        lines += ["### Failures and leftovers", "", *problems, ""]
    return "\n".join(lines)


def medians(bench):
    return {rt.name: {m: statistics.median(v) for m, v in rt.samples.items() if v} for rt in bench.runtimes}


def compare(capsa, path):
    """capsa now against capsa in an earlier results.json (ratios of medians; above 1: slower/bigger now)."""
    try:
        with open(path) as f:
            old = json.load(f).get("capsa", {})
    except (OSError, ValueError) as e:
        return [f"### capsa against {path}", "", f"not compared: {e}", ""]
    out = [f"### capsa against an earlier run ({os.path.basename(path)})", "",
           "| | earlier | now | now/earlier |", "| --- | --- | --- | --- |"]
    for metric, values in capsa.samples.items():
        if values and metric in old and old[metric]:
            now = statistics.median(values)
            out.append(f"| {metric} | {old[metric]:.2f} | {now:.2f} | {now / old[metric]:.2f} |")
    return out + [""]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=50, help="iterations per runtime for run, lifecycle and CLI")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--concurrent", type=int, default=100, help="containers created at once (0: skip)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the concurrent case")
    p.add_argument("--capsa", default=capsa_binary())
    p.add_argument("--runc", default="runc")
    p.add_argument("--crun", default="crun")
    p.add_argument("--compare", metavar="OLD.json", help="an earlier target/bench/results.json to compare capsa with")
    p.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"), help="markdown output ('' to skip)")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (containers with namespaces and cgroups)")
    build_spawner()
    # SIGTERM and SIGHUP clean up like Ctrl-C does.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    bench = Bench(args)
    started = time.monotonic()
    interrupted = False
    try:
        bench.add_runtime("capsa", args.capsa)
        bench.add_runtime("crun", args.crun, private_cgroup2=True)
        bench.add_runtime("runc", args.runc)
        bench.measure()
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted, cleaning up", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        leftovers = bench.cleanup()
    if interrupted:
        for l in leftovers:
            print(f"bench: {l}", file=sys.stderr)
        sys.exit(130)
    text = report(bench, args, time.monotonic() - started, leftovers)
    print(text)
    with open(RESULTS_JSON, "w") as f:
        json.dump(medians(bench), f, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        print(f"bench: written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
