# Two commands: `make build` and `make test`. Both create .venv with pip from
# the pinned lock files; nothing needs to be installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
INSTALL := $(PY) -m pip --disable-pip-version-check -q install
CONFIG ?= pipeline.yaml

CHROMIUM ?= /usr/bin/chromium

.PHONY: build test test-fast clean-venv chromium

$(VENV)/.runtime: requirements/lock.txt requirements/nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(INSTALL) -r requirements/lock.txt
	$(INSTALL) --no-deps -r requirements/nodeps.txt
	$(INSTALL) --no-deps --no-build-isolation -e . || $(INSTALL) --no-deps -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements/test.txt requirements/scale.txt requirements/intelligibility.txt
	$(INSTALL) -r requirements/test.txt
	touch $@

# The report test renders report.html in headless Chromium (Debian's package).
chromium:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "make test needs $(CHROMIUM): install Debian's chromium package (as root: apt-get install chromium)"; exit 1; }

build: $(VENV)/.runtime
	$(VENV)/bin/doit config=$(CONFIG)

# Two workers, one torch/BLAS thread each: the builds are single-threaded, and two
# workers that each spin two threads on two cores are slower (BENCHMARKS.md).
TEST_THREADS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

test: $(VENV)/.test chromium
	$(TEST_THREADS) $(PY) -m pytest -n 2

test-fast: $(VENV)/.test
	$(TEST_THREADS) $(PY) -m pytest -n 2 -m "not slow"

clean-venv:
	rm -rf $(VENV)
