"""Benchmark configuration: a TOML file validated with pydantic, checked completely before any work.

Example (``configs/benchmark_ben_x2.toml``)::

    name = "ben-x2"
    metrics = ["psnr", "ssim", "hr_fidelity"]   # optional; default: every metric the data allow

    [[datasets]]
    name = "ben"
    kind = "wald"                 # wald | pairs | lr | samples | reader
    path = "sample:bigearthnet_s2_examples"   # a built-in sample (eosr.data.samples), or a folder relative to this file
    sensor = "sentinel2"
    bands = ["B02", "B03", "B04", "B08"]
    scale = 2
    operator = "wald"             # wald | full (the old key 'psf' is a deprecated alias)

    [[methods]]
    name = "bicubic"              # registry model of the same name

    [[methods]]
    name = "theirs"
    folder = "sr_outputs"         # SR produced elsewhere: <folder>/<dataset>/<image>.tif or <folder>/<image>.tif

Every error is one line (:class:`eosr.errors.ConfigError`) naming the key, and typos get a suggestion.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eosr._deprecation import renamed_keys
from eosr.data.samples import resolve
from eosr.degrade.resolve import check_mode
from eosr.errors import ConfigError, DataError, EosrError

DatasetKind = Literal["wald", "pairs", "lr", "samples", "reader"]


class MethodConfig(BaseModel):
    """One SR method: a registry model (``model``, default: ``name``) or a ``folder`` of SR outputs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    model: str | None = None
    folder: Path | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    uncertainty: Literal["auto", "mc_dropout", "none"] = "auto"  # auto: the model's variance head, if any
    self_ensemble: bool = False  # a CNN's 8-pass geometric self-ensemble (default: one pass, as eosr sr)
    #: tell a CNN with a back-projection skip the dataset's operator (default: the operator of its card)
    tell_operator: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> MethodConfig:
        if self.model is not None and self.folder is not None:
            raise ValueError("give either 'model' or 'folder', not both")
        if self.folder is None and self.model is None:
            self.model = self.name
        return self

    @property
    def is_folder(self) -> bool:
        """Whether the SR images come from a folder produced elsewhere."""
        return self.folder is not None


class DatasetConfig(BaseModel):
    """One dataset.

    - ``wald``: real images at ``path`` (BigEarthNet-style band folders or multi-band GeoTIFFs) are the HR
      references; LR = D(HR) with the sensor operator (``operator = "wald"``: the extra blur sqrt(r^2 - 1)
      sigma for HR that already carries the sensor's MTF; ``"full"``: the LR sensor's whole PSF; the old
      key ``psf`` is accepted with a deprecation warning).
    - ``samples``: the same on the built-in BigEarthNet-S2 example patches (``eosr.data.samples``).
    - ``pairs``: ``path/hr/*.tif`` and ``path/lr/*.tif`` with matching names (real LR/HR pairs).
    - ``lr``: ``path/*.tif`` LR images only (no reference: only no-reference metrics apply).
    - ``reader``: ``reader = NAME`` of eosr's readers or of an installed package's entry point (group
      ``eosr.readers``; a dotted path ``package.module:function`` only with ``--allow-code``), called
      with ``options``; it yields ``(image_id, hr)`` pairs, dicts with ``id``, ``hr`` and optionally
      ``lr``, or :class:`eosr.data.sample.Sample` records (:mod:`eosr.benchmark.plugins`).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: DatasetKind = "wald"
    path: Path | None = None
    sensor: str = "sentinel2"
    bands: list[str] | None = None
    scale: int = Field(default=2, ge=1, le=16)
    operator: str = "wald"  # "wald", "full" or a sensor file (.toml, relative to the config)
    noise_sigma: float = Field(default=0.0, ge=0.0)
    dn_scale: float | None = None  # DN -> reflectance of the dataset's integer files (else resolved per file)
    dn_offset: float | None = None
    limit: int | None = Field(default=None, ge=1)
    reader: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        name = data.get("name") if isinstance(data, dict) else None
        return renamed_keys(data, {"psf": "operator"}, f"dataset {name!r}" if name else "dataset")

    @property
    def has_hr(self) -> bool:
        """Whether the dataset provides an HR reference."""
        return self.kind != "lr"


class BenchmarkConfig(BaseModel):
    """The whole benchmark."""

    model_config = ConfigDict(extra="forbid")

    name: str = "benchmark"
    methods: list[MethodConfig] = Field(min_length=1)
    datasets: list[DatasetConfig] = Field(min_length=1)
    metrics: list[str] | None = None
    baseline: str = "bicubic"
    rank_by: str | None = None
    data_range: float = Field(default=1.0, gt=0)
    bootstrap: int = Field(default=2000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = 0
    report: bool = True
    showcase: int = Field(default=0, ge=0)
    cache_dir: Path | None = None

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, v: list[MethodConfig]) -> list[MethodConfig]:
        names = [m.name for m in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate method name(s): {', '.join(dup)}")
        return v

    @field_validator("datasets")
    @classmethod
    def _unique_datasets(cls, v: list[DatasetConfig]) -> list[DatasetConfig]:
        names = [d.name for d in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate dataset name(s): {', '.join(dup)}")
        return v

    def hashable(self) -> dict[str, Any]:
        """The config as plain JSON data (paths as strings), for hashing and for the output folder."""
        return self.model_dump(mode="json")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "config"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = BenchmarkConfig
    for p in loc[:-1]:
        if isinstance(p, int):
            continue
        f = model.model_fields.get(p)
        if f is None:
            return []
        ann = f.annotation
        args = getattr(ann, "__args__", ())
        inner = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def format_validation_error(e: ValidationError, source: str = "config") -> str:
    """One line for the first problem of a pydantic error, with a 'did you mean' for unknown keys."""
    err = e.errors()[0]
    loc = tuple(err.get("loc", ()))
    where = _loc(loc)
    if err.get("type") == "extra_forbidden" and loc:
        key = str(loc[-1])
        near = difflib.get_close_matches(key, _fields_at(loc), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"{source}: unknown key {where!r}{hint}"
    if err.get("type") == "missing":
        return f"{source}: missing required key {where!r}"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    extra = f" (total {e.error_count()} problems)" if e.error_count() > 1 else ""
    return f"{source}: {where}: {msg}{extra}"


def parse_config(data: dict[str, Any], base_dir: str | Path = ".", source: str = "config") -> BenchmarkConfig:
    """Validate a config mapping; relative paths are resolved against ``base_dir``, ``sample:NAME`` paths
    through :func:`eosr.data.samples.resolve`."""
    try:
        cfg = BenchmarkConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None
    base = Path(base_dir)
    for d in cfg.datasets:
        if d.operator not in ("wald", "full"):  # a sensor / calibration file
            op_path = Path(d.operator)
            d.operator = str(op_path if op_path.is_absolute() else (base / op_path).resolve())
            try:
                check_mode(d.operator)
            except EosrError as e:
                raise ConfigError(f"{source}: datasets.{d.name}.operator: {e}") from None
        if d.path is not None:  # ``sample:NAME`` names a built-in real sample (eosr.data.samples)
            try:
                d.path = Path(resolve(str(d.path), base))
            except DataError as e:
                raise ConfigError(f"{source}: datasets.{d.name}.path: {e}") from None
    for m in cfg.methods:
        if m.folder is not None and not m.folder.is_absolute():
            m.folder = (base / m.folder).resolve()
        if m.model is not None:
            m.model = checkpoint_model_path(m.model, base)
    if cfg.cache_dir is not None and not cfg.cache_dir.is_absolute():
        cfg.cache_dir = (base / cfg.cache_dir).resolve()
    return cfg


CHECKPOINT_SUFFIXES = (".safetensors", ".json")


def checkpoint_model_path(model: str, base: Path) -> str:
    """A method ``model`` naming a checkpoint path (relative to the config file) as an absolute path:
    a ``.safetensors`` / ``.json`` file, a path with a folder part, or a bare name of a checkpoint stem or
    folder beside the config that is no registry name. Other names are returned unchanged."""
    from eosr.benchmark.plugins import is_code_ref

    if is_code_ref(model):
        return model
    p = Path(model).expanduser()
    cand = p if p.is_absolute() else base / p
    if p.is_absolute() or len(p.parts) > 1 or p.suffix in CHECKPOINT_SUFFIXES:
        return str(cand.resolve())
    if cand.is_dir() or any(cand.with_name(cand.name + s).is_file() for s in CHECKPOINT_SUFFIXES):
        from eosr.models.registry import is_architecture, shipped_weights

        if not is_architecture(model) and model not in shipped_weights():
            return str(cand.resolve())
    return model


def load_config(path: str | Path) -> BenchmarkConfig:
    """Read and validate a benchmark TOML file (syntax and schema only; see :func:`check_config`)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p.name}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p.name}: not a UTF-8 text file") from None
    return parse_config(data, p.parent, p.name)


def check_config(cfg: BenchmarkConfig, *, allow_code: bool = False, allow_untrained: bool = False) -> None:
    """Semantic checks that need no computation: models exist, paths exist, sensors and bands are known,
    metrics are known and their inputs (HR) are available. Raises a one-line :class:`ConfigError`.

    Readers and methods are checked by name (:mod:`eosr.benchmark.plugins`): nothing of theirs is imported
    or run. A dotted path ``module:function`` is refused unless ``allow_code`` (``--allow-code``), a learned
    architecture without trained weights unless ``allow_untrained`` (``--allow-untrained``)."""
    from eosr.benchmark.datasets import check_dataset
    from eosr.benchmark.methods import check_method
    from eosr.benchmark.metric_docs import METRICS, known_metric_names

    for i, d in enumerate(cfg.datasets):
        try:
            check_dataset(d, allow_code)
        except ConfigError:
            raise
        except EosrError as e:
            raise ConfigError(f"datasets[{i}] {d.name!r}: {e}") from None
    scales = {d.scale for d in cfg.datasets}
    for i, m in enumerate(cfg.methods):
        try:
            check_method(m, scales, allow_code, allow_untrained)
        except EosrError as e:
            raise ConfigError(f"methods[{i}] {m.name!r}: {e}") from None
    if cfg.metrics is not None:
        known = known_metric_names()
        for name in cfg.metrics:
            if name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(f"metrics: unknown metric {name!r}{hint}")
            info = METRICS.get(name)
            if info is not None and info.needs_hr:
                for d in cfg.datasets:
                    if not d.has_hr:
                        raise ConfigError(
                            f"metrics: {name!r} needs an HR reference, but dataset {d.name!r} (kind 'lr') has none"
                        )
    if cfg.rank_by is not None and cfg.rank_by not in known_metric_names():
        raise ConfigError(f"rank_by: unknown metric {cfg.rank_by!r}")
