# detnet: the two commands a fresh machine needs are `make demo` and `make test`.
VENV   := .venv
DNCTL  := $(VENV)/bin/dnctl
PYTEST := $(VENV)/bin/python -m pytest
OUT    ?= out/demo

.PHONY: setup demo test test-unit test-emulation bench clean

setup:
	@bash tools/setup.sh

demo: setup
	$(DNCTL) demo --out $(OUT)

test: setup
	$(PYTEST) -q -ra

test-unit: setup
	$(PYTEST) -q -ra -m "not emulation"

test-emulation: setup
	$(PYTEST) -q -ra -m emulation

bench: setup
	$(DNCTL) bench admission --topology fntf40 --reservations 4096 --tenants 128
	$(DNCTL) bench admission --topology fntf40 --reservations 20000 --tenants 128
	$(DNCTL) bench rest --topology fntf40 --reservations 4096 --tenants 128

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis *.egg-info
