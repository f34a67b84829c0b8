# One-line entry points for a fresh machine (Python >= 3.10 on PATH as python3).
#   make demo   create .venv, install latecore[demo], run the offline demo
#   make test   create .venv, install every distribution in this repo with test extras, run all tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INTEGRATIONS := $(wildcard integrations/langchain integrations/llama-index)

.PHONY: test demo lint install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,dev]" $(foreach d,$(INTEGRATIONS),-e "$(d)[test]")

demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	HF_HUB_OFFLINE=1 $(BIN)/latecore demo

test: install-test
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy latecore

clean:
	rm -rf $(VENV)
