"""The deterministic, resumable CPU training loop of ``eosr train``.

Determinism: every random choice is a pure function of (seed, epoch, step): the epoch's patch order
comes from ``numpy.random.default_rng([seed, epoch])``, each step's augmentation and noise from a
torch generator seeded with ``seed * 1_000_003 + global_step``, and the global torch seed (dropout)
is reset to the same value before each step. The learning rate is a pure function of the global step.
So a run resumed from a saved state (model, optimiser, counters, history) repeats the uninterrupted
run exactly on the same machine and thread count.

Resume state: ``<output>/state.pt`` (``torch.save`` of tensors and plain values, read back with
``weights_only=True``), written atomically every ``checkpoint_every`` steps and at each epoch end.
Model checkpoints: ``<output>/best.{safetensors,json}`` (best validation score) and, at the end,
``<output>/<name>.{safetensors,json}`` (= the best weights) via :func:`eosr.models.save_checkpoint`.
Training history: ``<output>/history.json`` = ``{"schema_version", "history": [one record per epoch]}``.

The output folder must be new, empty or a run folder of eosr (it holds eosr's ``split_manifest.json``);
any other populated folder is refused unless ``overwrite`` (CLI ``--overwrite``). A ``state.pt`` that
cannot be resumed (foreign, truncated, edited) is a one-line error naming it and ``--restart``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr._schema import stamped
from eosr.errors import ConfigError, DataError
from eosr.models.checkpoint import is_run_folder  # noqa: F401  (also re-exported for train callers)
from eosr.train.config import TrainConfig
from eosr.train.sources import Splits, build_datasets
from eosr.train.validate import HIGHER_IS_BETTER, evaluate_model, monitored

STATE_FILE = "state.pt"
_RESUME_IGNORES = ("output", "progress", "epochs", "checkpoint_every", "threads", "early_stopping")


@dataclass
class TrainResult:
    """What a run produced: the trained (best) model, per-epoch history and the checkpoint path."""

    model: Any
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    checkpoint: Path
    steps: int
    stopped_early: bool
    resumed_from_step: int = 0
    splits: Splits | None = field(default=None, repr=False)


#: Config fields added after weights were shipped (fine-tuning, PSF range), with their defaults: when ALL hold
#: their defaults they are left out of the hash, so the hashes of configs written before them still hold.
_LATER_FIELDS = {("model", "init"): None, ("data", "mtf_jitter"): None, ("data", "mtf_jitter_steps"): 7,
                 ("data", "mtf_jitter_modes"): None}


def config_hash(cfg: TrainConfig) -> str:
    """SHA-256 of everything that changes the result (not output path, epochs, threads, progress)."""
    d = cfg.model_dump(mode="json", exclude=set(_RESUME_IGNORES))
    if all(d[sec].get(key) == default for (sec, key), default in _LATER_FIELDS.items()):
        for sec, key in _LATER_FIELDS:
            d[sec].pop(key, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then constant, cosine or step decay."""
    o, s = cfg.optimizer, cfg.schedule
    if s.warmup_steps and step < s.warmup_steps:
        return o.lr * (step + 1) / s.warmup_steps
    if s.name == "constant":
        return o.lr
    if s.name == "step":
        return o.lr * s.gamma ** ((step - s.warmup_steps) // s.step_size)
    span = max(1, total_steps - s.warmup_steps)
    t = min(1.0, (step - s.warmup_steps) / span)
    return s.min_lr + 0.5 * (o.lr - s.min_lr) * (1.0 + math.cos(math.pi * t))


def _optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def build_model(cfg: TrainConfig, splits: Splits) -> Any:
    """The configured architecture (seeded init) with the training HR's per-band normalisation."""
    from eosr.models.registry import get_model

    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model.name, scale=cfg.data.scale, bands=list(splits.bands), **cfg.model.options)
    if splits.psf_train and getattr(model, "operator", None) is None:
        raise ConfigError(f"data.mtf_jitter needs a model whose physics takes the operator (bp_skip); "
                          f"{cfg.model.name} has none")
    if cfg.model.init:  # fine-tune: the given weights (normalisation included) replace the initialisation
        from eosr.models.registry import resolve_model

        src = resolve_model(cfg.model.init, scale=cfg.data.scale, bands=list(splits.bands))
        try:
            model.load_state_dict(src.state_dict())
        except RuntimeError as e:
            raise ConfigError(f"model.init {cfg.model.init!r} does not fit {cfg.model.name} with these "
                              f"options: {str(e).splitlines()[0]}") from None
        return model
    if cfg.normalise and getattr(model, "n_bands", None) is not None:
        hr = splits.train_hr.double()
        mean = torch.nanmean(hr.transpose(0, 1).reshape(hr.shape[1], -1), dim=1)
        std = torch.sqrt(torch.nanmean((hr.transpose(0, 1).reshape(hr.shape[1], -1) - mean[:, None]) ** 2, dim=1))
        model.set_normalisation(mean.float(), std.clamp(min=1e-6).float())
    return model


def augment(lr: torch.Tensor, hr: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample random flips / 90-degree rotations (the 8 dihedral transforms), same for LR and HR.

    Valid for the pixel-is-area grid with an isotropic PSF: the transforms map LR block centres to
    LR block centres.
    """
    code = torch.randint(0, 8, (lr.shape[0],), generator=g)
    lo, ho = [], []
    for i in range(lr.shape[0]):
        c = int(code[i])
        a, b = lr[i], hr[i]
        if c & 1:
            a, b = a.flip(-1), b.flip(-1)
        if c & 2:
            a, b = a.flip(-2), b.flip(-2)
        if c & 4:
            a, b = a.transpose(-2, -1), b.transpose(-2, -1)
        lo.append(a)
        ho.append(b)
    return torch.stack(lo).contiguous(), torch.stack(ho).contiguous()


@contextlib.contextmanager
def single_pass(model: torch.nn.Module) -> Iterator[None]:
    """Validate with one forward pass: an inference-time ``self_ensemble`` (8 passes) is switched off
    meanwhile, so a config that ships a self-ensembling model trains and selects its epoch exactly as
    the same config without it."""
    flag = getattr(model, "self_ensemble", None)
    if flag:
        model.self_ensemble = False  # type: ignore[assignment]
    try:
        yield
    finally:
        if flag:
            model.self_ensemble = flag  # type: ignore[assignment]


def radiometric(lr: torch.Tensor, hr: torch.Tensor, cfg: TrainConfig, g: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-band a x + b on LR and HR alike (``cfg.radiometric``; identity by default)."""
    rc = cfg.radiometric
    if rc.gain == (1.0, 1.0) and rc.offset == (0.0, 0.0):
        return lr, hr
    shape = (lr.shape[0], lr.shape[1], 1, 1)
    a = rc.gain[0] + (rc.gain[1] - rc.gain[0]) * torch.rand(shape, generator=g, dtype=lr.dtype)
    b = rc.offset[0] + (rc.offset[1] - rc.offset[0]) * torch.rand(shape, generator=g, dtype=lr.dtype)
    return a * lr + b, a * hr + b


def add_noise(lr: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """Per-sample Gaussian noise sigma ~ U(sigma_min, sigma_max), zero with probability p_clean."""
    nz = cfg.noise
    if nz.sigma_max <= 0:
        return lr
    b = lr.shape[0]
    sig = nz.sigma_min + (nz.sigma_max - nz.sigma_min) * torch.rand(b, generator=g, dtype=lr.dtype)
    if nz.p_clean > 0:
        sig = torch.where(torch.rand(b, generator=g, dtype=lr.dtype) < nz.p_clean, 0.0, sig)
    return lr + sig[:, None, None, None] * torch.randn(lr.shape, generator=g, dtype=lr.dtype)


def _validate(model: Any, sp: Splits, sigmas: list[float]) -> dict[str, dict[str, float]]:
    """Validation metrics; with PSF augmentation one set per operator form ("wald/sigma=0", ...), the model
    told that form's catalog operator, and the model given back the splits' operator afterwards."""
    if not sp.val:
        return {}
    if not sp.psf_val:
        return evaluate_model(model, sp.val, sp.operator, sigmas)
    out: dict[str, dict[str, float]] = {}
    for mode, op, items in sp.psf_val:
        model.set_operator(op)
        out |= {f"{mode}/{k}": v for k, v in evaluate_model(model, items, op, sigmas).items()}
    model.set_operator(sp.operator)
    return out


def _epoch_order(seed: int, epoch: int, n: int, steps: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    need = steps * batch
    reps = [rng.permutation(n) for _ in range(max(1, math.ceil(need / n)))]
    return np.concatenate(reps)[:need]


#: What a foreign, truncated or hand-edited state.pt raises while being read or applied.
_STATE_ERRORS = (OSError, EOFError, RuntimeError, KeyError, IndexError, TypeError, ValueError, AttributeError,
                 pickle.UnpicklingError)


def _unusable(path: Path, e: BaseException) -> DataError:
    reason = " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
    if isinstance(e, KeyError):
        reason = f"no {e.args[0]!r} entry" if e.args else "a missing entry"
    reason = reason[:160] + ("..." if len(reason) > 160 else "")
    return DataError(f"{path} is not a usable eosr training state ({reason}); start over with --restart")


def _load_state(path: Path) -> dict[str, Any]:
    """``state.pt`` as a dict (tensors and plain values only), or a one-line :class:`DataError`."""
    try:
        st = torch.load(path, weights_only=True)
    except _STATE_ERRORS:  # torch's own message is many lines about weights_only
        raise _unusable(path, ValueError("torch.load(weights_only=True) cannot read it")) from None
    if not isinstance(st, dict):
        raise _unusable(path, TypeError(f"a {type(st).__name__}, not a dict"))
    if "config_hash" not in st:
        raise _unusable(path, KeyError("config_hash"))
    return st


def restore_state(path: Path, chash: str, model: Any, opt: Any) -> dict[str, Any]:
    """Resume a run from ``state.pt``: load the model and optimiser states and return the counters
    (``epoch``, ``step_in_epoch``, ``global_step``, ``best``, ``best_epoch``, ``bad_epochs``) and the
    ``history``; a state of another configuration or an unusable one is a one-line error."""
    st = _load_state(path)
    if st.get("config_hash") != chash:
        raise ConfigError(f"{path} belongs to another configuration: use a new output or --restart")
    try:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        out: dict[str, Any] = {k: int(st[k]) for k in ("epoch", "global_step", "best_epoch", "bad_epochs")}
        out["step_in_epoch"] = int(st.get("step_in_epoch", 0))
        out["best"] = float(st["best"])
        out["history"] = json.loads(st["history"])
        if not isinstance(out["history"], list) or not all(isinstance(h, dict) for h in out["history"]):
            raise TypeError("history is not a list of epoch records")
    except _STATE_ERRORS as e:
        raise _unusable(path, e) from None
    return out


def check_run_folder(out: Path, *, overwrite: bool = False) -> None:
    """Refuse (:class:`DataError`) an output that is a file, or a non-empty folder that is not a run
    folder of eosr (:func:`is_run_folder`) unless ``overwrite``: then eosr's files in it are replaced
    and the others left alone. Temporaries of a killed eosr run do not count."""
    if out.exists() and not out.is_dir():
        raise DataError(f"training output must be a folder, got a file: {out}")
    if overwrite or not out.is_dir() or is_run_folder(out):
        return
    from eosr.io.raster import is_eosr_temporary

    content = sorted(p.name for p in out.iterdir() if not is_eosr_temporary(p.name))
    if content:
        raise DataError(f"{out} is not empty and not an eosr training folder ({', '.join(content[:3])}"
                        f"{', ...' if len(content) > 3 else ''}): choose a new output or pass --overwrite")


def _save_state(path: Path, state: dict[str, Any]) -> None:
    from eosr.io.raster import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _card(cfg: TrainConfig, splits: Splits, history: list[dict[str, Any]], best_epoch: int) -> dict[str, Any]:
    return {
        "name": cfg.name,
        "sensor_operator": splits.operator.describe() | {"sensor": cfg.data.sensor, "wald": cfg.data.wald},
        "training": {
            "config": cfg.model_dump(mode="json", exclude={"output"}),  # where it ran is not provenance
            "config_hash": config_hash(cfg),
            "split_manifest": splits.manifest(),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
        },
        "metrics": {"validation": history[best_epoch - 1]["val"] if best_epoch >= 1 else None},
    } | ({"psf_range": psf_range(cfg)} if cfg.data.mtf_jitter else {}) | (
        {"fine_tuned_from": cfg.model.init} if cfg.model.init else {})


def psf_range(cfg: TrainConfig) -> dict[str, Any]:
    """The PSFs a ``data.mtf_jitter`` run was trained over (stated in the card): MTF factor range, grid,
    operator forms and each form's per-band MTF at Nyquist and PSF sigma (HR px) at both ends."""
    from eosr.train.sources import jitter_grid, scaled_sensor_operator

    d = cfg.data
    grid = jitter_grid(cfg)
    lo, hi = d.mtf_jitter or (1.0, 1.0)
    ends: dict[str, Any] = {}
    for mode in dict.fromkeys(m for m, _ in grid):
        ops = [scaled_sensor_operator(d.sensor, d.bands, d.scale, f, wald=mode == "wald") for f in (lo, hi)]
        ends[mode] = {"sigma_hr_px": [list(o.describe()["sigma_hr_px"]) for o in ops],
                      "mtf_at_lr_nyquist": [list(o.describe()["mtf_at_lr_nyquist"]) for o in ops]}
    return {"mtf_factor": [lo, hi], "factors": sorted({f for _, f in grid}), "forms": list(ends),
            "per_step": "one operator per training step, drawn uniformly from the grid", "ends": ends}


def train(
    cfg: TrainConfig,
    *,
    resume: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
    splits: Splits | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` (see the module docstring). Resumes from ``<output>/state.pt``
    when ``resume`` and the state matches the config. ``on_step(global_step, loss)`` is called after each
    optimiser step (a hook for tests and progress); an exception there interrupts the run like a kill.
    A non-empty output folder that is not an eosr run folder is refused unless ``overwrite``
    (:func:`check_run_folder`); a ``state.pt`` that cannot be resumed is a one-line :class:`DataError`.
    """
    from tqdm import tqdm

    from eosr.data.splits import write_manifest
    from eosr.losses import build_loss
    from eosr.models.checkpoint import save_checkpoint

    say = log or (lambda m: print(m, file=sys.stderr))
    out = Path(cfg.output)
    check_run_folder(out, overwrite=overwrite)
    torch.set_num_threads(cfg.threads)
    sp = splits if splits is not None else build_datasets(cfg)
    out.mkdir(parents=True, exist_ok=True)  # after the data loaded: a config that fails leaves no folder
    write_manifest(out / "split_manifest.json", sp.locations, seed=cfg.data.split_seed,
                   fractions=cfg.data.split_fractions, samples={"train": sp.train_ids},
                   extra={"degradation": sp.operator.describe(), "val_images": [i.name for i in sp.val],
                          "test_images": [i.name for i in sp.test]})
    model = build_model(cfg, sp)
    loss_fn = build_loss(cfg.loss_specs(), operator=sp.operator)
    opt = _optimizer(cfg, model.parameters())
    n = int(sp.train_lr.shape[0])
    steps = cfg.steps_per_epoch or math.ceil(n / cfg.batch_size)
    total = steps * cfg.epochs
    es = cfg.early_stopping
    metric = es.metric if es else "psnr"
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"early_stopping.metric {metric!r} unknown; use {', '.join(HIGHER_IS_BETTER)}")
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    epoch, step0, gstep, best, best_epoch, bad = 1, 0, 0, -math.inf, 0, 0
    history: list[dict[str, Any]] = []
    chash = config_hash(cfg)
    state_path = out / STATE_FILE
    resumed = 0
    if resume and state_path.is_file():
        r = restore_state(state_path, chash, model, opt)
        epoch, step0, gstep = r["epoch"], r["step_in_epoch"], r["global_step"]
        best, best_epoch, bad, history = r["best"], r["best_epoch"], r["bad_epochs"], r["history"]
        resumed = gstep
        say(f"resumed from epoch {epoch}, step {step0} (global step {gstep})")
    stopped = bool(history and history[-1].get("stopped_early"))

    def state(ep: int, s_in: int) -> dict[str, Any]:
        return {"config_hash": chash, "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": ep,
                "step_in_epoch": s_in, "global_step": gstep, "best": best, "best_epoch": best_epoch,
                "bad_epochs": bad, "history": json.dumps(history)}

    while epoch <= cfg.epochs and not stopped:
        order = _epoch_order(cfg.seed, epoch, n, steps, cfg.batch_size)
        model.train()
        t0 = time.perf_counter()
        bar = tqdm(total=steps, initial=step0, desc=f"epoch {epoch}/{cfg.epochs}", disable=not cfg.progress,
                   leave=False, file=sys.stderr)
        run_loss = 0.0
        for s in range(step0, steps):
            idx = torch.from_numpy(order[s * cfg.batch_size : (s + 1) * cfg.batch_size])
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + gstep)
            torch.manual_seed(cfg.seed * 1_000_003 + gstep)
            lr_c, hr = sp.train_lr[idx], sp.train_hr[idx]
            if sp.psf_train:  # PSF augmentation: this step's operator degrades HR and drives the model's skip
                opk, lrk = sp.psf_train[int(torch.randint(len(sp.psf_train), (1,), generator=g))]
                lr_c = lrk[idx]
                model.set_operator(opk)
                loss_fn.operator = opk
            if cfg.augment:
                lr_c, hr = augment(lr_c, hr, g)
            lr_c, hr = radiometric(lr_c, hr, cfg, g)
            lr_in = add_noise(lr_c, cfg, g)
            for pg in opt.param_groups:
                pg["lr"] = lr_at(cfg, gstep, total)
            opt.zero_grad(set_to_none=True)
            if loss_fn.needs_log_scale:
                sr, ls = model(lr_in, return_logvar=True)
            else:
                sr, ls = model(lr_in), None
            loss, _ = loss_fn(sr, hr, lr_c, None, ls)
            loss.backward()
            if cfg.optimizer.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
            opt.step()
            gstep += 1
            lv = float(loss.detach())
            run_loss += lv
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.3g}")
            if cfg.checkpoint_every and gstep % cfg.checkpoint_every == 0 and s + 1 < steps:
                _save_state(state_path, state(epoch, s + 1))
            if on_step is not None:
                on_step(gstep, lv)
        bar.close()
        model.eval()
        with single_pass(model):
            val = _validate(model, sp, cfg.validation.noise_sigmas)
        score = monitored(val, metric) if val else -float(run_loss)
        rec: dict[str, Any] = {"epoch": epoch, "train_loss": run_loss / max(1, steps - step0), "val": val,
                               "score": score, "seconds": round(time.perf_counter() - t0, 2)}
        improved = sign * score > sign * best + (es.min_delta if es else 0.0) if best_epoch else True
        if improved:
            best, best_epoch, bad = score, epoch, 0
            save_checkpoint(model, out / "best", _card(cfg, sp, history + [rec], best_epoch))
        else:
            bad += 1
        if es and bad >= es.patience:
            rec["stopped_early"] = True
            stopped = True
        history.append(rec)
        say(f"epoch {epoch}: loss {rec['train_loss']:.5g}, val {metric} {score:.4f}"
            + (" (best)" if improved else "") + (" - early stop" if stopped else ""))
        epoch, step0 = epoch + 1, 0
        _save_state(state_path, state(epoch, 0))

    ck = out / cfg.name
    best_model = finish_run(out, ck, lambda: _card(cfg, sp, history, best_epoch), history)
    return TrainResult(best_model, history, best_epoch, best, ck, gstep, stopped, resumed, sp)


def run_epochs(cfg: Any, model: Any, opt: torch.optim.Optimizer, out: Path, chash: str, *,
               loss_at: Callable[[int, int], torch.Tensor], validate: Callable[[], dict[str, Any]],
               card: Callable[[list[dict[str, Any]], int], dict[str, Any]], say: Callable[[str], None],
               resume: bool = True, higher_is_better: bool = True, keep_epochs: bool = False,
               describe: Callable[[dict[str, Any]], str] | None = None,
               initial: Callable[[], float] | None = None) -> tuple[list[dict[str, Any]], int]:
    """The epoch loop of the task trainers (:mod:`eosr.train.misr`, :mod:`eosr.train.multires`).

    Each epoch: ``cfg.steps_per_epoch`` optimiser steps on ``loss_at(global_step, epoch)`` (torch seeded
    with ``cfg.seed * 1_000_003 + global_step``, learning rate :func:`lr_at`, gradients clipped at
    ``cfg.optimizer.grad_clip``), then ``validate()`` (its ``"score"``, higher or lower is better); the
    best epoch is saved as ``best`` (every epoch as ``epoch_NNN`` with ``keep_epochs``) with ``card(history,
    epoch)``; ``cfg.patience`` epochs without improvement stop the run; the state is saved at each epoch
    boundary and resumed from ``state.pt`` when ``resume`` and ``chash`` match. ``initial()``, on a fresh
    run, scores the untrained model as epoch 0 (it saves what it wants). ``describe(validation)``: the
    log line's validation part. Returns (history, best epoch)."""
    from eosr.models.checkpoint import save_checkpoint

    total = cfg.epochs * cfg.steps_per_epoch
    sign = 1.0 if higher_is_better else -1.0
    epoch, gstep, best, best_epoch, bad = 1, 0, -sign * math.inf, 0, 0
    history: list[dict[str, Any]] = []
    state_path = out / STATE_FILE
    if resume and state_path.is_file():
        r = restore_state(state_path, chash, model, opt)
        epoch, gstep = r["epoch"], r["global_step"]
        best, best_epoch, bad, history = r["best"], r["best_epoch"], r["bad_epochs"], r["history"]
        say(f"resumed at epoch {epoch} (global step {gstep})")
    elif initial is not None:
        best, best_epoch = initial(), 0
    stopped = bool(history and history[-1].get("stopped_early"))
    while epoch <= cfg.epochs and not stopped:
        model.train()
        t0 = time.perf_counter()
        run = 0.0
        for _ in range(cfg.steps_per_epoch):
            torch.manual_seed(cfg.seed * 1_000_003 + gstep)
            for pg in opt.param_groups:
                pg["lr"] = lr_at(cfg, gstep, total)
            opt.zero_grad(set_to_none=True)
            loss = loss_at(gstep, epoch)
            loss.backward()
            if cfg.optimizer.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
            opt.step()
            gstep += 1
            run += float(loss.detach())
        model.eval()
        v = validate()
        score = float(v["score"])
        rec: dict[str, Any] = {"epoch": epoch, "train_loss": run / cfg.steps_per_epoch, "val": v, "score": score,
                               "seconds": round(time.perf_counter() - t0, 2)}
        history.append(rec)
        if keep_epochs:
            save_checkpoint(model, out / f"epoch_{epoch:03d}", card(history, epoch))
        improved = sign * score > sign * best
        if improved:
            best, best_epoch, bad = score, epoch, 0
            save_checkpoint(model, out / "best", card(history, best_epoch))
        else:
            bad += 1
            if cfg.patience and bad >= cfg.patience:
                stopped = True
                rec["stopped_early"] = True
        said = describe(v) if describe is not None else f"val score {score:.4f}"
        say(f"epoch {epoch}: loss {rec['train_loss']:.5g}, {said}" + (" (best)" if improved else "")
            + f" [{rec['seconds']} s]")
        epoch += 1
        _save_state(state_path, {"config_hash": chash, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "epoch": epoch, "global_step": gstep, "best": best, "best_epoch": best_epoch,
                                 "bad_epochs": bad, "history": json.dumps(history)})
    return history, best_epoch


def finish_run(out: Path, stem: Path, card: Callable[[], dict[str, Any]], history: list[dict[str, Any]]) -> Any:
    """The end of every trainer's run: the best validation epoch (``out/best``) saved as ``stem``
    (``.safetensors`` + the JSON ``card()``) and ``out/history.json`` = ``{"schema_version", "history"}``,
    both atomically. Returns the best model."""
    from eosr.io.raster import atomic_path
    from eosr.models.checkpoint import load_checkpoint, save_checkpoint

    best_model = load_checkpoint(out / "best")
    save_checkpoint(best_model, stem, card())
    with atomic_path(out / "history.json") as tmp:
        tmp.write_text(json.dumps(stamped({"history": history}), indent=1, allow_nan=False) + "\n")
    return best_model


def trainer_main(prog: str, load: Callable[[str], Any], train: Callable[..., Path],
                 argv: list[str] | None = None) -> int:
    """``python -m PROG CONFIG [--overwrite]`` of a trainer (the same as ``eosr train CONFIG``): prints the
    checkpoint stem."""
    import argparse

    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("config")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    print(train(load(a.config), overwrite=a.overwrite))
    return 0
