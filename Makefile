# tern: build, test, demo, install. `make test` and `make demo` work on a
# fresh Debian 12 machine with the Swift toolchain: they install what they
# need first (`make deps`).

PREFIX ?= /usr/local
SWIFT ?= swift
BIN := .build/debug/tern
FUZZ_SECONDS ?= 30

# Debian packages the build and the tests need (the network lab, Tests/lab,
# needs iproute2 to coturn).
DEB_PACKAGES := pkg-config libsodium-dev libssl-dev openssl curl bsdutils \
	iproute2 iptables ethtool iputils-ping procps python3 python3-venv coturn faketime chromium \
	tmux mandoc wasi-libc libqrencode-dev zbar-tools

.PHONY: all deps build web test lab-test demo bench install completions man fuzz clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# aiortc from PyPI, the second WebRTC peer of the tests (Tests/aiortc), in a
	@# venv of Debian's python3 (not a pyenv one, which the test user cannot reach).
	@if ! .venv-aiortc/bin/python3 -c 'import sys, aiortc; sys.exit(aiortc.__version__ != "1.16.0")' 2>/dev/null; then \
	  echo "installing aiortc 1.16.0 into .venv-aiortc"; \
	  /usr/bin/python3 -m venv .venv-aiortc && \
	  .venv-aiortc/bin/pip install -q --disable-pip-version-check aiortc==1.16.0; \
	fi

build: deps
	$(SWIFT) build

# The browser page's files in .build/web: web/ and libsodium compiled to
# WebAssembly from Debian's source package (scripts/build-web.sh).
web: deps
	./scripts/build-web.sh .build/web

# The lab's self-test runs first so that swift test's summary closes the run.
# Suites whose name contains "Heavy" (floods, thousands of connections, long
# simulations, headless Chromium) run after the parallel phase, one test at a time, so their load
# does not starve the time-bounded connectivity tests running beside them.
test: deps web
	$(SWIFT) build --build-tests
	$(MAKE) lab-test CONNECT_RUNS=2
	$(SWIFT) test --skip-build --skip Heavy
	$(SWIFT) test --skip-build --filter Heavy --no-parallel

# The network lab's own proof (namespaces, NAT routers, shaping, coturn),
# then real tern processes connecting across it: the NAT behaviour matrix of
# docs/lab.md, CONNECT_RUNS runs per case (20 here, 2 in `make test`); needs
# root, as CI has, and a built tern.
CONNECT_RUNS ?= 20
lab-test: deps
	bash Tests/lab/selftest.sh
	DELAYLINE_TEST_LINES=c bash Tests/lab/delayline-test.sh
	TERN_BINARY=$(BIN) CONNECT_RUNS=$(CONNECT_RUNS) bash Tests/lab/connect.sh

# Throughput (release build): SCTP in one process, two processes over UDP,
# DTLS and SCTP, then a file between two namespaces of the network lab with
# tern and with magic-wormhole (needs root; the wormhole venv is made on first
# use). BENCH_BYTES=N to change the 1 GiB; BENCH_RUNS=N for more runs;
# BENCH_DELAY_MS=20 BENCH_LOSS=1 to shape the lab link (delay and loss each
# way), BENCH_TCP_CC=cubic to pick wormhole's TCP congestion control.
# Then 10,000 files of 1-4 KiB: tern send DIR, tar through tern, wormhole
# (BENCH_SMALL_FILES, BENCH_SMALL_RUNS; see scripts/bench-small-files.sh).
# Then a long lossy link (100 Mbit/s, 50 ms, 100 ms queue, 0-10% loss each
# way): tern with each SCTP congestion controller beside magic-wormhole and
# iperf3 over TCP BBR and CUBIC, and fairness against one TCP flow (see
# scripts/bench-lossy.sh; BENCH_LOSSES, BENCH_TOOLS, BENCH_FAIR_SECONDS).
bench: deps
	./scripts/bench.sh
	./scripts/bench-transfer.sh
	./scripts/bench-small-files.sh
	./scripts/bench-lossy.sh

demo: build
	./scripts/demo.sh $(BIN)

install: deps web
	$(SWIFT) build -c release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/tern/web \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 .build/release/tern $(DESTDIR)$(PREFIX)/bin/tern
	install -m 644 completions/tern.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/tern
	install -m 644 completions/_tern $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_tern
	install -m 644 completions/tern.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/tern.fish
	install -m 644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 .build/web/*.html .build/web/*.css .build/web/*.js .build/web/sodium.wasm $(DESTDIR)$(PREFIX)/share/tern/web/

# Regenerates the committed completion scripts from the CLI definition; a
# test checks that the committed files match.
completions: build
	$(BIN) --generate-completion-script bash > completions/tern.bash
	$(BIN) --generate-completion-script zsh > completions/_tern
	$(BIN) --generate-completion-script fish > completions/tern.fish

# Regenerates the man pages in docs/man from the CLI definition, with the
# sections the generator lacks (ENVIRONMENT, EXIT STATUS, EXAMPLES); a test
# checks the committed pages have them and lint clean.
man: build
	./scripts/man.sh $(SWIFT)

# Runs every libFuzzer target for FUZZ_SECONDS seconds each.
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh

clean:
	rm -rf .build Fuzz/out
