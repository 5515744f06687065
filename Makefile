# `make run` and `make test` each do the whole set-up on a fresh machine.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)
CONFIG ?= config/config.yaml
# DVC sends no usage reports (.dvc/config says so too, for `dvc` run outside make).
export DVC_NO_ANALYTICS := 1

.PHONY: run unlock test lint clean-results chromium pull plots gpu-check

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	# torch first and by pip, which finds the pinned CPU wheel on disk (uv does not look there):
	# it must win over a CUDA build pulled in by a range.
	$(BIN)/python -m pip install --quiet torch==2.13.0 uv==0.9.5
	# The rest by uv, which keeps the installed torch (the lock pins it): 12 s here against pip's
	# 52 s. Compiled to bytecode as pip does: under PYTHONDONTWRITEBYTECODE every job would
	# otherwise compile its imports again (evaluate jobs ran 2x slower).
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# A run killed mid-way leaves Snakemake's locks: the guard removes them when no Snakemake process
# works here (facerepro.workflow_lock). Outputs such a run left half-written are made again.
run: $(STAMP)
	$(BIN)/python -m facerepro.workflow_lock --configfile $(CONFIG)
	$(BIN)/snakemake --workflow-profile profiles/default --configfile $(CONFIG) --rerun-incomplete

# Unconditional, for where the guard cannot look at processes (no /proc, as on macOS): only when
# no Snakemake run is alive in this directory.
unlock: $(STAMP)
	$(BIN)/snakemake --unlock --configfile $(CONFIG)

# The report's browser test needs Debian's chromium. Installed when apt can (root, or sudo
# without a password); otherwise the test skips and says how to install it.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; } || \
	echo "chromium could not be installed: tests/test_report_browser.py will skip"

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint --configfile $(CONFIG)

# `dvc pull`, then stamp what it restored: DVC writes files with the time of the pull, in no
# order, and Snakemake would re-run jobs. Only when the workspace matches dvc.lock does
# `snakemake --touch` mark every output up to date, in DAG order (dvc.yaml, README.md).
pull: $(STAMP)
	$(BIN)/dvc pull
	$(BIN)/dvc status --quiet || { $(BIN)/dvc status; \
	  echo "the workspace differs from dvc.lock: run dvc repro, not a touch" >&2; exit 1; }
	$(BIN)/snakemake --touch --configfile config/config.yaml

# DVC's plots (dvc.yaml, DVCLive training curves) as one page that works offline.
plots: $(STAMP)
	$(BIN)/python -m facerepro.dvc_plots -o results/dvc_plots

clean-results:
	rm -rf results logs benchmarks

# The GPU path on a GPU machine, with that machine's own Python (no .venv: torch with CUDA, plus
# jsonschema; bench/gpu_check.py lists the rest). GPU_CHECK_ARGS="--device cpu --quick" is the
# dry run that the test suite also makes.
GPU_CHECK_OUT  ?= results/gpu_check
GPU_CHECK_ARGS ?=
gpu-check:
	PYTHONPATH=src$${PYTHONPATH:+:$$PYTHONPATH} python3 bench/gpu_check.py --out $(GPU_CHECK_OUT) $(GPU_CHECK_ARGS)
