"""Offline training of FlowNet: config, multi-scale loss, schedule, resumable (torchrun-ready) trainer.

Run ``python -m flownet_ros.train --config config/train_cpu.yaml`` (or with ``torchrun``).
"""

from flownet_ros.train.config import ConfigError, load_config
from flownet_ros.train.loss import PAPER_WEIGHTS, MultiScaleEPE
from flownet_ros.train.schedule import PaperSchedule

__all__ = ["ConfigError", "load_config", "MultiScaleEPE", "PAPER_WEIGHTS", "PaperSchedule"]
