"""The one training loop behind train-classifier, train-ae and train-joint.

Adam + ReduceLROnPlateau on the validation loss (or the authors' step schedule), mixed precision and
channels_last on CUDA, DDP under torchrun, per-epoch validation gathered from all ranks, history.csv, best and last
weights, and resume state at every epoch end and on Ctrl-C/SIGTERM (exit 130). A non-finite loss stops the run
(exit 1) with the last good files kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cxrtool.config.geometry import InputGeometry
from cxrtool.config.training import LoopConfig
from cxrtool.data.datasets import EpochSampler, ImageDataset, PatchDataset
from cxrtool.errors import Interrupted, RunFailure
from cxrtool.layouts import RunDir
from cxrtool.log import warn
from cxrtool.models.checkpoints import save_model
from cxrtool.runtime.signals import StopRequest, ignore_in_worker
from cxrtool.training import rng_state, run_dir
from cxrtool.training.distributed import World, any_rank, barrier, gather_objects
from cxrtool.training.tasks import Task

HISTORY_HEAD = ["epoch", "lr", "seconds", "images_per_s", "train_loss", "val_loss"]
# The authors' stage-3 schedule: lr ÷ 10 at the start of these (1-based) epochs, so with 1e-4 epochs 1-4 train at
# 1e-4, 5-9 at 1e-5, 10-14 at 1e-6 and 15 on at 1e-7.
STEP_MILESTONES = (5, 10, 15)


@dataclass
class Stage:
    """Everything stage-specific that the loop needs."""

    kind: str
    labels: tuple[str, ...]
    geometry: InputGeometry
    config: dict[str, Any]  # the flat options recorded in config.json and every checkpoint's metadata
    model: nn.Module
    task: Task
    train_set: ImageDataset | PatchDataset
    val_set: ImageDataset | PatchDataset
    data: dict[str, Any] = field(default_factory=dict)  # per split: images and a SHA-256 of their rows
    schedule: str = "plateau"  # or "step" (the authors' stage 3)
    keep: str = "loss"  # model.safetensors: best val loss, or "auc"
    # Stage 2: each dataset item is this many patches of one image. The loader reads batch_size images at a time
    # and makes this many optimizer steps of batch_size patches from them, step j taking every image's j-th patch,
    # so every batch mixes batch_size different images (see `_steps`).
    patches_per_image: int = 1


@dataclass
class TrainingState:
    """Where the run stands; saved in resume.json (as "progress")."""

    epoch: int = 1  # the epoch in progress (1-based)
    step: int = 0  # batches done in it
    global_step: int = 0
    best_loss: float = math.inf
    best_auc: float = -math.inf
    best_epoch: int = 0
    sums: dict[str, float] = field(default_factory=dict)  # partial-epoch sums of the train parts
    samples: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _amp(device: torch.device, enabled: bool) -> tuple[torch.dtype | None, Any]:
    """bf16 where the GPU has it natively (Ampere and later; no scaler needed), fp16 with a GradScaler otherwise;
    off on CPU and MPS. `is_bf16_supported()` alone also counts emulation, which would give pre-Ampere GPUs slow
    emulated bf16 and make the fp16 path unreachable."""
    if not enabled or device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _to(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def _loader(
    dataset: Dataset, sampler: EpochSampler, batch: int, workers: int, device: torch.device, train: bool
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        worker_init_fn=ignore_in_worker if workers > 0 else None,
        drop_last=train and len(sampler) >= batch,
    )


def lr_for_epoch(base: float, epoch: int) -> float:
    """The step schedule's rate for a 1-based epoch: ÷ 10 from each milestone epoch on."""
    return base * 0.1 ** sum(epoch >= m for m in STEP_MILESTONES)


def _steps(loader: DataLoader, per_item: int, skip: int) -> Iterator[dict[str, Any]]:
    """Optimizer batches from loader batches. A patch batch (images × per_item × 1×P×P) becomes per_item batches,
    the j-th of every image's j-th patch; `skip` drops the first sub-batches (a resumed run's done steps)."""
    for batch in loader:
        image = batch["image"]
        if image.dim() != 5:
            if skip:
                skip -= 1
                continue
            yield batch
            continue
        for j in range(image.shape[1]):
            if skip:
                skip -= 1
                continue
            yield {**batch, "image": image[:, j]}


class Trainer:
    """Runs a Stage in a run directory; `fit` returns the history rows."""

    def __init__(self, stage: Stage, cfg: LoopConfig, run: Path, *, device: torch.device, world: World) -> None:
        if cfg.workers is None:
            raise ValueError("Trainer needs a resolved worker count (LoopConfig.workers)")
        self.stage, self.cfg, self.run, self.device, self.world = stage, cfg, run, device, world
        self.channels_last = device.type == "cuda"
        model = stage.model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=cfg.factor, patience=cfg.patience
            )
            if stage.schedule == "plateau"
            else None
        )
        self.amp_dtype, self.scaler = _amp(device, cfg.amp)
        self.net = self._wrap(model)
        self.train_sampler = EpochSampler(
            len(stage.train_set), seed=cfg.seed, shuffle=True, rank=world.rank, world=world.size
        )
        self.val_sampler = EpochSampler(
            len(stage.val_set), seed=cfg.seed, shuffle=False, rank=world.rank, world=world.size
        )
        self.train_loader = _loader(stage.train_set, self.train_sampler, cfg.batch_size, cfg.workers, device, True)
        self.val_loader = _loader(stage.val_set, self.val_sampler, cfg.batch_size, cfg.workers, device, False)
        self.per_item = max(1, stage.patches_per_image)  # optimizer steps per loader batch
        self.state = TrainingState()
        self.columns = [*HISTORY_HEAD, *stage.task.train_columns(), *stage.task.val_columns()]
        self.step_hook: Any = None  # called with the TrainingState after every optimizer step (tests use it)
        self.record: dict[str, Any] | None = None  # config.json, written with the first saved state

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.cfg.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        return model

    def steps_per_epoch(self) -> int:
        """Optimizer steps in a whole epoch of this rank (the loader's length shrinks while resuming mid-epoch)."""
        share, batch = -(-len(self.stage.train_set) // self.world.size), self.cfg.batch_size
        loads = share // batch if self.train_loader.drop_last else -(-share // batch)
        return loads * self.per_item

    # ---- resume ---------------------------------------------------------------------------------------------
    def restore(self) -> None:
        model_t, optim_t, saved = run_dir.load_resume(self.run)
        self.model.load_state_dict(model_t)
        self.optimizer.load_state_dict(run_dir.optimizer_state(optim_t, saved["param_groups"]))
        if self.plateau is not None and saved.get("plateau"):
            self.plateau.load_state_dict(saved["plateau"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.state = TrainingState(**saved["progress"])
        rng_state.restore(saved["rng"])

    def _save_resume(self) -> None:
        if not self.world.main:
            return
        state = {
            "progress": asdict(self.state),
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state.capture(),
            "data_order": {"seed": self.cfg.seed, "epoch": self.state.epoch, "batches_done": self.state.step},
        }
        self._write_record()
        run_dir.save_resume(self.run, self.model, self.optimizer, state)

    def _write_record(self) -> None:
        if self.record is not None and self.world.main:
            run_dir.write_config(self.run, self.record)
            self.record = None

    # ---- one epoch ------------------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        if self.plateau is None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr_for_epoch(self.cfg.lr, self.state.epoch)
        return float(self.optimizer.param_groups[0]["lr"])

    def _train_epoch(self, stop: StopRequest, report: Any) -> bool:
        """Train until the epoch ends (True) or max-steps is reached (False). Raises on a stop or a bad loss."""
        s, cfg = self.state, self.cfg
        loaded, skip = divmod(s.step, self.per_item)  # loader batches fully used, sub-batches done in the next
        self.train_sampler.set_epoch(s.epoch, start=loaded * cfg.batch_size)
        self.net.train()
        if cfg.max_steps is not None and s.global_step >= cfg.max_steps:
            return False
        start = time.perf_counter()
        for batch in _steps(self.train_loader, self.per_item, skip):
            batch = _to(batch, self.device, self.channels_last)
            with torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
            ):
                parts = self.stage.task.train_step(self.net, batch, epoch=s.epoch, step=s.step)
            loss = parts["loss"]
            stop_now, bad = any_rank(self.world, [stop.requested, not bool(torch.isfinite(loss))], self.device)
            if bad:
                raise RunFailure(f"non-finite training loss at epoch {s.epoch}, step {s.step + 1}; {self._kept()}")
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            n = int(batch["image"].shape[0])
            for key, value in parts.items():
                s.sums[key] = s.sums.get(key, 0.0) + float(value.detach()) * n
            s.samples += n
            s.step += 1
            s.global_step += 1
            report(s, s.seconds + time.perf_counter() - start)
            if self.step_hook is not None:
                self.step_hook(s)
            if stop_now:
                s.seconds += time.perf_counter() - start
                self._save_resume()
                raise Interrupted(
                    f"stopped by {stop.signal_name or 'a signal'} at epoch {s.epoch}, step {s.step}; resumable state "
                    f"saved: continue with --resume {self.run}"
                )
            if cfg.max_steps is not None and s.global_step >= cfg.max_steps:
                s.seconds += time.perf_counter() - start
                return False
        s.seconds += time.perf_counter() - start
        return True

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Per-sample outputs from every rank, the sampler's padding dropped, then the task's metrics."""
        self.val_sampler.set_epoch(self.state.epoch)
        self.net.eval()
        model = cast(nn.Module, self.net.module) if self.world.distributed else self.net  # DDP's wrapped model
        indices: list[np.ndarray] = []
        outputs: dict[str, list[np.ndarray]] = {}
        for batch in self.val_loader:
            batch = _to(batch, self.device, self.channels_last)
            with torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
            ):
                out = self.stage.task.val_step(model, batch)
            indices.append(batch["index"].cpu().numpy())
            for key, value in out.items():
                outputs.setdefault(key, []).append(value.float().cpu().numpy())
        local = (np.concatenate(indices), {k: np.concatenate(v) for k, v in outputs.items()})
        gathered = gather_objects(self.world, local)
        index = np.concatenate([g[0] for g in gathered])
        unique, first = np.unique(index, return_index=True)
        merged = {k: np.concatenate([g[1][k] for g in gathered])[first] for k in local[1]}
        return self.stage.task.metrics(merged, unique)

    def _kept(self) -> str:
        """What a run that stops on a bad loss leaves behind, and what to try."""
        kept = [name for name in (RunDir.LAST, RunDir.MODEL) if (self.run / name).is_file()]
        where = (
            f"the last good weights are in {self.run} ({', '.join(kept)})"
            if kept
            else "no epoch had finished, so no weights were kept"
        )
        return f"stopped; {where}. Try a lower --lr (a new run: a resume keeps its settings)"

    # ---- epoch end ------------------------------------------------------------------------------------------
    def _end_epoch(self, lr: float, metrics: dict[str, float], *, val_seconds: float) -> dict[str, Any]:
        """History row (seconds: training and validation; images_per_s: training), scheduler, checkpoints."""
        s = self.state
        if not math.isfinite(metrics["val_loss"]):
            raise RunFailure(f"non-finite validation loss at epoch {s.epoch}; {self._kept()}")
        row: dict[str, Any] = {
            "epoch": s.epoch,
            "lr": lr,
            "seconds": round(s.seconds + val_seconds, 3),
            "images_per_s": round(s.samples / s.seconds, 2) if s.seconds > 0 else math.nan,
            "train_loss": s.sums.get("loss", math.nan) / max(s.samples, 1),
        }
        for column in self.stage.task.train_columns():
            row[column] = s.sums.get(column.removeprefix("train_"), math.nan) / max(s.samples, 1)
        row.update(metrics)
        if self.plateau is not None:
            self.plateau.step(metrics["val_loss"])
        improved_loss = metrics["val_loss"] < s.best_loss
        auc = metrics.get("val_auc_mean", math.nan)
        improved_auc = not math.isnan(auc) and auc > s.best_auc
        s.best_loss = min(s.best_loss, metrics["val_loss"])
        s.best_auc = max(s.best_auc, auc) if not math.isnan(auc) else s.best_auc
        keep = improved_auc if self.stage.keep == "auc" else improved_loss
        if keep:
            s.best_epoch = s.epoch
        s.history.append(row)
        if self.world.main:
            self._write_record()
            config = {**self.stage.config, "epoch": s.epoch}
            for name in (RunDir.LAST, RunDir.MODEL) if keep else (RunDir.LAST,):
                save_model(
                    self.run / name,
                    self.model,
                    kind=self.stage.kind,
                    labels=self.stage.labels,
                    input_spec=self.stage.geometry.to_json(),
                    config=config,
                )
            run_dir.write_history(self.run, s.history, self.columns)
        return row

    def fit(self, report_epoch: Any = None) -> list[dict[str, Any]]:
        """Train from the current state to the last epoch (or max-steps)."""
        from cxrtool.progress import progress

        s, cfg = self.state, self.cfg
        if cfg.max_steps == 0 and self.world.main:
            warn("--max-steps 0: no training step; epoch 1 validates the starting weights and saves them")
        with StopRequest() as stop:
            while s.epoch <= cfg.epochs:
                lr = self._set_lr()
                total = self.steps_per_epoch()
                label = f"epoch {s.epoch}/{cfg.epochs}"
                with progress(label, total, enabled=self.world.main) as advance:
                    advance(s.step)

                    def report(st: TrainingState, elapsed: float) -> None:
                        rate = st.samples / elapsed if elapsed > 0 else 0.0
                        advance(1, info=f"loss {st.sums.get('loss', 0.0) / max(st.samples, 1):.4f}  {rate:.0f} img/s")

                    finished = self._train_epoch(stop, report)
                val_start = time.perf_counter()
                metrics = self.validate()
                row = self._end_epoch(lr, metrics, val_seconds=time.perf_counter() - val_start)
                if report_epoch is not None and self.world.main:
                    report_epoch(row)
                s.epoch += 1
                s.step, s.sums, s.samples, s.seconds = 0, {}, 0, 0.0
                self._save_resume()
                barrier(self.world)
                if not finished:
                    break
        return s.history
