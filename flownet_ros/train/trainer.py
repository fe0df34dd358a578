"""FlowNet trainer: one code path for 1 process and ``torchrun`` with N processes.

State written to ``<out_dir>/checkpoint.pt`` (atomic, this project's checkpoint format, loadable
with ``torch.load(weights_only=True)`` and by :func:`flownet_ros.models.load_checkpoint`):
model weights + ModelSpec, and in ``extra`` the optimizer, grad scaler, schedule position
(iteration), data position (samples seen), RNG states and the config. ``resume`` restores all of
it, so an interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import platform
import random
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from flownet_ros.inference.preprocess import normalize_pair
from flownet_ros.models.checkpoint import ModelSpec, load_checkpoint, load_state_strict, save_checkpoint
from flownet_ros.train import distributed as D
from flownet_ros.train.config import dump_config
from flownet_ros.train.data import AugmentedDataset, IterationSampler, collate
from flownet_ros.train.datasets import build_augmentor, build_dataset, describe_dataset
from flownet_ros.train.loss import MultiScaleEPE
from flownet_ros.train.schedule import PaperSchedule

log = logging.getLogger("flownet_ros.train")
CHECKPOINT = "checkpoint.pt"
FINAL = "final.pt"


# ----------------------------------------------------------------------------- helpers
def hardware_description(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3' or '<cpu model> (<n> cores)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores)"


def rng_state() -> Dict[str, Any]:
    """Torch / CUDA / NumPy / Python RNG states as tensors and plain lists (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [py[0], list(py[1]), py[2]],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of all parameters and buffers (bit-exact comparison across ranks / runs)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()


def param_groups(model: torch.nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """Weight decay on conv / deconv weights only (not biases, not BatchNorm)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
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


class StopFlag:
    """SIGINT / SIGTERM request a clean stop (checkpoint, then exit) instead of killing the run."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.requested = True
        log.warning("signal %d: stopping after this iteration (checkpoint is written)", signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """Build model / data / optimizer from a config dict (see :mod:`flownet_ros.train.config`)."""

    def __init__(self, cfg: Dict[str, Any], command: str = "", config_path: str = ""):
        self.cfg = cfg
        self.command = command or " ".join([Path(sys.executable).name] + sys.argv)
        self.config_path = config_path
        t = cfg["train"]
        self.env = D.setup(t["device"])
        if int(t["threads"]) > 0:
            torch.set_num_threads(int(t["threads"]))
        self.out_dir = Path(t["out_dir"])
        self.iterations = int(t["iterations"])
        self.seed = int(t["seed"])
        self.amp = t["amp"]
        if self.amp != "none" and self.env.device.type != "cuda":
            log.warning("train.amp=%s needs CUDA; training in fp32 on %s", self.amp, self.env.device)
            self.amp = "none"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

        torch.manual_seed(self.seed)  # identical initial weights on every rank
        self.model, self.spec = self._build_model(cfg["model"])
        self.model.to(self.env.device).train()
        o = cfg["optim"]
        self.optimizer = torch.optim.Adam(param_groups(self.model, float(o["weight_decay"])), lr=float(o["lr"]),
                                          betas=tuple(float(b) for b in o["betas"]))
        s = cfg["schedule"]
        self.schedule = PaperSchedule(float(o["lr"]), float(s["warmup_start_lr"]), int(s["warmup_iters"]),
                                      int(s["halve_after"]), int(s["halve_every"]))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        self.loss_fn = MultiScaleEPE(cfg["loss"]["weights"], self.spec.div_flow)
        self.grad_clip = float(o["grad_clip"])

        d = cfg["data"]
        self.global_batch = int(d["batch_size"])
        self.train_set = build_dataset(d["train"])
        self.val_set = build_dataset(d["val"]) if d.get("val") and int(t["val_every"]) > 0 else None
        self.augmentor = build_augmentor(d.get("augment"))
        self.iteration = 0
        self.samples_seen = 0
        self.wall_time = 0.0  # seconds of training over all sessions of this run
        self.ddp: Optional[torch.nn.Module] = None
        self.writer = None

    # -- model
    def _build_model(self, m: Mapping[str, Any]):
        if m.get("init"):
            model, spec = load_checkpoint(m["init"])
            model = model.float()
            log.info("initialised from %s (%s width %g)", m["init"], spec.arch, spec.width)
            return model, replace(spec, source="flownet_ros", training={})
        spec = ModelSpec(arch=m["arch"], width=float(m["width"]), batch_norm=bool(m["batch_norm"]),
                         bias_layout=m["bias_layout"], div_flow=float(m["div_flow"]),
                         normalization=m["normalization"])
        model = spec.build()
        if m["init_scheme"] == "kaiming":
            init_weights(model)
        return model, spec

    @property
    def net(self) -> torch.nn.Module:
        """The model that runs the forward pass (DDP wrapper when distributed)."""
        return self.ddp if self.ddp is not None else self.model

    # -- checkpoints
    def training_metadata(self) -> Dict[str, Any]:
        d = self.cfg["data"]
        return {
            "command": self.command,
            "config": self.config_path,
            "iterations": self.iteration,
            "samples_seen": self.samples_seen,
            "batch_size": self.global_batch,
            "wall_time_s": round(self.wall_time, 1),
            "world_size": self.env.world_size,
            "hardware": hardware_description(self.env.device),
            "device": self.env.device.type,
            "amp": self.amp,
            "torch": str(torch.__version__),
            "data": describe_dataset(d["train"]),
            "augment": describe_dataset(d.get("augment") or {}),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def state_extra(self) -> Dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "schedule": {"iteration": self.iteration, "lr": self.schedule.lr_at(max(0, self.iteration - 1))},
            "data_position": {"samples_seen": self.samples_seen, "global_batch": self.global_batch,
                              "seed": self.seed},
            "iteration": self.iteration,
            "wall_time_s": self.wall_time,
            "rng": rng_state(),
            "config_yaml": dump_config(self.cfg),
        }

    def save(self, path: Path, extra: Optional[Dict[str, Any]] = None) -> Path:
        spec = replace(self.spec, training=self.training_metadata())
        full = self.state_extra()
        full.update(extra or {})
        return save_checkpoint(path, self.model, spec, extra=full)

    def resume(self, path) -> None:
        """Restore model, optimizer, scaler, iteration, data position and RNG from a checkpoint."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"resume checkpoint {path}: file not found")
        obj = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "optimizer", "iteration", "data_position", "rng"):
            if key not in obj:
                raise ValueError(f"resume checkpoint {path}: no {key!r} (not written by the trainer?)")
        load_state_strict(path, self.model, obj["state_dict"])
        self.optimizer.load_state_dict(obj["optimizer"])
        if "scaler" in obj and self.scaler.is_enabled():
            self.scaler.load_state_dict(obj["scaler"])
        self.iteration = int(obj["iteration"])
        self.samples_seen = int(obj["data_position"]["samples_seen"])
        if self.samples_seen != self.iteration * self.global_batch:
            log.warning("resume: checkpoint saw %d samples at iteration %d; batch size changed to %d",
                        self.samples_seen, self.iteration, self.global_batch)
        self.wall_time = float(obj.get("wall_time_s", 0.0))
        set_rng_state(obj["rng"])
        log.info("resumed from %s at iteration %d", path, self.iteration)

    # -- steps
    def _inputs(self, batch: Mapping[str, torch.Tensor]):
        dev = self.env.device
        img1 = batch["img1"].to(dev, non_blocking=True).float()
        img2 = batch["img2"].to(dev, non_blocking=True).float()
        a, b = normalize_pair(img1, img2, self.spec, "rgb")
        return a, b, batch["flow"].to(dev, non_blocking=True), batch["valid"].to(dev, non_blocking=True)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> Dict[str, float]:
        lr = self.schedule.lr_at(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        a, b, flow, valid = self._inputs(batch)
        with self._autocast():
            preds = self.net(a, b)
        out = self.loss_fn([p.float() for p in preds], flow, valid)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.total).backward()
        self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        else:
            gnorm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in self.model.parameters()
                                                          if p.grad is not None]))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with torch.no_grad():  # full-resolution EPE of the finest prediction
            up = torch.nn.functional.interpolate(preds[0].detach().float(), size=flow.shape[-2:], mode="bilinear",
                                                 align_corners=False) * self.spec.div_flow
            err = torch.linalg.vector_norm(up - flow, dim=1)
            epe = float(err[valid].mean()) if bool(valid.any()) else 0.0
            zero = float(torch.linalg.vector_norm(flow, dim=1)[valid].mean()) if bool(valid.any()) else 0.0
        stats = {"loss": float(out.total.detach()), "epe": epe, "zero_flow_epe": zero, "lr": lr,
                 "grad_norm": float(gnorm)}
        stats.update({f"loss_{k}": v for k, v in out.per_scale.items()})
        stats.update({f"epe_{k}": v for k, v in out.epe_px.items()})
        return stats

    @torch.no_grad()
    def validate(self) -> Dict[str, Any]:
        """EPE (px, over valid pixels) of the eval-mode model on the val set, sharded over ranks."""
        self.model.eval()
        err_sum, count, zero_sum = 0.0, 0.0, 0.0
        images = None
        for i in range(self.env.rank, len(self.val_set), self.env.world_size):
            batch = collate([self.val_set[i]])
            a, b, flow, valid = self._inputs(batch)
            with self._autocast():
                pred = self.model(a, b).float()
            err = torch.linalg.vector_norm(pred - flow, dim=1)
            err_sum += float(err[valid].sum())
            zero_sum += float(torch.linalg.vector_norm(flow, dim=1)[valid].sum())
            count += float(valid.sum())
            if images is None and self.env.is_main:
                images = (batch["img1"][0], flow[0].cpu(), pred[0].cpu())
        self.model.train()
        err_sum, zero_sum, count = D.all_reduce_sum(self.env, [err_sum, zero_sum, count])
        return {"epe": err_sum / max(count, 1.0), "zero_epe": zero_sum / max(count, 1.0), "images": images}

    # -- logging
    def _open_writer(self):
        if not self.env.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(log_dir=str(self.out_dir / "tb"), purge_step=self.iteration or None)

    def _log_scalars(self, stats: Dict[str, float], it_per_s: float) -> None:
        w = self.writer
        if w is None:
            return
        step = self.iteration
        w.add_scalar("loss/total", stats["loss"], step)
        for k, v in stats.items():
            if k.startswith("loss_"):
                w.add_scalar(f"loss/{k[5:]}", v, step)
            elif k.startswith("epe_"):
                w.add_scalar(f"epe_scale/{k[4:]}", v, step)
        w.add_scalar("train/epe", stats["epe"], step)
        w.add_scalar("train/zero_flow_epe", stats["zero_flow_epe"], step)  # the batch's |gt|: plateau check
        w.add_scalar("train/lr", stats["lr"], step)
        w.add_scalar("train/grad_norm", stats["grad_norm"], step)
        w.add_scalar("train/it_per_s", it_per_s, step)

    def _log_val(self, val: Dict[str, Any]) -> None:
        w = self.writer
        if w is None:
            return
        from flownet_ros.flow.colour import flow_to_color_torch
        w.add_scalar("val/epe", val["epe"], self.iteration)
        w.add_scalar("val/zero_flow_epe", val["zero_epe"], self.iteration)
        if val["images"] is not None:
            img1, gt, pred = val["images"]
            max_flow = float(torch.linalg.vector_norm(gt, dim=0).max().clamp_min(1.0))
            colours = flow_to_color_torch(torch.stack([gt, pred]), max_flow=max_flow)  # [2,H,W,3] uint8
            w.add_image("val/img1", img1, self.iteration, dataformats="CHW")
            w.add_image("val/flow_gt", colours[0], self.iteration, dataformats="HWC")
            w.add_image("val/flow_pred", colours[1], self.iteration, dataformats="HWC")
        w.flush()

    # -- main loop
    def fit(self, stop_at: Optional[int] = None, max_minutes: Optional[float] = None,
            progress: bool = True) -> Dict[str, Any]:
        """Train until ``train.iterations`` (or ``stop_at`` / ``max_minutes`` / a signal); returns a summary."""
        t = self.cfg["train"]
        env = self.env
        end = self.iterations if stop_at is None else min(self.iterations, int(stop_at))
        if env.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        sampler = IterationSampler(len(self.train_set), self.global_batch, self.seed, env.rank, env.world_size,
                                   start_iteration=self.iteration, iterations=end)
        workers = int(self.cfg["data"]["num_workers"])
        loader = DataLoader(AugmentedDataset(self.train_set, self.augmentor, self.seed), batch_sampler=sampler,
                            num_workers=workers, collate_fn=collate, pin_memory=env.device.type == "cuda",
                            persistent_workers=False, prefetch_factor=4 if workers else None)
        self.writer = self._open_writer()
        if env.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(dump_config(self.cfg))
            log.info("training %s width %g on %s x%d, %d -> %d iterations, global batch %d, out %s",
                     self.spec.arch, self.spec.width, env.device, env.world_size, self.iteration, end,
                     self.global_batch, self.out_dir)
        bar = None
        if progress and env.is_main:
            from tqdm import tqdm
            bar = tqdm(total=self.iterations, initial=self.iteration, unit="it", dynamic_ncols=True,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0, smoothing=0.05)
        started = time.monotonic()
        last_t, last_it = started, self.iteration
        stats: Dict[str, float] = {}
        reason = "done"
        ck_every, snap_every = int(t["checkpoint_every"]), int(t["snapshot_every"])
        log_every, val_every = int(t["log_every"]), int(t["val_every"])
        with StopFlag() as stop:
            data_iter = iter(loader)
            while self.iteration < end:
                step_t = time.monotonic()
                batch = next(data_iter)
                stats = self.train_step(batch)
                if not all(math.isfinite(stats[k]) for k in ("loss", "grad_norm")) and self.amp != "fp16":
                    raise FloatingPointError(f"iteration {self.iteration}: loss {stats['loss']} / grad norm "
                                             f"{stats['grad_norm']} is not finite (lower optim.lr?)")
                self.iteration += 1
                self.samples_seen += self.global_batch
                self.wall_time += time.monotonic() - step_t
                if bar is not None:
                    bar.update(1)
                if log_every and self.iteration % log_every == 0:
                    now = time.monotonic()
                    rate = (self.iteration - last_it) / max(now - last_t, 1e-9)
                    last_t, last_it = now, self.iteration
                    self._log_scalars(stats, rate)
                    if bar is not None:
                        bar.set_postfix(loss=f"{stats['loss']:.3f}", epe=f"{stats['epe']:.2f}",
                                        lr=f"{stats['lr']:.1e}", refresh=False)
                    if env.is_main:
                        log.info("it %d loss %.4f epe %.3f (zero flow %.3f) lr %.2e grad %.2f %.2f it/s",
                                 self.iteration, stats["loss"], stats["epe"], stats["zero_flow_epe"], stats["lr"],
                                 stats["grad_norm"], rate)
                if self.val_set is not None and val_every and self.iteration % val_every == 0:
                    val = self.validate()
                    if env.is_main:
                        log.info("it %d val EPE %.3f (zero flow %.3f)", self.iteration, val["epe"], val["zero_epe"])
                    self._log_val(val)
                timed_out = max_minutes is not None and (time.monotonic() - started) > 60.0 * max_minutes
                if D.any_rank(env, stop.requested or timed_out):
                    reason = "signal" if stop.requested else "time limit"
                    break
                if env.is_main and ck_every and self.iteration % ck_every == 0 and self.iteration < end:
                    self.save(self.out_dir / CHECKPOINT)
                if env.is_main and snap_every and self.iteration % snap_every == 0:
                    self.save(self.out_dir / f"checkpoint_{self.iteration:07d}.pt")
            del data_iter
        if bar is not None:
            bar.close()
        if self.iteration >= end and reason == "done" and end < self.iterations:
            reason = "stop_at"
        digests = D.gather_objects(env, weights_digest(self.model))
        if len(set(digests)) != 1:
            raise RuntimeError(f"ranks disagree on the weights after iteration {self.iteration}: {digests}")
        summary = {"iteration": self.iteration, "reason": reason, "final_loss": stats.get("loss"),
                   "final_epe": stats.get("epe"), "weights_digest": digests[0], "rank_weights_digests": digests,
                   "wall_time_s": self.wall_time}
        if env.is_main:
            self.save(self.out_dir / CHECKPOINT, extra={"rank_weights_digests": digests})
            if self.iteration >= self.iterations:
                self.save(self.out_dir / FINAL, extra={"rank_weights_digests": digests})
            log.info("stopped at iteration %d (%s); checkpoint %s", self.iteration, reason,
                     self.out_dir / CHECKPOINT)
        if self.writer is not None:
            self.writer.close()
        D.barrier(env)
        return summary

    def close(self) -> None:
        D.cleanup(self.env)
