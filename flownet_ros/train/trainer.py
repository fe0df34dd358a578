"""FlowNet trainer: one code path for 1 process and ``torchrun`` with N processes, CPU or CUDA.

State written to ``<out_dir>/checkpoint.pt`` (atomic, this project's checkpoint format, loadable
with ``torch.load(weights_only=True)`` and by :func:`flownet_ros.models.load_checkpoint`):
model weights + ModelSpec, and in ``extra`` the optimizer, grad scaler, schedule position
(iteration), data position (samples seen), RNG states and the config. ``resume`` restores all of
it, so an interrupted run ends with the same weights as an uninterrupted one.

The training step keeps its numbers on the device: nothing waits for the GPU except every
``train.log_every`` iterations (logging, the finiteness check) and at checkpoints.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch

from flownet_ros.data import build_dataset
from flownet_ros.data.generator import GeneratedFlowDataset
from flownet_ros.inference.preprocess import normalize_pair
from flownet_ros.inference.runtime import autocast, effective_precision, set_cpu_threads
from flownet_ros.models.checkpoint import (
    CheckpointError,
    ModelSpec,
    load_checkpoint,
    load_state_strict,
    read_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from flownet_ros.train import distributed as D
from flownet_ros.train.config import ConfigError, dump_config
from flownet_ros.train.data import BatchSource, collate, describe_dataset
from flownet_ros.train.loss import MultiScaleEPE
from flownet_ros.train.schedule import PaperSchedule
from flownet_ros.train.state import StopFlag, hardware_description, rng_state, set_rng_state, weights_digest
from flownet_ros.train.tensorboard import TrainLog

log = logging.getLogger("flownet_ros.train")
CHECKPOINT = "checkpoint.pt"
FINAL = "final.pt"


def claim_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run where one is (its checkpoints would be replaced at the first save) unless
    ``resume`` (continue it) or ``overwrite`` (its checkpoints and TensorBoard logs are deleted here, by rank 0)."""
    held = [n for n in (CHECKPOINT, FINAL) if (out_dir / n).exists()]
    if not held or resume:
        return
    if not overwrite:
        raise ConfigError(f"train.out_dir {out_dir} holds a run ({', '.join(held)}): continue it with --resume, "
                          "start over in it with --overwrite, or set another train.out_dir")
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: one process deletes
        for old in [*held, *(p.name for p in out_dir.glob("checkpoint_*.pt"))]:
            (out_dir / old).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "tb", ignore_errors=True)  # flownet_ros.train.tensorboard
        log.info("--overwrite: removed the previous run's checkpoints and logs from %s", out_dir)


def param_groups(model: torch.nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Weight decay on conv / deconv weights only (not biases, not BatchNorm)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def init_weights(model: torch.nn.Module) -> None:
    """FlowNetPytorch's initialisation for training from scratch: He-normal conv / deconv weights for
    LeakyReLU(0.1), zero biases, BatchNorm (1, 0). PyTorch's default init shrinks activations layer by
    layer, so FlowNetC's correlation of the conv3 features starts ~40x weaker than the redirected
    image-1 features and training plateaus at the mean flow."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(m.weight, a=0.1)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)


def build_model(m: Mapping[str, Any]):
    """(model, spec) from the config's model section: from a checkpoint (``init``) or from scratch."""
    if m.get("init"):
        model, spec = load_checkpoint(m["init"])
        log.info("initialised from %s (%s width %g)", m["init"], spec.arch, spec.width)
        return model.float(), replace(spec, source="flownet_ros", training={})
    spec = ModelSpec(arch=m["arch"], width=float(m["width"]), batch_norm=bool(m["batch_norm"]),
                     bias_layout=m["bias_layout"], div_flow=float(m["div_flow"]), normalization=m["normalization"])
    model = spec.build()
    if m["init_scheme"] == "kaiming":
        init_weights(model)
    return model, spec


class Trainer:
    """Build model / data / optimizer from a config dict (see :mod:`flownet_ros.train.config`)."""

    def __init__(self, cfg: Dict[str, Any], command: str = "", config_path: str = ""):
        self.cfg, self.config_path = cfg, config_path
        self.command = command or " ".join([Path(sys.executable).name] + sys.argv)
        t, o, s, d = cfg["train"], cfg["optim"], cfg["schedule"], cfg["data"]
        self.env = D.setup(t["device"])
        set_cpu_threads(int(t["threads"]))
        self.out_dir, self.iterations, self.seed = Path(t["out_dir"]), int(t["iterations"]), int(t["seed"])
        self.precision = effective_precision(t["amp"], self.env.device)
        self.memory_format = torch.channels_last if t["channels_last"] else torch.contiguous_format
        torch.manual_seed(self.seed)  # identical initial weights on every rank
        self.model, self.spec = build_model(cfg["model"])
        self.model.to(self.env.device, memory_format=self.memory_format).train()
        self.optimizer = torch.optim.Adam(param_groups(self.model, float(o["weight_decay"])), lr=float(o["lr"]),
                                          betas=tuple(float(b) for b in o["betas"]))
        self.schedule = PaperSchedule(float(o["lr"]), float(s["warmup_start_lr"]), int(s["warmup_iters"]),
                                      int(s["halve_after"]), int(s["halve_every"]))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.loss_fn = MultiScaleEPE(cfg["loss"]["weights"], self.spec.div_flow)
        self.grad_clip = float(o["grad_clip"])
        self.global_batch = int(d["batch_size"])
        self.train_set = build_dataset(d["train"])
        self.val_set = build_dataset(d["val"]) if d.get("val") and int(t["val_every"]) > 0 else None
        self.iteration, self.samples_seen, self.wall_time = 0, 0, 0.0  # wall: training s over all sessions
        self.ddp: Optional[torch.nn.Module] = None
        self._finite = torch.ones((), dtype=torch.bool, device=self.env.device)

    @property
    def net(self) -> torch.nn.Module:
        """The model that runs the forward pass (DDP wrapper when distributed)."""
        return self.ddp if self.ddp is not None else self.model

    # -- checkpoints
    def training_metadata(self) -> Dict[str, Any]:
        d = self.cfg["data"]
        return {
            "command": self.command, "config": self.config_path, "iterations": self.iteration,
            "samples_seen": self.samples_seen, "batch_size": self.global_batch,
            "wall_time_s": round(self.wall_time, 1), "world_size": self.env.world_size,
            "hardware": hardware_description(self.env.device), "device": self.env.device.type,
            "amp": self.precision, "torch": str(torch.__version__), "data": describe_dataset(d["train"]),
            "augment": describe_dataset(d.get("augment") or {}),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def state_extra(self) -> Dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "schedule": {"iteration": self.iteration, "lr": self.schedule.lr_at(max(0, self.iteration - 1))},
            "data_position": {"samples_seen": self.samples_seen, "global_batch": self.global_batch,
                              "seed": self.seed},
            "iteration": self.iteration, "wall_time_s": self.wall_time, "rng": rng_state(),
            "config_yaml": dump_config(self.cfg),
        }

    def save(self, path: Path, extra: Optional[Dict[str, Any]] = None) -> Path:
        self._check_finite()
        spec = replace(self.spec, training=self.training_metadata())
        return save_checkpoint(path, self.model, spec, extra={**self.state_extra(), **(extra or {})})

    def resume(self, path) -> None:
        """Restore model, optimizer, scaler, iteration, data position and RNG from a trainer checkpoint;
        CheckpointError naming the file when it is missing, unreadable or not written by the trainer."""
        path = Path(path)
        obj = read_checkpoint(path, "resume checkpoint")
        missing = [k for k in ("state_dict", "optimizer", "iteration", "data_position", "rng") if k not in obj]
        if missing:
            raise CheckpointError(f"resume checkpoint {path}: no {', '.join(map(repr, missing))} "
                                  f"(a model file, not a training checkpoint written by the trainer)")
        load_state_strict(path, self.model, obj["state_dict"])
        try:
            self.optimizer.load_state_dict(obj["optimizer"])
            if "scaler" in obj and self.scaler.is_enabled():
                self.scaler.load_state_dict(obj["scaler"])
            self.iteration = int(obj["iteration"])
            self.samples_seen = int(obj["data_position"]["samples_seen"])
            set_rng_state(obj["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"resume checkpoint {path}: damaged training state ({exc})") from exc
        if self.samples_seen != self.iteration * self.global_batch:
            log.warning("resume: checkpoint saw %d samples at iteration %d; batch size changed to %d",
                        self.samples_seen, self.iteration, self.global_batch)
        self.wall_time = float(obj.get("wall_time_s", 0.0))
        log.info("resumed from %s at iteration %d", path, self.iteration)

    # -- steps
    def _inputs(self, batch: Mapping[str, torch.Tensor]):
        dev, fmt = self.env.device, self.memory_format
        a, b = normalize_pair(batch["img1"].to(dev).float(), batch["img2"].to(dev).float(), self.spec, "rgb")
        return (a.contiguous(memory_format=fmt), b.contiguous(memory_format=fmt), batch["flow"].to(dev),
                batch["valid"].to(dev))

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """One optimiser step; returns its statistics as device tensors (read them only when logging)."""
        lr = self.schedule.lr_at(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        a, b, flow, valid = self._inputs(batch)
        with autocast(self.precision):
            preds = self.net(a, b)
        out = self.loss_fn([p.float() for p in preds], flow, valid)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.total).backward()
        self.scaler.unscale_(self.optimizer)
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip if self.grad_clip > 0
                                               else math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.precision != "fp16":  # fp16: the scaler skips non-finite steps by design
            self._finite &= torch.isfinite(out.total.detach()) & torch.isfinite(gnorm)
        with torch.no_grad():  # full-resolution EPE of the finest prediction
            up = torch.nn.functional.interpolate(preds[0].detach().float(), size=flow.shape[-2:], mode="bilinear",
                                                 align_corners=False) * self.spec.div_flow
            n = valid.sum().clamp_min(1)
            epe = (torch.linalg.vector_norm(up - flow, dim=1) * valid).sum() / n
            zero = (torch.linalg.vector_norm(flow, dim=1) * valid).sum() / n
        stats = {"loss": out.total.detach(), "epe": epe, "zero_flow_epe": zero, "grad_norm": gnorm}
        stats.update({f"loss_{k}": v for k, v in out.per_scale.items()})
        stats.update({f"epe_{k}": v for k, v in out.epe_px.items()})
        return stats

    def _check_finite(self) -> None:
        if not bool(self._finite):
            raise FloatingPointError(f"the loss or gradient norm became non-finite before iteration "
                                     f"{self.iteration} (lower optim.lr?)")

    def _val_batches(self):
        ds = self.val_set
        for i in range(self.env.rank, len(ds), self.env.world_size):
            if isinstance(ds, GeneratedFlowDataset):
                yield ds.generator(self.env.device).batch(ds.seed, [i])
            else:
                yield collate([ds[i]])

    @torch.no_grad()
    def validate(self) -> Dict[str, Any]:
        """EPE (px, over valid pixels) of the eval-mode model on the val set, sharded over ranks."""
        self.model.eval()
        err_sum, count, zero_sum = 0.0, 0.0, 0.0
        images = None
        for batch in self._val_batches():
            a, b, flow, valid = self._inputs(batch)
            with autocast(self.precision):
                pred = self.model(a, b).float()
            err_sum += float((torch.linalg.vector_norm(pred - flow, dim=1) * valid).sum())
            zero_sum += float((torch.linalg.vector_norm(flow, dim=1) * valid).sum())
            count += float(valid.sum())
            if images is None and self.env.is_main:
                images = (batch["img1"][0].to(torch.uint8).cpu(), flow[0].cpu(), pred[0].cpu())
        self.model.train()
        err_sum, zero_sum, count = D.all_reduce_sum(self.env, [err_sum, zero_sum, count])
        return {"epe": err_sum / max(count, 1.0), "zero_epe": zero_sum / max(count, 1.0), "images": images}

    # -- main loop
    def fit(self, stop_at: Optional[int] = None, max_minutes: Optional[float] = None,
            progress: bool = True) -> Dict[str, Any]:
        """Train until ``train.iterations`` (or ``stop_at`` / ``max_minutes`` / a signal); returns a summary."""
        env, t = self.env, self.cfg["train"]
        end = self.iterations if stop_at is None else min(self.iterations, int(stop_at))
        if env.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        source = BatchSource(self.train_set, self.cfg["data"].get("augment"), self.seed, self.global_batch,
                             env.device, env.rank, env.world_size, self.iteration, end,
                             int(self.cfg["data"]["num_workers"]))
        tb = TrainLog(self.out_dir, env.is_main, self.iteration)
        if env.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temporaries(self.out_dir, "*.pt"):
                log.warning("removed %s, left by an interrupted checkpoint write", stale)
            (self.out_dir / "config.yaml").write_text(dump_config(self.cfg))
            log.info("training %s width %g on %s x%d (%s), %d -> %d iterations, global batch %d, out %s",
                     self.spec.arch, self.spec.width, env.device, env.world_size, self.precision, self.iteration,
                     end, self.global_batch, self.out_dir)
        bar = self._progress_bar() if progress and env.is_main else None
        started = time.monotonic()
        meter = {"t": started, "it": self.iteration}
        reason, stats = "done", {}
        with StopFlag() as stop:
            for batch in source:
                step_t = time.monotonic()
                stats = self.train_step(batch)
                self.iteration += 1
                self.samples_seen += self.global_batch
                self.wall_time += time.monotonic() - step_t
                if bar is not None:
                    bar.update(1)
                self._periodic(stats, tb, bar, meter, int(t["log_every"]), int(t["val_every"]))
                if self._stop_requested(stop, started, max_minutes, int(t["log_every"])):
                    reason = "signal" if stop.requested else "time limit"
                    break
                self._checkpoint_if_due(end, int(t["checkpoint_every"]), int(t["snapshot_every"]))
        if bar is not None:
            bar.close()
        if self.iteration >= end and reason == "done" and end < self.iterations:
            reason = "stop_at"
        return self._finish(reason, stats, tb)

    def _progress_bar(self):
        from tqdm import tqdm

        return tqdm(total=self.iterations, initial=self.iteration, unit="it", dynamic_ncols=True,
                    mininterval=1.0 if sys.stderr.isatty() else 30.0, smoothing=0.05)

    def _periodic(self, stats: Dict[str, torch.Tensor], tb: TrainLog, bar, meter: Dict[str, float],
                  log_every: int, val_every: int) -> None:
        """Every ``log_every`` iterations: read the statistics (the one wait for the device), log them;
        every ``val_every``: validate."""
        if log_every and self.iteration % log_every == 0:
            self._check_finite()
            now = time.monotonic()
            rate = (self.iteration - meter["it"]) / max(now - meter["t"], 1e-9)
            meter.update(t=now, it=self.iteration)
            values = {k: float(v) for k, v in stats.items()}
            values.update(lr=self.schedule.lr_at(self.iteration - 1), it_per_s=rate,
                          pairs_per_s=rate * self.global_batch)
            tb.scalars(self.iteration, values)
            if bar is not None:
                bar.set_postfix(loss=f"{values['loss']:.3f}", epe=f"{values['epe']:.2f}", refresh=False)
            if self.env.is_main:
                log.info("it %d loss %.4f epe %.3f (zero flow %.3f) lr %.2e grad %.2f %.2f it/s %.1f pairs/s",
                         self.iteration, values["loss"], values["epe"], values["zero_flow_epe"], values["lr"],
                         values["grad_norm"], rate, values["pairs_per_s"])
        if self.val_set is not None and val_every and self.iteration % val_every == 0:
            val = self.validate()
            if self.env.is_main:
                log.info("it %d val EPE %.3f (zero flow %.3f)", self.iteration, val["epe"], val["zero_epe"])
            tb.validation(self.iteration, val)

    def _stop_requested(self, stop: StopFlag, started: float, max_minutes: Optional[float], every: int) -> bool:
        """A signal or the time limit; under torchrun all ranks agree, checked every ``every`` iterations
        (the agreement is a collective, i.e. a wait for every GPU)."""
        if self.env.distributed and every and self.iteration % every:
            return False
        timed_out = max_minutes is not None and (time.monotonic() - started) > 60.0 * max_minutes
        return D.any_rank(self.env, stop.requested or timed_out)

    def _checkpoint_if_due(self, end: int, every: int, snapshot_every: int) -> None:
        if not self.env.is_main:
            return
        if every and self.iteration % every == 0 and self.iteration < end:
            self.save(self.out_dir / CHECKPOINT)
        if snapshot_every and self.iteration % snapshot_every == 0:
            self.save(self.out_dir / f"checkpoint_{self.iteration:07d}.pt")

    def _finish(self, reason: str, stats: Dict[str, torch.Tensor], tb: TrainLog) -> Dict[str, Any]:
        digests = D.gather_objects(self.env, weights_digest(self.model))
        if len(set(digests)) != 1:
            raise RuntimeError(f"ranks disagree on the weights after iteration {self.iteration}: {digests}")
        summary = {"iteration": self.iteration, "reason": reason,
                   "final_loss": float(stats["loss"]) if stats else None,
                   "final_epe": float(stats["epe"]) if stats else None, "weights_digest": digests[0],
                   "rank_weights_digests": digests, "wall_time_s": self.wall_time}
        if self.env.is_main:
            extra = {"rank_weights_digests": digests, "final_stats": {
                "loss": summary["final_loss"], "epe": summary["final_epe"], "reason": reason}}
            self.save(self.out_dir / CHECKPOINT, extra=extra)
            if self.iteration >= self.iterations:
                self.save(self.out_dir / FINAL, extra=extra)
            log.info("stopped at iteration %d (%s); checkpoint %s", self.iteration, reason, self.out_dir / CHECKPOINT)
        tb.close()
        D.barrier(self.env)
        return summary

    def close(self) -> None:
        D.cleanup(self.env)
