# HARD Lab. `make run` installs and starts the main job; `make test` installs and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: run test install install-dev assets clean

run: install
	$(BIN)/python -m hard_core train --dataset mnist5k --canvas 40 --teacher default --student mlp \
		--steps 600 --out $(RUN)

test: install-dev
	$(BIN)/python -m pytest -q

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

assets: install
	$(BIN)/python -m hard_core assets

clean:
	rm -rf $(VENV) .pytest_cache
