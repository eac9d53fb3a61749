# capsa: build, sample bundle, tests.
#   make run    build release, build the busybox bundle, run a container from it
#   make test   everything CI checks (needs root)

CARGO    ?= cargo
BUSYBOX  ?= /bin/busybox
BUNDLE   := bundles/busybox
ROOTFS   := $(BUNDLE)/rootfs
CAPSA    := target/release/capsa

.PHONY: all build release bundle run test unit clean deps integration-deps bench

all: release bundle

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Debian packages the project needs (busybox-static for every rootfs).
deps:
	@command -v $(BUSYBOX) >/dev/null 2>&1 && $(BUSYBOX) --list >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static; }

bundle: deps $(ROOTFS)/bin/busybox

$(ROOTFS)/bin/busybox: scripts/make-rootfs.sh
	BUSYBOX=$(BUSYBOX) sh scripts/make-rootfs.sh $(ROOTFS)

run: release bundle
	$(CAPSA) --root /run/capsa run --bundle $(BUNDLE) capsa-demo-$$$$

# The real clients the tests under integration/ drive (Debian's packages).
CLIENTS := containerd ctr containerd-shim-runc-v2 podman conmon dockerd docker script
integration-deps:
	@missing=0; for c in $(CLIENTS); do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	  [ $$missing = 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    containerd podman conmon docker.io bsdutils; }

test: deps integration-deps
	$(CARGO) build --release
	BUSYBOX=$(BUSYBOX) $(CARGO) test --release -- --test-threads=4

# capsa against runc and crun (Debian's), interleaved; prints a table and writes BENCHMARKS.md.
# BENCH_ARGS passes options to bench/bench.py, e.g. make bench BENCH_ARGS="-n 100".
bench: release bundle
	@command -v runc >/dev/null 2>&1 && command -v crun >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc crun; }
	python3 bench/bench.py --capsa $(CAPSA) $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -rf $(ROOTFS)
