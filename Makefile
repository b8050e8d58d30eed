# The two commands: `make run` (the hub on its embedded journal) and `make test` (the whole suite);
# `make stack` runs RabbitMQ, Prometheus and the hub on this machine, `make stack-down` stops them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench stack stack-down system-packages clean

# The runtime package alone for `make run`; the dev extra (pytest, ruff, mypy, hadolint...) on
# top of it for what checks the code.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/hub serve

# Debian packages the tests and the benchmark run for real (each harness starts its own
# throwaway instance on loopback): RabbitMQ, Prometheus (promtool too), wrk, Chromium for
# the console's browser tests (Playwright drives it; it downloads no browser of its own), and
# PostgreSQL for the shared index's tests (issue 19; Debian 12's server, version 15).
SYSTEM_PACKAGES := rabbitmq-server:/usr/lib/rabbitmq/bin/rabbitmq-server \
	prometheus:/usr/bin/promtool wrk:/usr/bin/wrk chromium:/usr/bin/chromium \
	postgresql:/usr/lib/postgresql/15/bin/initdb

system-packages:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  test -x "$${entry#*:}" || missing="$$missing $${entry%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: $(VENV)/.dev-installed system-packages lint
	HUB_REQUIRE_BROKER=1 $(BIN)/pytest

bench: $(VENV)/.dev-installed system-packages
	$(BIN)/python -m bench

# In the foreground until Ctrl-C; state in var/stack (stack.pid), the hub's data in var.
stack: $(VENV)/.installed system-packages
	$(BIN)/python -m stack

stack-down: $(VENV)/.installed
	$(BIN)/python -m stack down

clean:
	rm -rf $(VENV) var
