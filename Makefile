# detnet: the two commands a fresh machine needs are `make demo` and `make test`.
VENV   := .venv
DNCTL  := $(VENV)/bin/dnctl
PYTEST := $(VENV)/bin/python -m pytest
OUT    ?= out/demo
# where `make demo` runs: off = this host's kernel (the default: a few minutes), on = whole in a VM with
# Debian's stock kernel (netem propagation, kernel datapath; slow under TCG), auto = a VM only when this
# kernel lacks openvswitch, netem or taprio (docs/vm.md)
VM     ?= off

.PHONY: setup demo test test-unit test-emulation test-vm vm-image bench check-imports clean

setup:
	@bash tools/setup.sh

demo: setup
	$(DNCTL) demo --out $(OUT) --vm $(VM)

# the 25 slowest tests are listed at the end, so a CI log says where its time went (the VM's share)
test: setup
	$(PYTEST) -q -ra --durations=25

test-unit: setup
	$(PYTEST) -q -ra -m "not emulation"

test-emulation: setup
	$(PYTEST) -q -ra -m emulation

# the tests that run in a VM with Debian's stock kernel (part of `make test` too)
test-vm: setup
	$(PYTEST) -q -ra -m vm

# build (or find cached) the VM image even when this kernel has netem, taprio and openvswitch
vm-image: setup
	$(VENV)/bin/python -m tools.vm build

bench: setup
	$(DNCTL) bench all $(BENCH_ARGS)

# the import rules (no cycles, os_ken only in the shim and launcher, nothing below tools/ imports it, ...):
# one JSON object, exit 1 on a violation; reads the source only, needs no venv
check-imports:
	@python3 tests/architecture.py .

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis *.egg-info
