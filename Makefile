# propdesk: `make run` sets up this machine and runs everything; `make test` runs every test.
# See README.md for configuration, ports, scaling, metrics and logs.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
INSTALLED := $(VENV)/.installed
LAUNCH := $(VENV)/bin/python deploy/local/launch.py
PID_FILE := var/launch.pid
LOG_DIR := var/log
READY_TIMEOUT ?= 90
# Passed to the launcher by run/up, e.g. LAUNCH_ARGS="--replicas ticketing=2" or "--only registry,gateway".
LAUNCH_ARGS ?=
# DEMO=1: run/up load the demo data (deploy/local/demo.py) once the gateway is ready.
DEMO ?=
DEMO_LOAD = $(VENV)/bin/python deploy/local/demo.py --url $(GATEWAY_URL)
READY = $(VENV)/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
	$(GATEWAY_URL)/ready 2>/dev/null

export PROPDESK_GATEWAY_PORT ?= 8000
export PROPDESK_JWT_SECRET ?= dev-secret-change-me-at-least-32-bytes
GATEWAY_URL := http://127.0.0.1:$(PROPDESK_GATEWAY_PORT)

# `make run` and `make up` work on SQLite alone; the tests need PostgreSQL as well.
run up: BROKER_FLAGS := --postgres-optional

.PHONY: help venv install tools broker migrate run up down demo test bench fuzz

help:
	@echo "make run      set up everything and run every service in the foreground"
	echo "make test     the whole test suite (ARGS='-k ticket -x' to narrow it)"
	echo "make up/down  start/stop the same system in the background (logs in $(LOG_DIR)/)"
	echo "make demo     load the demo data into the running system (or: make run DEMO=1)"
	echo "make fuzz     Schemathesis against a live gateway for 10 minutes (FUZZ_ARGS='--url URL' for a running one)"
	echo "make install | tools | broker | migrate | bench"

venv install: $(INSTALLED)

# Re-installs only when the dependencies change.
$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -c constraints.txt -e '.[test]'
	touch $@

broker:
	@deploy/local/broker.sh $(BROKER_FLAGS)

# System tools some tests drive: promtool (alerting rules) and headless Chromium (the docs page).
# Installed from Debian when missing and we may; otherwise those tests skip, saying what to install.
TOOLS := promtool=prometheus chromium=chromium
tools:
	@missing=()
	for tool in $(TOOLS); do command -v "$${tool%%=*}" >/dev/null || missing+=("$${tool#*=}"); done
	if ((! $${#missing[@]})); then exit 0; fi
	if [[ $$(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "installing $${missing[*]} (apt-get)"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "$${missing[@]}" >/dev/null; } \
			|| echo "could not install $${missing[*]}: the tests that need them skip" >&2
	else
		echo "missing $${missing[*]}: sudo apt-get install -y --no-install-recommends $${missing[*]}" \
			"(the tests that need them skip until then)" >&2
	fi

migrate: install
	@mkdir -p var
	$(VENV)/bin/python -m services.common.migrate

run: install broker migrate
	@echo
	echo "propdesk gateway: $(GATEWAY_URL)/api/v1   (OpenAPI: $(GATEWAY_URL)/api/v1/openapi.json)"
	echo "JWT secret: $(PROPDESK_JWT_SECRET)   (set PROPDESK_JWT_SECRET to change it)"
	echo "a token:    $(VENV)/bin/propdesk-token --sub alice --role agent --sites 001"
	echo "Ctrl-C stops every service."
	echo
	if [[ -n "$(DEMO)" ]]; then
		( until $(READY); do sleep 1; done; $(DEMO_LOAD) ) &
	fi
	exec $(LAUNCH) $(LAUNCH_ARGS)

up: install broker migrate
	@mkdir -p $(LOG_DIR)
	if [[ -f $(PID_FILE) ]] && kill -0 "$$(cat $(PID_FILE))" 2>/dev/null; then
		echo "propdesk is already running (launcher pid $$(cat $(PID_FILE)))"
	else
		nohup $(LAUNCH) --logdir $(LOG_DIR) $(LAUNCH_ARGS) </dev/null >>$(LOG_DIR)/launch.log 2>&1 &
		echo $$! > $(PID_FILE)
		echo "propdesk starting (launcher pid $$!, logs in $(LOG_DIR)/)"
	fi
	deadline=$$((SECONDS + $(READY_TIMEOUT)))
	until $(READY); do
		if ! kill -0 "$$(cat $(PID_FILE))" 2>/dev/null; then
			rm -f $(PID_FILE)
			tail -n 30 $(LOG_DIR)/*.log
			echo "propdesk stopped while starting (logs above, in $(LOG_DIR)/)" >&2
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 $(LOG_DIR)/*.log
			echo "$(GATEWAY_URL)/ready did not answer 200 within $(READY_TIMEOUT) s (logs above);" \
				"still running: make down to stop it" >&2
			exit 1
		fi
		sleep 1
	done
	echo "propdesk is up: $(GATEWAY_URL)/api/v1   (JWT secret: $(PROPDESK_JWT_SECRET))"
	if [[ -n "$(DEMO)" ]]; then $(DEMO_LOAD); fi

demo: install
	@$(DEMO_LOAD)

down:
	@if [[ ! -f $(PID_FILE) ]]; then echo "propdesk is not running (no $(PID_FILE))"; exit 0; fi
	pid=$$(cat $(PID_FILE))
	if kill -TERM "$$pid" 2>/dev/null; then
		echo "stopping propdesk (launcher pid $$pid)"
		for ((waited = 0; waited < 80; waited++)); do
			kill -0 "$$pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$$pid" 2>/dev/null; then
			echo "the launcher (pid $$pid) has not stopped after 40 s; see $(LOG_DIR)/launch.log" >&2
			exit 1
		fi
	fi
	rm -f $(PID_FILE)
	echo "propdesk stopped"

test: install tools broker
	@$(VENV)/bin/pytest $(ARGS)

# Starts the whole system of its own (its own vhost, SQLite), fuzzes it, stops it; exit 0 = no failure.
FUZZ_ARGS ?=
fuzz: install broker
	@$(VENV)/bin/python -m tests.fuzz $(FUZZ_ARGS)

bench: install broker
	@$(VENV)/bin/python -m bench $(ARGS)
