# flownet_ros: one-command setup, tests and demo from a fresh clone (needs python3 and make).
#   make setup   create .venv, install pinned dependencies, build the correlation extension
#   make test    setup + the real-image data (downloaded once; tests skip without it) + lint + the test suite
#   make demo    setup + the main job on the embedded default
#   make data    the photo sets: training photos and the held-out real-image evaluation set (~255 MB download)
#   make lint    ruff (configured in ruff.toml)
#   make test-fast  the quick tests only (pytest -m "not slow": no processes, DDS, colcon, bags or training)
#   make gpu-check  on a CUDA machine: build, CUDA tests and benchmarks (scripts/gpu_check.sh); needs no
#                   setup or network (uses .venv if there, else python3 with its CUDA torch)
#   make gpu-train  on a CUDA machine: train the CUDA model in one call (scripts/gpu_train.sh OUT)
# Other Pythons / pins: make test PYTHON=python3.12 VENV=.venv312 PIN_OVERRIDES="numpy==1.26.4 ..."
# ROS 2 wheels (where no sourced ROS 2 gives rclpy): ROS_DISTRO=kilted (default) or jazzy
PYTHON ?= python3
VENV   ?= .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
PYTEST_ARGS ?=
PIN_OVERRIDES ?=
ROS_DISTRO ?= kilted
GPU_OUT ?= gpu_train_out

.PHONY: setup test test-fast demo data lint build-ext gpu-check gpu-train clean

setup: $(STAMP) build-ext

$(STAMP): requirements.txt requirements-ros.txt requirements-ros-jazzy.txt setup.py scripts/setup_env.sh
	PYTHON=$(PYTHON) VENV=$(VENV) PIN_OVERRIDES="$(PIN_OVERRIDES)" ROS_DISTRO=$(ROS_DISTRO) bash scripts/setup_env.sh
	touch $@

build-ext: $(STAMP)
	$(VPY) -m flownet_ros.ops.build

data: $(STAMP)
	$(VPY) -m flownet_ros.data.photos fetch --set all

lint: $(STAMP)
	$(VPY) -m ruff check .

test: setup lint
	-$(VPY) -m flownet_ros.data.photos fetch --set all
	$(VPY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(VPY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(VPY) -m flownet_ros.demo $(if $(BAG),--bag $(BAG)) $(if $(TOPIC),--topic $(TOPIC)) $(if $(RATE),--rate $(RATE))

gpu-check:
	bash scripts/gpu_check.sh

gpu-train:
	bash scripts/gpu_train.sh $(GPU_OUT)

clean:
	rm -rf $(VENV) build install log .pytest_cache
