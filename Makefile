# The two commands a new user runs (see README): `make demo` and `make test`.
# Both create .venv with the system Python if it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out
# Extra `alrp train` options of the demo, e.g. DEMO_TRAIN="--epochs 2" for a quick look.
DEMO_TRAIN ?=
# Real COCO ground truth + a real detector's results (100 images), shipped in data/.
SHARED_COCO ?= data/coco-val2014-100
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	@mkdir -p $(DEMO_OUT)
	$(BIN)/alrp --version
	$(BIN)/alrp --help
	rm -rf $(DEMO_OUT)/train-alrp $(DEMO_OUT)/train-focal
	$(BIN)/alrp train --out $(DEMO_OUT)/train-alrp --record-loss-inputs 2 $(DEMO_TRAIN) --json $(DEMO_OUT)/train-alrp.json
	$(BIN)/alrp train --loss focal --out $(DEMO_OUT)/train-focal $(DEMO_TRAIN) --json $(DEMO_OUT)/train-focal.json
	$(BIN)/alrp analyze $(DEMO_OUT)/train-alrp $(DEMO_OUT)/train-focal --label alrp --label focal \
	  --json $(DEMO_OUT)/analysis-train.json --csv-dir $(DEMO_OUT)/analysis-train
	$(BIN)/alrp analyze $(SHARED_COCO)/detections_fakebbox100.json \
	  --gt $(SHARED_COCO)/instances_val2014_100.json --label fakebbox100 --top 10 \
	  --json $(DEMO_OUT)/analysis.json --csv-dir $(DEMO_OUT)/analysis
	$(BIN)/alrp check-balance --json $(DEMO_OUT)/balance.json --plot $(DEMO_OUT)/balance.png
	@for f in $(DEMO_OUT)/*/loss_inputs.pt; do [ -e "$$f" ] || continue; \
	  run=$$(basename $$(dirname "$$f")); \
	  echo "$(BIN)/alrp check-balance --from $$f"; \
	  $(BIN)/alrp check-balance --from "$$f" --json $(DEMO_OUT)/balance-$$run.json || exit $$?; \
	done
	@inputs=""; labels=""; \
	for f in $(DEMO_OUT)/train-* $(DEMO_OUT)/balance*.json; do \
	  case "$$f" in */train-*.json) continue;; esac; \
	  if [ -d "$$f" ]; then [ -f "$$f/metrics.jsonl" ] || continue; labels="$$labels --label=$${f##*/train-}"; \
	  else [ -f "$$f" ] || continue; labels="$$labels --label="; fi; \
	  inputs="$$inputs $$f"; \
	done; \
	echo "$(BIN)/alrp report$$inputs$$labels --out $(DEMO_OUT)/report"; \
	$(BIN)/alrp report $$inputs $$labels --out $(DEMO_OUT)/report
	@if [ -f $(DEMO_OUT)/analysis.json ]; then \
	  echo "$(BIN)/alrp report $(DEMO_OUT)/analysis.json --out $(DEMO_OUT)/report-coco"; \
	  $(BIN)/alrp report $(DEMO_OUT)/analysis.json --out $(DEMO_OUT)/report-coco; fi
	@echo "demo: outputs are in $(DEMO_OUT)/"

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(VENV)/.installed-run
	$(BIN)/python -m alrp_cli.cli.gendocs docs/cli.md

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
