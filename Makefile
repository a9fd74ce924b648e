# The two commands of the README are `make run` and `make test`; both set up what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: deps test-deps run test lint typecheck bench build deploy openapi screenshots clean

deps:
	@infra/setup.sh

# The browser tests drive Debian's chromium (Playwright cannot download browsers here).
test-deps:
	@APT_PACKAGES="redis-server chromium" infra/setup.sh

run: deps
	$(PY) -m infra.local_run

lint: test-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: test-deps
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest

bench: deps
	$(PY) -m benchmarks

build: deps
	$(PY) -m infra.build

deploy: build
	$(VENV)/bin/sam deploy --template-file .aws-sam/build/template.yaml

openapi: deps
	$(PY) -m infra.cli openapi

# The README's stats page screenshots, as the browser test takes them (desktop and phone).
screenshots: test-deps
	$(PY) -m pytest -q tests/e2e/test_stats_page.py -k "shows_what_the_api_answers or on_a_phone"
	mkdir -p docs && cp test-artifacts/stats-page-desktop.png test-artifacts/stats-page-phone.png docs/

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
