"""Landsat 8/9 band folders with their ``*_MTL.txt``: DN -> reflectance from the product's own metadata.

A folder of Landsat band files (``LC08_..._B4.TIF`` or ``l8_B4.tif``) next to the scene's MTL file is read
with the rescaling the MTL gives (USGS, *Landsat 8 (L8) Data Users Handbook*, LSDS-1574, section 5;
*Landsat 8-9 Collection 2 Level 2 Science Product Guide*, LSDS-1619):

- Level-1 (top-of-atmosphere): rho = (M DN + A) / sin(sun elevation), with M, A the band's
  ``REFLECTANCE_MULT_BAND_n``/``REFLECTANCE_ADD_BAND_n`` of the radiometric rescaling group and the scene
  centre's ``SUN_ELEVATION`` (the handbook's sun-angle correction), so ``dn_scale = M / sin e`` and
  ``dn_offset = A / sin e``;
- Level-2 surface reflectance (``SR_B4`` files): rho = M DN + A from the surface-reflectance group
  (no sun-angle term).

Thermal bands (B10, B11, ``ST_B10``) have no reflectance rescaling and are refused. DN 0 is fill (nodata
where a file declares none). The MTL comes after the files' own scale metadata and before the refusal
(:func:`eosr.io.raster.resolve_with_mtl`, docs/conventions.md "Radiometry"); an explicit scale wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eosr.errors import RadiometryError
from eosr.io.raster import Radiometry, file_band_name

#: Groups holding the reflectance rescaling: Collection 2 Level-1, pre-collection / Collection 1, Level-2.
L1_GROUPS = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
L2_GROUP = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"
_LINE = re.compile(r"^\s*([A-Z0-9_]+)\s*=\s*\"?([^\"]*)\"?\s*$")


def find_mtl(folder: Path) -> Path | None:
    """The one ``*MTL.txt`` file of ``folder`` (case-insensitive), or None (none, or several)."""
    found = [f for f in folder.iterdir() if f.is_file() and f.name.upper().endswith("MTL.TXT")]
    return found[0] if len(found) == 1 else None


def parse_mtl(path: Path) -> dict[str, dict[str, str]]:
    """``{group: {key: value}}`` of an MTL file (ODL ``GROUP = ...`` / ``END_GROUP``; values unquoted)."""
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip()
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if stack:
                stack.pop()
        elif stack:
            groups[stack[-1]][key] = value
    return groups


def mtl_radiometry(mtl: Path, band_names: Sequence[str], file_stems: Sequence[str]) -> Radiometry:
    """DN -> reflectance of the bands ``band_names`` (``B04``...) from ``mtl`` (module doc); one scale and
    offset for all of them, else :class:`RadiometryError` (read the bands apart)."""
    groups = parse_mtl(mtl)
    surface = any("SR_B" in s.upper() for s in file_stems)
    if surface:
        table, sun, what = groups.get(L2_GROUP), 1.0, "surface reflectance"
    else:
        table = next((groups[g] for g in L1_GROUPS if g in groups), None)
        try:
            elevation = float(groups.get("IMAGE_ATTRIBUTES", {})["SUN_ELEVATION"])
        except (KeyError, ValueError):
            raise RadiometryError(f"{mtl}: no SUN_ELEVATION for top-of-atmosphere reflectance; give --dn-scale "
                                  "and --dn-offset") from None
        if not 0 < elevation <= 90:
            raise RadiometryError(f"{mtl}: sun elevation {elevation} deg (night scene): no TOA reflectance")
        sun = math.sin(math.radians(elevation))
        what = f"TOA reflectance, sun elevation {elevation:.2f} deg"
    if table is None:
        raise RadiometryError(f"{mtl}: no reflectance rescaling group; give --dn-scale and --dn-offset")
    pairs = set()
    for name in band_names:
        m = re.fullmatch(r"B0*(\d+)", name)
        key = m.group(1) if m else name
        try:
            pairs.add((float(table[f"REFLECTANCE_MULT_BAND_{key}"]), float(table[f"REFLECTANCE_ADD_BAND_{key}"])))
        except (KeyError, ValueError):
            raise RadiometryError(f"{mtl}: band {name} has no reflectance rescaling (a thermal band?): leave it "
                                  "out with --bands") from None
    if len(pairs) > 1:
        raise RadiometryError(f"{mtl}: the bands {', '.join(band_names)} have different reflectance rescaling "
                              "(read them apart with --bands)")
    ((mult, add),) = pairs
    return Radiometry(mult / sun, add / sun, f"Landsat MTL ({what})", fill=0.0)


def files_radiometry(files: Sequence[str | Path], dtype: str) -> Radiometry | None:
    """The MTL rescaling of integer Landsat band files (``LC08_..._B4.TIF``; each band named by its file name)
    from the one ``*_MTL.txt`` of their folder, or None (not integer, no files, a file name without a band,
    files in several folders, no single MTL)."""
    paths = [Path(f) for f in files]
    bands = [file_band_name(f) for f in paths]
    folders = {f.parent for f in paths}
    if not paths or not np.issubdtype(np.dtype(dtype), np.integer) or len(folders) != 1 or None in bands:
        return None
    mtl = find_mtl(folders.pop())
    return None if mtl is None else mtl_radiometry(mtl, [b for b in bands if b], [f.stem for f in paths])
