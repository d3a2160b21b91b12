"""Datasets of a benchmark: lists of images (cheap to enumerate) and loaders of LR / HR pairs.

Enumeration reads no pixels, so a config is checked completely before any work starts. A Wald
dataset degrades each real HR image with the sensor operator of :mod:`eosr.degrade` (Wald et al.,
PE&RS 63(6), 1997): LR = D(HR), noise-free unless ``noise_sigma`` is set (then seeded per image).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eosr.benchmark.config import DatasetConfig
from eosr.errors import ConfigError, DataError

#: Sentinel-2 10 m bands, the default band set of Sentinel-2 Wald datasets.
S2_10M = ("B02", "B03", "B04", "B08")


@dataclass
class ImageRef:
    """One image of a dataset before loading: an id and the files it comes from."""

    id: str
    files: dict[str, Path]  # "hr" / "lr" -> file, or band name -> file for band folders
    payload: Any = None  # reader datasets: the item the reader yielded


@dataclass
class Sample:
    """A loaded image: LR, the HR reference (None without one), bands and the operator D."""

    id: str
    lr: np.ndarray
    hr: np.ndarray | None
    bands: list[str]
    scale: int
    sensor: str
    operator: Any
    dataset: str = ""


def dataset_bands(d: DatasetConfig) -> list[str]:
    """The canonical band names a dataset uses (Sentinel-2 Wald default: the 10 m bands)."""
    from eosr.sensors import get_sensor

    s = get_sensor(d.sensor)
    if d.bands is not None:
        return [b.name for b in s.select(list(d.bands))]
    if s.name == "sentinel2" and d.kind in ("wald", "samples"):
        return list(S2_10M)
    return s.band_names


def operator_for(d: DatasetConfig) -> Any:
    """The degradation operator of a dataset (``operator``: the sensor's Wald or full PSF per band at the
    dataset's scale, or a sensor/calibration file; :func:`eosr.degrade.resolve.resolve_operator`)."""
    from eosr.degrade.resolve import resolve_operator

    op = resolve_operator(d.operator, sensor=d.sensor, bands=dataset_bands(d), scale=d.scale).operator
    assert op is not None
    return op.with_options(noise_sigma=d.noise_sigma) if d.noise_sigma else op


def samples_dir() -> Path:
    """Folder of the built-in BigEarthNet-S2 example patches (:func:`eosr.data.samples.bigearthnet_dir`)."""
    from eosr.data.samples import bigearthnet_dir

    return bigearthnet_dir()


def _band_folders(path: Path, bands: list[str]) -> list[ImageRef] | None:
    """BigEarthNet layout: one sub-folder per image with ``*_B02.tif`` ... (None if not that layout)."""
    subs = sorted(p for p in path.iterdir() if p.is_dir())
    refs = []
    for sub in subs:
        files: dict[str, Path] = {}
        for b in bands:
            hits = sorted(sub.glob(f"*_{b}.tif")) or sorted(sub.glob(f"*_{b}.TIF"))
            if hits:
                files[b] = hits[0]
        if len(files) == len(bands):
            refs.append(ImageRef(sub.name, files))
        elif files:
            missing = [b for b in bands if b not in files]
            raise DataError(f"{sub}: no file for band(s) {', '.join(missing)}")
    return refs or None


def _tifs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in (".tif", ".tiff") and p.is_file())


def list_images(d: DatasetConfig, allow_code: bool = False) -> list[ImageRef]:
    """The images of a dataset, in a stable order, without reading pixels (``limit`` applied).

    A ``reader`` dataset runs its reader here (a registered name, or a dotted path with ``allow_code``)."""
    bands = dataset_bands(d)
    refs: list[ImageRef]
    if d.kind == "reader":
        refs = [ImageRef(str(i), {}, item) for i, item in _reader_items(d, allow_code)]
    else:
        path = samples_dir() if d.kind == "samples" else d.path
        if path is None:
            raise ConfigError(f"dataset {d.name!r} (kind {d.kind!r}) needs a 'path'")
        if not path.exists():
            raise ConfigError(f"dataset {d.name!r}: path not found: {path}")
        if d.kind == "pairs":
            hr_dir, lr_dir = path / "hr", path / "lr"
            if not hr_dir.is_dir() or not lr_dir.is_dir():
                raise ConfigError(f"dataset {d.name!r}: a 'pairs' dataset needs {path}/hr and {path}/lr folders")
            refs = []
            for f in _tifs(hr_dir):
                lr = lr_dir / f.name
                if not lr.exists():
                    raise ConfigError(f"dataset {d.name!r}: no LR file {lr} for {f.name}")
                refs.append(ImageRef(f.stem, {"hr": f, "lr": lr}))
        elif path.is_file():
            refs = [ImageRef(path.stem, {"hr" if d.has_hr else "lr": path})]
        else:
            found = _band_folders(path, bands) if d.kind in ("wald", "samples") else None
            key = "hr" if d.has_hr else "lr"
            refs = found if found is not None else [ImageRef(f.stem, {key: f}) for f in _tifs(path)]
    if not refs:
        raise ConfigError(f"dataset {d.name!r}: no images found")
    return refs[: d.limit] if d.limit else refs


def _reader_items(d: DatasetConfig, allow_code: bool) -> Iterator[tuple[str, Any]]:
    from eosr.benchmark.plugins import load_reader

    fn = load_reader(d.reader, allow_code)
    for k, item in enumerate(fn(**d.options)):
        if isinstance(item, dict):
            yield str(item.get("id", k)), item
        elif isinstance(item, tuple) and len(item) == 2:
            yield str(item[0]), {"id": item[0], "hr": item[1]}
        elif hasattr(item, "sample_id") and hasattr(item, "lr"):  # eosr.data.sample.Sample (eosr's readers)
            yield str(item.sample_id), _from_sample(item, d.reader)
        else:
            raise DataError(f"reader {d.reader!r} must yield (id, hr), dicts with 'id' and 'hr', or eosr Samples")


def _from_sample(s: Any, reader: str | None) -> dict[str, Any]:
    """An :class:`eosr.data.sample.Sample` as a reader item (single-image only)."""
    if s.lr.ndim != 3:
        raise DataError(f"reader {reader!r} yields multi-image samples; a benchmark takes single images")
    hr = None if s.hr is None else np.asarray(s.hr, np.float32)
    return {"id": s.sample_id, "hr": hr, "lr": np.asarray(s.lr, np.float32)}


def check_dataset(d: DatasetConfig, allow_code: bool = False) -> None:
    """Validate a dataset without loading pixels: sensor, bands, scale and at least one image.

    A ``reader`` dataset is checked by name only (:func:`eosr.benchmark.plugins.check_reader`): checking
    never imports or runs reader code; its images are listed when the benchmark runs."""
    from eosr.benchmark.plugins import check_reader

    if d.kind in ("wald", "pairs", "lr") and d.path is None:
        raise ConfigError(f"dataset {d.name!r} (kind {d.kind!r}) needs a 'path'")
    if d.kind != "reader" and d.reader is not None:
        raise ConfigError(f"dataset {d.name!r}: 'reader' is only for kind 'reader'")
    if d.kind == "reader":
        try:
            check_reader(d.reader, allow_code)
        except ConfigError as e:
            raise ConfigError(f"dataset {d.name!r}: {e}") from None
    operator_for(d)  # raises SensorError for an unknown sensor or band
    if d.kind != "reader":
        list_images(d)


def dataset_key(d: DatasetConfig, refs: list[ImageRef]) -> str:
    """Hash of the dataset's config and its files (name, size, modification time)."""
    files = []
    for r in refs:
        for k, f in sorted(r.files.items()):
            st = f.stat()
            files.append([r.id, k, f.name, st.st_size, st.st_mtime_ns])
    blob = json.dumps({"cfg": d.model_dump(mode="json", exclude={"limit"}), "files": files,
                       "ids": [r.id for r in refs]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read(path: Path, bands: list[str] | None, d: DatasetConfig) -> np.ndarray:
    from eosr.io.raster import read_raster

    try:
        return read_raster(path, bands, dn_scale=d.dn_scale, dn_offset=d.dn_offset).data
    except DataError as e:
        if bands is None or "no band described" not in str(e):
            raise
        r = read_raster(path, dn_scale=d.dn_scale, dn_offset=d.dn_offset)  # undescribed: the first bands in order
        if r.data.shape[0] < len(bands):
            raise DataError(f"{path}: {r.data.shape[0]} bands, the dataset needs {len(bands)}") from None
        return r.data[: len(bands)]


def dataset_radiometry(d: DatasetConfig, refs: Sequence[ImageRef]) -> list[dict[str, Any]]:
    """The DN -> reflectance rules the dataset's files resolve to (docs/conventions.md, "Radiometry"),
    distinct records ``{dn_scale, dn_offset, rule, files}``; reader datasets: the reader's arrays as given.
    Metadata only: no pixel is read."""
    from eosr.io.raster import raster_radiometry

    if d.kind == "reader":
        return [{"dn_scale": None, "dn_offset": None, "rule": "reader arrays (reflectance as returned)",
                 "files": len(refs)}]
    bands = dataset_bands(d)
    seen: dict[tuple[float, float, str], int] = {}
    for ref in refs:
        for key, path in ref.files.items():
            sel = bands if key in ("hr", "lr") else None
            try:
                rad = raster_radiometry(path, sel, dn_scale=d.dn_scale, dn_offset=d.dn_offset)
            except DataError as e:
                if sel is None or "no band described" not in str(e):
                    raise
                rad = raster_radiometry(path, dn_scale=d.dn_scale, dn_offset=d.dn_offset)
            k = (rad.dn_scale, rad.dn_offset, rad.rule)
            seen[k] = seen.get(k, 0) + 1
    return [{"dn_scale": k[0], "dn_offset": k[1], "rule": k[2], "files": n} for k, n in seen.items()]


def load_sample(d: DatasetConfig, ref: ImageRef, index: int = 0) -> Sample:
    """Load one image: read the files and build LR = D(HR) for Wald datasets."""
    bands = dataset_bands(d)
    op = operator_for(d)
    hr: np.ndarray | None
    lr: np.ndarray | None = None
    if d.kind == "reader":
        item = ref.payload
        hr = None if item.get("hr") is None else np.asarray(item["hr"], dtype=np.float32)
        lr = None if item.get("lr") is None else np.asarray(item["lr"], dtype=np.float32)
    elif set(ref.files) - {"hr", "lr"}:
        from eosr.io.raster import read_raster

        hr = np.stack([read_raster(ref.files[b], dn_scale=d.dn_scale, dn_offset=d.dn_offset).data[0]
                       for b in bands])
    else:
        hr = _read(ref.files["hr"], bands, d) if "hr" in ref.files else None
        lr = _read(ref.files["lr"], bands, d) if "lr" in ref.files else None
    if hr is not None and lr is None:
        hr = np.asarray(op.crop(hr), dtype=np.float32)
        lr = np.asarray(op(hr, seed=index) if op.has_noise else op.downsample(hr), dtype=np.float32)
    if lr is None:
        raise DataError(f"image {ref.id!r} of dataset {d.name!r} has neither LR nor HR")
    if hr is not None and (hr.shape[-2] != lr.shape[-2] * d.scale or hr.shape[-1] != lr.shape[-1] * d.scale):
        raise DataError(f"image {ref.id!r}: HR {hr.shape[-2:]} is not {d.scale} x LR {lr.shape[-2:]}")
    return Sample(ref.id, np.asarray(lr, np.float32), hr, bands, d.scale, d.sensor, op, d.name)
