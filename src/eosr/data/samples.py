"""Built-in real sample: the BigEarthNet-S2 example patches shipped in the PyPI package
``bigearthnet-common`` (file ``BigEarthNet-S2-Example.tar.bz2``; Apache-2.0 package, BigEarthNet data
CDLA-Permissive-1.0, modified Copernicus Sentinel data).

Six Sentinel-2 L2A patches (Europe, 2017-2018) of 1.2 km: B02 B03 B04 B08 at 10 m (120x120), B05 B06 B07
B8A B11 B12 at 20 m (60x60), B01 B09 at 60 m (20x20), UTM georeference, uint16 reflectance x 10000.
The archive is read with :mod:`importlib.resources` and extracted once to ``$EOSR_CACHE`` (default
``~/.cache/eosr``): extraction goes to a temporary folder that is renamed into place at the end, so
a crash never leaves a half-extracted cache. These patches are the demo's evaluation data: never
train shipped weights on them.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

from eosr.data.s2bands import S2Stacks, read_s2_band_folder, scene_folders
from eosr.errors import DataError

PACKAGE = "bigearthnet_common"
ARCHIVE = "BigEarthNet-S2-Example.tar.bz2"
FOLDER = "BigEarthNet-S2-Example"


def cache_dir() -> Path:
    """``$EOSR_CACHE`` if set, else ``~/.cache/eosr``."""
    env = os.environ.get("EOSR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "eosr"


def bigearthnet_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the extracted example patches (extracted on first use, atomically)."""
    root = Path(cache) if cache is not None else cache_dir()
    target = root / FOLDER
    if target.is_dir():
        return target
    try:
        src = resources.files(PACKAGE) / ARCHIVE
    except ModuleNotFoundError:
        raise DataError(f"the built-in sample needs the package {PACKAGE!r} "
                        "(pip install --no-deps bigearthnet-common)") from None
    if not src.is_file():
        raise DataError(f"{PACKAGE} does not contain {ARCHIVE}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bigearthnet-", dir=root))
    try:
        with resources.as_file(src) as path, tarfile.open(path, "r:bz2") as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / FOLDER).is_dir():
            raise DataError(f"{ARCHIVE}: no top-level {FOLDER}/ folder")
        try:
            os.rename(tmp / FOLDER, target)
        except OSError:
            if not target.is_dir():  # lost a race to another process: fine if it finished
                raise
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot extract {ARCHIVE} to {root}: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def bigearthnet_patches(cache: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the example patches (sorted)."""
    return [p.name for p in scene_folders(bigearthnet_dir(cache))]


def bigearthnet(name: str | int = 0, cache: str | os.PathLike[str] | None = None) -> S2Stacks:
    """One example patch (by name or index) as aligned 10/20/60 m reflectance stacks with georeference."""
    folders = scene_folders(bigearthnet_dir(cache))
    if isinstance(name, int):
        if not -len(folders) <= name < len(folders):
            raise DataError(f"sample index {name} outside 0..{len(folders) - 1}")
        return read_s2_band_folder(folders[name])
    for f in folders:
        if f.name == name:
            return read_s2_band_folder(f)
    raise DataError(f"no example patch {name!r}; available: {', '.join(f.name for f in folders)}")
