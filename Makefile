# Two commands: `make build` and `make test`. Both create .venv with pip from
# the pinned lock files; nothing needs to be installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
CONFIG ?= pipeline.yaml

CHROMIUM ?= /usr/bin/chromium

.PHONY: build test test-fast clean-venv chromium

$(VENV)/.runtime: requirements/lock.txt requirements/nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements/lock.txt
	$(PIP) install --no-deps -r requirements/nodeps.txt
	$(PIP) install --no-deps --no-build-isolation -e . || $(PIP) install --no-deps -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements/test.txt
	$(PIP) install -r requirements/test.txt
	touch $@

# The report test renders report.html in headless Chromium (Debian's package).
chromium:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "make test needs $(CHROMIUM): install Debian's chromium package (as root: apt-get install chromium)"; exit 1; }

build: $(VENV)/.runtime
	$(VENV)/bin/doit config=$(CONFIG)

test: $(VENV)/.test chromium
	$(PY) -m pytest

test-fast: $(VENV)/.test
	$(PY) -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
