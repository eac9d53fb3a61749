# capsa: build, sample bundle, tests.
#   make run    build release, build the busybox bundle, run a container from it
#   make test   everything CI checks (needs root)
#   make fuzz   every fuzz target for FUZZ_SECONDS each (not in CI)
#   make soak   SOAK_LIFECYCLES full lifecycles, then a residue check (not in CI)

CARGO    ?= cargo
BUSYBOX  ?= /bin/busybox
BUNDLE   := bundles/busybox
ROOTFS   := $(BUNDLE)/rootfs
# The shipped build: static (no dynamic loader, libc pages or relocations
# at every start), not position-independent (like Debian's runc: no
# relocation table to read and no relocated data to dirty at each start),
# with the functions everyday commands run linked first and together
# (scripts/hot-symbols.py writes the list), so a capsa process maps a
# fraction of its code. Linked against musl where the toolchain has its
# standard library (fetched with rustup by `make toolchain` if it can be): glibc's static
# start-up probes the CPU's caches with cpuid, a trap in a VM, 0.4 ms of
# every capsa command here; otherwise against glibc. Built for that target
# explicitly, so these flags reach capsa and its dependencies but not the
# proc-macros. `make TARGET=...` picks one.
HOST     := $(shell rustc -vV | sed -n 's/^host: //p')
MUSL     := $(subst -gnu,-musl,$(HOST))
# Chosen from what is installed, when first used (after the `toolchain`
# rule ran), never fetched while this Makefile is merely parsed.
ifeq ($(origin TARGET),undefined)
TARGET    = $(eval TARGET := $(shell rustup target list --installed 2>/dev/null | grep -qx '$(MUSL)' && echo $(MUSL) || echo $(HOST)))$(TARGET)
endif
# lld for the code order: the toolchain's own (the gnu target's default
# linker; the musl one would take the system's ld).
GCC_LD   := $(shell rustc --print sysroot)/lib/rustlib/$(HOST)/bin/gcc-ld
LLD       = $(if $(filter %-musl,$(TARGET)),$(if $(wildcard $(GCC_LD)/ld.lld),-C link-arg=-fuse-ld=lld -C link-arg=-B$(GCC_LD)))
HOT_LIST  = scripts/hot-symbols.$(TARGET).txt
ORDER_FLAGS := -C link-arg=-Wl,--symbol-ordering-file=$(CURDIR)/$(HOT_LIST) \
               -C link-arg=-Wl,--no-warn-symbol-ordering
HOT_ORDER = $(if $(and $(wildcard $(HOT_LIST)),$(or $(LLD),$(filter %-gnu,$(TARGET)))),$(ORDER_FLAGS))
RELEASE_RUSTFLAGS = -C target-feature=+crt-static -C relocation-model=static $(LLD)
RELEASE   = RUSTFLAGS="$(RELEASE_RUSTFLAGS) $(HOT_ORDER)" $(CARGO)
CAPSA     = target/$(TARGET)/release/capsa
# capsa with the crash points of src/fault.rs, for tests/crash.rs: a debug
# build (quick to compile) in its own target dir, never the shipped binary.
FAULT_TARGET := target/fault
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := config signal mount_options seccomp process cgroup_path id update proc_files state
SOAK_LIFECYCLES ?= 1000

.PHONY: all toolchain build release bundle run test unit clean deps integration-deps bench fault-build fuzz soak hot-symbols

all: release bundle

build:
	$(CARGO) build

release: toolchain
	$(RELEASE) build --release --target $(TARGET)

# Debian packages the project needs (busybox-static for every rootfs;
# iproute2's ip for the veth pairs of tests/compat.rs).
deps:
	@command -v $(BUSYBOX) >/dev/null 2>&1 && $(BUSYBOX) --list >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static iproute2; }

bundle: deps $(ROOTFS)/bin/busybox

$(ROOTFS)/bin/busybox: scripts/make-rootfs.sh
	BUSYBOX=$(BUSYBOX) sh scripts/make-rootfs.sh $(ROOTFS)

run: release bundle
	$(CAPSA) --root /run/capsa run --bundle $(BUNDLE) capsa-demo-$$$$

# The real clients the tests under integration/ drive (Debian's packages),
# CNI's plugins for integration/cri.rs's pods, and protoc, which the CRI
# client's bindings (the k8s-cri dev-dependency) need to build: .ci/run
# installs these before clippy builds the tests. Rootless podman needs
# newuidmap/newgidmap (uidmap) and runs catatonit as the process that keeps
# its user namespace. integration/systemd.rs boots Debian's systemd (with
# dbus) as PID 1 of a container: the `systemd` package alone does not make
# it the host's init (that is systemd-sysv), and its scripts only reload a
# running systemd.
CLIENTS := containerd ctr containerd-shim-runc-v2 podman conmon dockerd docker script protoc \
           newuidmap newgidmap catatonit busctl dbus-daemon nsenter
CNI_PLUGINS := bridge host-local loopback portmap
integration-deps:
	@missing=0; for c in $(CLIENTS); do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	  for p in $(CNI_PLUGINS); do [ -x /usr/lib/cni/$$p ] || missing=1; done; \
	  [ -x /lib/systemd/systemd ] || missing=1; \
	  [ $$missing = 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get \
	    -o DPkg::Lock::Timeout=600 install -y -qq \
	    containerd podman conmon docker.io bsdutils containernetworking-plugins protobuf-compiler \
	    uidmap catatonit util-linux; \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
	    --no-install-recommends systemd dbus; }

fault-build:
	$(CARGO) build --features fault-injection --target-dir $(FAULT_TARGET)

test: toolchain deps integration-deps
	$(RELEASE) build --release --target $(TARGET)
	python3 scripts/check-hot-symbols.py $(CAPSA) $(HOT_LIST)
	$(CARGO) build --features fault-injection --target-dir $(FAULT_TARGET)
	BUSYBOX=$(BUSYBOX) $(RELEASE) test --release --target $(TARGET) -- --test-threads=4
	# The fuzz regressions once more with overflow checks (a debug build,
	# sharing the fault build's dependencies): some crashes are overflows.
	$(CARGO) test --features fault-injection --target-dir $(FAULT_TARGET) --test fuzz_regressions

# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP lets the stable
# toolchain take them. New inputs go to fuzz/corpus/TARGET (not in git);
# fuzz/seeds/TARGET start it; a crash stops here, with its input in
# fuzz/artifacts/TARGET: fix it and add the input to fuzz/regressions/TARGET,
# which tests/fuzz_regressions.rs replays.
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  case $$t in config|seccomp|process|update|state) dict=-dict=json.dict;; *) dict=;; esac; \
	  mkdir -p corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --debug-assertions $$t corpus/$$t seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=3 $$dict || exit 1; \
	done

# SOAK_LIFECYCLES create/start/exec/kill/delete cycles (and runs), then the
# host is compared with before: mounts, cgroups, fds, entries under --root.
soak: release bundle
	SOAK_LIFECYCLES=$(SOAK_LIFECYCLES) BUSYBOX=$(BUSYBOX) \
	  $(RELEASE) test --release --target $(TARGET) --test stress -- --ignored --nocapture soak

# capsa against runc and crun (Debian's), interleaved; prints a table and writes BENCHMARKS.md.
# BENCH_ARGS passes options to bench/bench.py, e.g. make bench BENCH_ARGS="-n 100".
bench: release bundle
	@command -v runc >/dev/null 2>&1 && command -v crun >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc crun; }
	python3 bench/bench.py --capsa $(CAPSA) $(BENCH_ARGS)

# Regenerates scripts/hot-symbols.$(TARGET).txt from what the commands really run
# (root, offline; commit the result). Not in CI: the list only orders code.
hot-symbols: toolchain bundle
	CAPSA_TARGET=$(TARGET) CAPSA_RELEASE_RUSTFLAGS="$(RELEASE_RUSTFLAGS)" python3 scripts/hot-symbols.py
	$(MAKE) release

# Adds the musl target with rustup (2 minutes at most), or says the build
# falls back to glibc.
toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx '$(MUSL)' || \
	  timeout 120 rustup target add $(MUSL) >/dev/null 2>&1 || \
	  echo 'capsa: building against glibc ($(MUSL) could not be installed: rustup target add $(MUSL))'

clean:
	$(CARGO) clean
	rm -rf $(ROOTFS)
