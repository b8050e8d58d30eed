# The two commands: `make run` (the hub on its embedded journal) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint rabbitmq-server clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/hub serve

# Debian's RabbitMQ, for the integration tests (the harness starts its own node on loopback).
rabbitmq-server:
	@test -x /usr/lib/rabbitmq/bin/rabbitmq-server || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends rabbitmq-server; }

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.installed rabbitmq-server lint
	HUB_REQUIRE_BROKER=1 $(BIN)/pytest

clean:
	rm -rf $(VENV) var
