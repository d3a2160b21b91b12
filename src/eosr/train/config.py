"""The training configuration: a TOML file validated with pydantic; every error is one line.

Relative paths in the file are resolved against the file's folder; ``$VARS`` and ``~`` are expanded.
A data path ``sample:NAME/REST`` names a file of a built-in real sample (:func:`eosr.data.samples.path`):
it stays as written in the config (so the config hash does not depend on the machine) and is resolved
when the data is read. See ``configs/*.toml`` for examples.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eosr.errors import ConfigError, DataError

_M = TypeVar("_M", bound=BaseModel)

#: Upper bounds of the model options that size the network (docs/conventions.md, "Limits and guards"):
#: feature channels and blocks. Numbers in a config are finite everywhere (no ``nan`` / ``inf``).
MAX_WIDTH = 1024
MAX_DEPTH = 256
_WIDTH_KEYS = ("channels", "n_feats", "features")
_DEPTH_KEYS = ("n_blocks", "blocks", "fuse_blocks")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


class ModelCfg(_Strict):
    """Architecture by registry name plus factory options (e.g. ``global_skip = true``)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    init: str | None = None  # start from these weights (shipped name or checkpoint): fine-tuning

    @field_validator("options")
    @classmethod
    def _sizes(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, x in v.items():
            if isinstance(x, float) and not math.isfinite(x):
                raise ValueError(f"option {k} must be finite, got {x}")
            hi = MAX_WIDTH if k in _WIDTH_KEYS else MAX_DEPTH if k in _DEPTH_KEYS else None
            if hi is not None and (not isinstance(x, int) or isinstance(x, bool) or not 1 <= x <= hi):
                raise ValueError(f"option {k} must be an integer in [1, {hi}], got {x!r}")
        return v


class SourceCfg(_Strict):
    """One data source.

    Wald kinds (HR = the real image, LR = its degradation through the sensor operator):
    ``hvn2_mat`` (S2 .mat scene, 10 m bands), ``eopatch`` (eo-learn REFERENCE_SCENES.npy folder, one
    image per date in ``dates``), ``geotiff`` (one multi-band file or one file per band in ``files``,
    DN x ``dn_scale`` + ``dn_offset``), ``s2_folder`` (a BigEarthNet-style band folder).
    ``window`` = [row0, row1, col0, col1] (HR px) crops the image first, so one file can give
    several locations. ``location`` names the place (default: the file name); ``split`` forces the
    split of this location (train / val / test), else ``data.split_fractions`` decides by location.
    """

    kind: Literal["hvn2_mat", "eopatch", "geotiff", "s2_folder"]
    path: str | None = None
    files: list[str] | None = None
    dates: list[int] | None = None
    window: tuple[int, int, int, int] | None = None
    location: str | None = None
    split: Literal["train", "val", "test"] | None = None
    dn_scale: float = 1e-4
    dn_offset: float = 0.0

    @model_validator(mode="after")
    def _paths(self) -> SourceCfg:
        if self.dn_scale == 0:
            raise ValueError("dn_scale must not be 0")
        if self.kind == "geotiff" and not (self.files or self.path):
            raise ValueError("a geotiff source needs 'path' or 'files'")
        if self.kind != "geotiff" and not self.path:
            raise ValueError(f"a {self.kind} source needs 'path'")
        if self.window is not None:
            r0, r1, c0, c1 = self.window
            if not (0 <= r0 < r1 and 0 <= c0 < c1):
                raise ValueError(f"window must be [row0, row1, col0, col1] with row0 < row1: {list(self.window)}")
        return self


class DataCfg(_Strict):
    """Sensor, bands and scale of the Wald protocol, the sources and the location split."""

    sensor: str = "sentinel2"
    bands: list[str]
    scale: int = Field(2, ge=2, le=8)
    wald: bool = True
    sources: list[SourceCfg] = Field(min_length=1)
    split_fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    split_seed: int = Field(0, ge=0)
    max_invalid: float = Field(0.0, ge=0.0, le=1.0)
    #: PSF augmentation: each training step draws one operator from the grid MTF_b x f, f in
    #: ``mtf_jitter_steps`` values evenly spaced over [low, high], in each form of ``mtf_jitter_modes``
    #: ("wald" extra blur or "full" sensor PSF), degrades the HR with it and gives it to the model's
    #: back-projection skip (``set_operator``). None: the one catalog operator.
    mtf_jitter: tuple[float, float] | None = None
    mtf_jitter_steps: int = Field(7, ge=1, le=101)
    mtf_jitter_modes: list[Literal["wald", "full"]] | None = None

    @model_validator(mode="after")
    def _jitter(self) -> DataCfg:
        j = self.mtf_jitter
        if j is not None and not (0 < j[0] <= j[1] <= 10):
            raise ValueError(f"mtf_jitter must be [low, high] with 0 < low <= high, got {list(j)}")
        if self.mtf_jitter_modes is not None and not self.mtf_jitter_modes:
            raise ValueError("mtf_jitter_modes must name at least one of 'wald', 'full'")
        return self


class NoiseCfg(_Strict):
    """Noise augmentation: each training patch gets Gaussian LR noise of sigma ~ U(min, max)
    (sigma = 0 with probability ``p_clean``), drawn from the seed, epoch and step."""

    sigma_min: float = Field(0.0, ge=0.0, le=1.0)
    sigma_max: float = Field(0.0, ge=0.0, le=1.0)
    p_clean: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _order(self) -> NoiseCfg:
        if self.sigma_max < self.sigma_min:
            raise ValueError(f"noise sigma_max ({self.sigma_max}) < sigma_min ({self.sigma_min})")
        return self


class RadiometricCfg(_Strict):
    """Radiometric augmentation: each training patch and band gets HR' = a HR + b and LR' = a LR + b
    with a ~ U(gain) and b ~ U(offset) (reflectance); exact for the linear, constant-preserving
    operator (D(a x + b) = a D(x) + b). Makes a model robust to level differences such as TOA (L1C)
    versus surface (L2A) reflectance. Off by default."""

    gain: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    @model_validator(mode="after")
    def _order(self) -> RadiometricCfg:
        if not (0 < self.gain[0] <= self.gain[1]) or self.offset[0] > self.offset[1]:
            raise ValueError(f"radiometric gain must be 0 < low <= high and offset low <= high, got "
                             f"{self.gain}, {self.offset}")
        return self


class LossCfg(BaseModel):
    """One loss term: ``name``, ``weight`` and the term's options (checked by eosr.losses.build_loss)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str
    weight: float = Field(1.0, ge=0.0)


class OptimCfg(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.9, ge=0.0)
    grad_clip: float | None = Field(None, gt=0.0)


class ScheduleCfg(_Strict):
    """Learning-rate schedule as a pure function of the global step (so resuming needs no state)."""

    name: Literal["constant", "cosine", "step"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0.0)
    step_size: int = Field(1000, ge=1)  # "step": multiply by gamma every step_size steps
    gamma: float = Field(0.5, gt=0.0, le=1.0)


class EarlyStopCfg(_Strict):
    """Stop when the monitored validation metric has not improved by ``min_delta`` for ``patience`` epochs."""

    metric: str = "psnr"
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0.0)


class ValidationCfg(_Strict):
    """Validation: PSNR etc. at each LR noise level (fixed seed); the monitored value is their mean."""

    noise_sigmas: list[float] = Field(default_factory=lambda: [0.0])
    max_patches: int = Field(0, ge=0)  # 0 = all

    @field_validator("noise_sigmas")
    @classmethod
    def _nonneg(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 <= s <= 1 for s in v):
            raise ValueError("noise_sigmas must be a non-empty list of values in [0, 1]")
        return v


class TrainConfig(_Strict):
    """The whole ``eosr train`` configuration."""

    name: str = "model"
    seed: int = Field(0, ge=0)
    epochs: int = Field(10, ge=1, le=100_000)
    steps_per_epoch: int = Field(0, ge=0, le=10_000_000)  # 0 = one pass over the training patches
    batch_size: int = Field(16, ge=1, le=1024)
    patch: int = Field(64, ge=4, le=2048)  # HR px
    stride: int | None = Field(None, ge=1, le=2048)  # HR px between training patches (default: patch / 2)
    val_patch: int | None = Field(None, ge=4, le=4096)
    augment: bool = True  # random flips and 90-degree rotations (valid for an isotropic PSF)
    threads: int = Field(2, ge=1, le=256)
    checkpoint_every: int = Field(0, ge=0, le=10_000_000)  # steps between resume states (0 = end of epoch only)
    progress: bool = True
    normalise: bool = True  # per-band mean/std of the training HR become the model's normalisation
    output: str = "runs/model"
    model: ModelCfg
    data: DataCfg
    losses: list[LossCfg] = Field(min_length=1)
    optimizer: OptimCfg = Field(default_factory=lambda: OptimCfg.model_validate({}))
    schedule: ScheduleCfg = Field(default_factory=lambda: ScheduleCfg.model_validate({}))
    noise: NoiseCfg = Field(default_factory=lambda: NoiseCfg.model_validate({}))
    radiometric: RadiometricCfg = Field(default_factory=lambda: RadiometricCfg.model_validate({}))
    early_stopping: EarlyStopCfg | None = None
    validation: ValidationCfg = Field(default_factory=lambda: ValidationCfg.model_validate({}))

    @model_validator(mode="after")
    def _patch(self) -> TrainConfig:
        r = self.data.scale
        for name in ("patch", "stride", "val_patch"):
            v = getattr(self, name)
            if v is not None and v % r:
                raise ValueError(f"{name} ({v}) must be a multiple of the scale {r}")
        return self

    def loss_specs(self) -> list[dict[str, Any]]:
        """The loss terms as plain dicts for :func:`eosr.losses.build_loss`."""
        return [t.model_dump() for t in self.losses]


def training_memory_bytes(cfg: TrainConfig) -> int:
    """A rough peak-memory estimate of training (bytes): activations kept for the backward pass,
    2 x batch x width x (patch / r)^2 x layers float32, plus weights, gradients and Adam's two moments,
    4 x 9 width^2 x layers float32; width = the ``channels``/``n_feats``/``features`` option (default 64),
    layers = 4 x the ``n_blocks``/``blocks`` option + 8 (default 40). Compared with the free memory by
    ``eosr train`` before any data is read (docs/conventions.md, "Limits and guards")."""
    o = cfg.model.options
    width = next((int(o[k]) for k in _WIDTH_KEYS if k in o), 64)
    depth = next((int(o[k]) for k in _DEPTH_KEYS if k in o), None)
    layers = 40 if depth is None else 4 * depth + 8
    lr_px = (max(cfg.patch, cfg.val_patch or 0) // cfg.data.scale) ** 2
    return 4 * (2 * cfg.batch_size * width * lr_px * layers + 4 * 9 * width * width * layers)


def _one_line(e: ValidationError, where: str) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ())) or "config"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    extra = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {loc}: {msg}{extra}"


def _resolve(p: str, base: Path) -> str:
    from eosr.data.samples import PREFIX, info, resolve

    try:
        if p.startswith(PREFIX):  # kept as written; checked here, resolved when read
            info(p.removeprefix(PREFIX).partition("/")[0])
            return p
        return resolve(p, base)
    except DataError as e:
        raise ConfigError(str(e)) from None


def parse_config(doc: dict[str, Any], base: str | os.PathLike[str] = ".", where: str = "config") -> TrainConfig:
    """Validate a config dict; relative paths resolve against ``base``. Raises a one-line ConfigError."""
    try:
        cfg = TrainConfig.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(_one_line(e, where)) from None
    b = Path(base)
    for s in cfg.data.sources:
        if s.path:
            s.path = _resolve(s.path, b)
        if s.files:
            s.files = [_resolve(f, b) for f in s.files]
    cfg.output = _resolve(cfg.output, b)
    if cfg.model.init and ("/" in cfg.model.init or cfg.model.init.startswith(".")):  # a path, not a name
        cfg.model.init = _resolve(cfg.model.init, b)
    from eosr.losses.combine import parse_terms

    try:
        parse_terms(cfg.loss_specs())
    except ConfigError as e:
        raise ConfigError(f"{where}: losses: {e}") from None
    return cfg


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and validate a TOML config file (one-line :class:`ConfigError` on any problem)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML ({e})") from None
    return parse_config(doc, p.parent, where=p.name)


def config_kind(path: str | Path) -> str | None:
    """The top-level ``kind`` of a training TOML (``"s2_multires"``, ``"misr"``; None for the single-image
    trainer or an unreadable file, which the ordinary loader then reports)."""
    try:
        kind = tomllib.loads(Path(path).read_text()).get("kind")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return kind if isinstance(kind, str) else None


def load_kind_config(path: str | Path, model: type[_M], doc: dict[str, Any] | None = None) -> _M:
    """Parse a training TOML of a special ``kind`` into its pydantic ``model`` (``output`` resolved from the
    file's folder); a problem raises :class:`ConfigError` in one line naming the file."""
    p = Path(path)
    if doc is None:
        try:
            doc = tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{p}: {e}") from None
    d = dict(doc)
    if "output" in d:
        d["output"] = _resolve(str(d["output"]), p.parent)
    try:
        return model.model_validate(d)
    except ValidationError as e:
        raise ConfigError(_one_line(e, str(p))) from None
