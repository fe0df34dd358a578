# flownet_ros: one-command setup, tests and demo from a fresh clone (needs python3 and make).
#   make setup   create .venv, install pinned dependencies, build the correlation extension
#   make test    setup + the test suite
#   make demo    setup + the main job on the embedded default
#   make gpu-check  on a CUDA machine: build, CUDA tests and benchmarks (scripts/gpu_check.sh); needs no
#                   setup or network (uses .venv if there, else python3 with its CUDA torch)
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup test demo build-ext gpu-check clean

setup: $(STAMP) build-ext

$(STAMP): requirements.txt requirements-ros.txt scripts/setup_env.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_env.sh
	touch $@

build-ext: $(STAMP)
	$(VPY) -m flownet_ros.ops.build

test: setup
	$(VPY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VPY) -m flownet_ros.demo $(if $(BAG),--bag $(BAG)) $(if $(TOPIC),--topic $(TOPIC)) $(if $(RATE),--rate $(RATE))

gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) build install log .pytest_cache
