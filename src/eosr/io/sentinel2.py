"""Sentinel-2 products as delivered: a ``.SAFE`` folder or its ``.zip``, Level-1C or Level-2A.

What is read (ESA, "Sentinel-2 Products Specification Document" PSD 14.x; "Sentinel-2 L1C/L2A product
format", processing baseline 04.00 notice, 2022-01-25):

- The product metadata ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``: the processing level and baseline, the
  band files (``IMAGE_FILE``, without extension), the quantification value ``Q``
  (``QUANTIFICATION_VALUE``, L2A ``BOA_QUANTIFICATION_VALUE``, 10000) and, from baseline 04.00, the
  per-band radiometric offset ``O`` (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET``, -1000; ``band_id`` in the
  order of ``Spectral_Information_List``). Reflectance = (DN + O) / Q, i.e. ``dn_scale = 1 / Q`` and
  ``dn_offset = O / Q`` (docs/from_your_data.md). Products before 04.00 carry no offset: O = 0.
- DN 0 is NO_DATA in every band (``Special_Values``).
- Level-2A: every band is read at its native resolution (B02 B03 B04 B08 from ``R10m``, B05 B06 B07 B8A
  B11 B12 from ``R20m``, B01 B09 from ``R60m``) and the scene classification ``SCL`` (20 m) gives the
  validity mask: classes in :data:`SCL_INVALID` (no data, saturated/defective, cloud shadows, clouds of
  medium and high probability, thin cirrus) are invalid.

Band files are read with GDAL (JPEG 2000 through OpenJPEG, or GeoTIFF when a file with the same stem and
``.tif`` is there instead), through ``/vsizip/`` for a zipped product; nothing is extracted.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from eosr.errors import DataError

#: Canonical band order of ``Spectral_Information_List`` (band_id 0..12).
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
NATIVE_RESOLUTION = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20, "B07": 20, "B8A": 20,
                     "B11": 20, "B12": 20, "B01": 60, "B09": 60, "B10": 60}
#: Scene classification (SCL) classes of Sen2Cor (L2A Product Specification, Table "SCL").
SCL_CLASSES = {0: "no data", 1: "saturated or defective", 2: "dark area / topographic shadow", 3: "cloud shadow",
               4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud medium probability",
               9: "cloud high probability", 10: "thin cirrus", 11: "snow or ice"}
#: SCL classes taken as invalid by default: no data, saturated, cloud shadows, clouds, cirrus.
SCL_INVALID = (0, 1, 3, 8, 9, 10)
NODATA_DN = 0
_FILE = re.compile(r"_(B\d{1,2}A?|SCL)(?:_(\d{2})m)?$", re.IGNORECASE)
_RASTER_EXT = (".jp2", ".tif", ".tiff")


@dataclass(frozen=True)
class SafeProduct:
    """What eosr needs of one Sentinel-2 product (see the module docstring)."""

    path: str  # the .SAFE folder or the .zip as given
    level: str  # "L1C" or "L2A"
    baseline: str  # e.g. "04.00"
    quantification: float
    offsets: dict[str, float]  # per band, DN units (0 before baseline 04.00)
    band_files: dict[str, str]  # canonical band name -> GDAL path at native resolution
    scl: str | None = None  # GDAL path of the 20 m scene classification (L2A)
    resolutions: dict[str, int] = field(default_factory=dict)

    def radiometry(self, bands: list[str]) -> tuple[float, float]:
        """(dn_scale, dn_offset) = (1 / Q, O / Q) of ``bands``; one rule for all (else :class:`DataError`)."""
        offs = {self.offsets.get(b, 0.0) for b in bands}
        if len(offs) > 1:
            raise DataError(f"{self.path}: bands {', '.join(bands)} have different radiometric offsets "
                            f"{sorted(offs)}; read them apart")
        return 1.0 / self.quantification, offs.pop() / self.quantification

    def rule(self, bands: list[str]) -> str:
        """How DN becomes reflectance, in words (recorded in results and tags)."""
        scale, off = self.radiometry(bands)
        o = off / scale
        return (f"Sentinel-2 {self.level} product metadata (baseline {self.baseline}: "
                f"(DN {'-' if o < 0 else '+'} {abs(o):g}) / {self.quantification:g})")


def is_safe(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a Sentinel-2 product: a ``*.SAFE`` folder, a folder holding
    ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, or a ``.zip`` (``*.SAFE.zip``) holding one."""
    p = Path(path)
    if p.is_dir():
        return p.suffix.upper() == ".SAFE" or any((p / f"MTD_MSIL{x}.xml").is_file() for x in ("1C", "2A"))
    return p.is_file() and p.suffix.lower() == ".zip" and zipfile.is_zipfile(p)


def _xml_name(names: list[str]) -> str | None:
    for n in sorted(names, key=len):
        if re.search(r"(^|/)MTD_MSIL(1C|2A)\.xml$", n):
            return n
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_all(root: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(root: ElementTree.Element, *names: str) -> str | None:
    for n in names:
        for e in _find_all(root, n):
            if e.text and e.text.strip():
                return e.text.strip()
    return None


def _band_order(root: ElementTree.Element) -> dict[str, str]:
    """band_id -> canonical band name, from ``Spectral_Information_List`` (else the standard order)."""
    from eosr.sensors import normalise_band_name

    out = {}
    for e in _find_all(root, "Spectral_Information"):
        bid, phys = e.get("bandId"), e.get("physicalBand")
        if bid is not None and phys:
            out[bid] = normalise_band_name(phys)
    return out or {str(i): b for i, b in enumerate(BAND_IDS)}


def open_safe(path: str | os.PathLike[str]) -> SafeProduct:
    """Read a Sentinel-2 L1C/L2A product's metadata and locate its band files (module docstring).

    Raises :class:`DataError` naming the product and the problem (no metadata, broken XML, a band file
    listed but missing, several granules, an unknown level).
    """
    from eosr.sensors import normalise_band_name

    p = Path(path)
    if not p.exists():
        raise DataError(f"input not found: {p}")
    if p.is_dir():
        xml_rel = _xml_name([f.name for f in p.iterdir()])
        if xml_rel is None:
            raise DataError(f"{p}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml (not a Sentinel-2 .SAFE product)")
        base = p
        try:
            raw = (p / xml_rel).read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {p / xml_rel}: {e.strerror}") from None
        present = {str(f.relative_to(p)).replace(os.sep, "/") for f in p.glob("GRANULE/**/*") if f.is_file()}
        gdal_root = str(p.resolve())
    else:
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
                xml_rel = _xml_name(names)
                if xml_rel is None:
                    raise DataError(f"{p}: the zip holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml (not a Sentinel-2 "
                                    "product)")
                raw = z.read(xml_rel)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"cannot read {p}: {e}") from None
        prefix = xml_rel.rsplit("/", 1)[0] + "/" if "/" in xml_rel else ""
        present = {n[len(prefix):] for n in names if n.startswith(prefix) and not n.endswith("/")}
        gdal_root = f"/vsizip/{p.resolve()}" + (f"/{prefix.rstrip('/')}" if prefix else "")
        base = p
    xml_name = xml_rel.rsplit("/", 1)[-1]
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as e:
        raise DataError(f"{base}: cannot parse {xml_name}: {e}") from None
    level = "L2A" if "2A" in xml_name else "L1C"
    plevel = _text(root, "PROCESSING_LEVEL")
    if plevel and level[1:] not in plevel.replace("Level-", ""):
        raise DataError(f"{base}: {xml_name} says processing level {plevel!r}")
    baseline = _text(root, "PROCESSING_BASELINE") or "unknown"
    q_text = _text(root, "BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")
    if q_text is None:
        raise DataError(f"{base}: {xml_name} has no quantification value (QUANTIFICATION_VALUE)")
    try:
        quant = float(q_text)
    except ValueError:
        raise DataError(f"{base}: {xml_name}: quantification value {q_text!r} is not a number") from None
    if not quant > 0:
        raise DataError(f"{base}: {xml_name}: quantification value {quant} must be > 0")
    order = _band_order(root)
    offsets: dict[str, float] = {}
    for el in _find_all(root, "BOA_ADD_OFFSET") + _find_all(root, "RADIO_ADD_OFFSET"):
        bid = el.get("band_id")
        if bid is None or bid not in order or not el.text:
            continue
        try:
            offsets[order[bid]] = float(el.text)
        except ValueError:
            raise DataError(f"{base}: {xml_name}: offset {el.text!r} of band_id {bid} is not a number") from None
    entries = [e.text.strip() for e in _find_all(root, "IMAGE_FILE") if e.text and e.text.strip()]
    if not entries:  # very old products list granules only: take the files in IMG_DATA
        entries = sorted(n.rsplit(".", 1)[0] for n in present if "/IMG_DATA/" in n and n.lower().endswith(_RASTER_EXT))
    granules = {n.split("/")[1] for n in entries if n.startswith("GRANULE/") and n.count("/") > 1}
    if len(granules) > 1:
        raise DataError(f"{base}: the product holds {len(granules)} granules; eosr reads one-tile products "
                        "(PSD 14, from December 2016)")
    band_files: dict[str, str] = {}
    resolutions: dict[str, int] = {}
    scl = None
    for entry in entries:
        m = _FILE.search(entry)
        if not m:
            continue
        token, res = m.group(1).upper(), int(m.group(2)) if m.group(2) else None
        found = next((entry + x for x in _RASTER_EXT if entry + x in present), None)
        if found is None:
            raise DataError(f"{base}: band file {entry}.jp2 listed in {xml_name} is missing")
        if token == "SCL":
            if scl is None or res == 20:
                scl = f"{gdal_root}/{found}"
            continue
        name = normalise_band_name(token)
        native = NATIVE_RESOLUTION.get(name)
        if res is not None and native is not None and res != native:
            continue  # L2A resampled copies: keep the native resolution only
        band_files[name] = f"{gdal_root}/{found}"
        if native is not None:
            resolutions[name] = native
    if not band_files:
        raise DataError(f"{base}: {xml_name} lists no band files")
    if level == "L2A" and scl is None:
        raise DataError(f"{base}: Level-2A product without its scene classification (SCL_20m)")
    return SafeProduct(str(p), level, baseline, quant, offsets, band_files, scl, resolutions)
