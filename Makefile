# The two commands: `make run` (the hub on its embedded journal) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench system-packages clean

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
# throwaway instance on loopback): RabbitMQ, Prometheus (promtool too), wrk.
SYSTEM_PACKAGES := rabbitmq-server:/usr/lib/rabbitmq/bin/rabbitmq-server \
	prometheus:/usr/bin/promtool wrk:/usr/bin/wrk

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

clean:
	rm -rf $(VENV) var
