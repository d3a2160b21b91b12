"""STAC items as inputs (read with ``pystac``): an item's single-band raster assets become a band set.

An item JSON (``"type": "Feature"`` with ``stac_version``) is read with :meth:`pystac.Item.from_file`;
every asset whose media type is a raster (GeoTIFF/COG, JPEG 2000) or whose href ends in ``.tif``/``.jp2``
and that holds one band is a band file. Band name: the asset's band object (STAC 1.1 ``bands[0].name``,
else ``eo:bands[0].name``), else the asset key, normalised (``B4`` -> ``B04``). Hrefs are resolved
relative to the item file; remote hrefs are refused (eosr reads no network: download the assets first).
DN -> reflectance and nodata: the asset's ``raster:bands[0]`` ``scale``/``offset``/``nodata`` (STAC 1.1:
``bands[0]["raster:scale"]`` ...), else the file's own metadata (docs/from_your_data.md, "STAC").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from eosr.errors import DataError

_RASTER_TYPES = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff")
_RASTER_EXT = (".tif", ".tiff", ".jp2")


@dataclass(frozen=True)
class StacBand:
    """One band asset of an item."""

    key: str
    name: str
    path: str
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None


def is_stac_item(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a STAC item JSON file."""
    p = Path(path)
    if not (p.is_file() and p.suffix.lower() == ".json"):
        return False
    try:
        with open(p, "rb") as f:
            head = f.read(1 << 22)
        d = json.loads(head)
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and d.get("type") == "Feature" and "stac_version" in d


def _band_object(extra: dict[str, Any]) -> dict[str, Any] | None:
    for key in ("bands", "eo:bands"):
        v = extra.get(key)
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], dict):
            return v[0]
        if isinstance(v, list) and len(v) > 1:
            return {"_multi": len(v)}
    return None


def _raster(extra: dict[str, Any], band: dict[str, Any] | None) -> dict[str, Any]:
    rb = extra.get("raster:bands")
    if isinstance(rb, list) and len(rb) == 1 and isinstance(rb[0], dict):
        return rb[0]
    if band:  # STAC 1.1: raster fields inside the band object
        return {k.split(":", 1)[1]: v for k, v in band.items() if k.startswith("raster:")} | (
            {"nodata": band["nodata"]} if "nodata" in band else {})
    return {}


def item_bands(path: str | os.PathLike[str]) -> dict[str, StacBand]:
    """The single-band raster assets of a STAC item, keyed by canonical band name (module docstring)."""
    import pystac

    from eosr.sensors import normalise_band_name

    p = Path(path)
    try:
        item = pystac.Item.from_file(str(p))
    except Exception as e:  # pystac raises several types for bad JSON or a non-item
        raise DataError(f"{p}: not a readable STAC item: {str(e).splitlines()[0]}") from None
    out: dict[str, StacBand] = {}
    for key, asset in item.assets.items():
        mt = (asset.media_type or "").lower()
        href = asset.get_absolute_href() or asset.href
        if not (any(mt.startswith(t) for t in _RASTER_TYPES) or href.lower().endswith(_RASTER_EXT)):
            continue
        band = _band_object(asset.extra_fields)
        if band is not None and "_multi" in band:
            continue  # several bands in one file (e.g. a true-colour rendering): not a band asset
        if "://" in href and not href.startswith("file://"):
            raise DataError(f"{p}: asset {key!r} is remote ({href}); eosr reads no network: download the assets "
                            "and point the item at the local files")
        local = Path(href.removeprefix("file://"))
        name = normalise_band_name(str((band or {}).get("name") or key))
        ras = _raster(asset.extra_fields, band)
        if name in out:
            raise DataError(f"{p}: two assets for band {name}: {out[name].key!r} and {key!r}")
        out[name] = StacBand(key, name, str(local), _num(ras.get("scale")), _num(ras.get("offset")),
                             _num(ras.get("nodata")))
    if not out:
        raise DataError(f"{p}: the item has no single-band raster assets")
    missing = [b.path for b in out.values() if not Path(b.path).is_file()]
    if missing:
        raise DataError(f"{p}: asset file not found: {missing[0]}")
    return out


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str) and v.lower() == "nan":
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise DataError(f"STAC raster value {v!r} is not a number") from None


def radiometry(bands: list[StacBand]) -> tuple[float, float] | None:
    """The common (scale, offset) the selected assets declare, None when none does; differing ones are
    refused."""
    pairs = {(b.scale if b.scale is not None else 1.0, b.offset or 0.0) for b in bands
             if b.scale is not None or b.offset is not None}
    if not pairs:
        return None
    if len(pairs) > 1 or len(pairs) == 1 and any(b.scale is None and b.offset is None for b in bands):
        raise DataError(f"the selected assets declare different scale/offset ({sorted(pairs)}); select bands "
                        "that share one, or give --dn-scale/--dn-offset")
    return pairs.pop()


#: Extensions whose fields :func:`write_item` writes. Band metadata go in ``eo:bands`` (names) and
#: ``raster:bands`` (nodata, data type, scale/offset, resolution), the forms stackstac and odc-stac read;
#: the STAC 1.1 core ``bands`` object is read (:func:`item_bands`) but not written.
EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
}


def item_path(raster: str | os.PathLike[str]) -> Path:
    """Where the STAC item of an output raster goes: ``sr.tif`` -> ``sr.stac.json``."""
    p = Path(raster)
    return p.with_name(p.stem + ".stac.json")


def write_item(raster: str | os.PathLike[str], *, lineage: dict[str, Any], source: str | os.PathLike[str] | None = None,
               extra_assets: dict[str, str] | None = None) -> Path:
    """Write a STAC 1.1 item describing ``raster`` beside it (:func:`item_path`), atomically.

    Geometry and bbox: the raster's footprint in WGS 84 (none without georeference); ``proj:code``,
    ``proj:shape``, ``proj:transform``; one asset ``data`` with ``eo:bands`` (names) and ``raster:bands``
    (``nodata``, ``data_type``, ``scale``/``offset``, ``spatial_resolution``); ``processing:software``
    and ``processing:lineage`` plus ``lineage`` as ``eosr:*`` properties (model, version, weights hash,
    operator). ``datetime``: the source item's when the input was a STAC item, else the processing time,
    said in ``eosr:datetime``. ``extra_assets``: key -> sibling file (e.g. the uncertainty raster).
    """
    from datetime import datetime

    import pystac
    from rasterio.warp import transform_bounds

    from eosr import __version__
    from eosr.io.raster import atomic_path, is_georeferenced, open_quietly

    p = Path(raster)
    with open_quietly(p) as ds:
        geo = is_georeferenced(ds) and ds.crs is not None
        bbox = list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)) if geo else None
        epsg = ds.crs.to_epsg() if geo else None
        res = abs(ds.transform.a)
        eo_bands = [{"name": d or f"band{i + 1}"} for i, d in enumerate(ds.descriptions)]
        raster_bands = [{"data_type": ds.dtypes[i],
                         **({"nodata": "nan" if ds.nodata != ds.nodata else ds.nodata}
                            if ds.nodata is not None else {}),
                         **({"scale": ds.scales[i], "offset": ds.offsets[i]}
                            if (ds.scales[i], ds.offsets[i]) != (1.0, 0.0) else {}),
                         **({"spatial_resolution": res} if geo else {})}
                        for i in range(ds.count)]
        shape, transform = [ds.height, ds.width], list(ds.transform)[:6]
        wkt = ds.crs.to_wkt() if geo and epsg is None else None
    when, said = datetime.now(UTC), "processing time (the input carries no acquisition time)"
    if source is not None and is_stac_item(source):
        src_item = pystac.Item.from_file(str(source))
        if src_item.datetime is not None:
            when, said = src_item.datetime, f"acquisition time of the input item {src_item.id}"
    geometry = None
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        geometry = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    props: dict[str, Any] = {
        "eosr:datetime": said,
        "processing:software": {"eosr": __version__},
        "processing:lineage": "super-resolved by eosr" + (f" from {Path(source).name}" if source else ""),
        **{f"eosr:{k}": v for k, v in lineage.items()},
    }
    if geo:
        props.update({"proj:code": f"EPSG:{epsg}" if epsg else None, "proj:shape": shape, "proj:transform": transform})
        if wkt:
            props["proj:wkt2"] = wkt
    item = pystac.Item(p.stem, geometry=geometry, bbox=bbox, datetime=when, properties=props,
                       stac_extensions=[EXTENSIONS["processing"], EXTENSIONS["eo"], EXTENSIONS["raster"]]
                       + ([EXTENSIONS["proj"]] if geo else []))
    item.add_asset("data", pystac.Asset(f"./{p.name}", media_type=pystac.MediaType.GEOTIFF, roles=["data"],
                                        extra_fields={"eo:bands": eo_bands, "raster:bands": raster_bands}))
    for key, name in (extra_assets or {}).items():
        item.add_asset(key, pystac.Asset(f"./{name}", media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
    out = item_path(p)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(item.to_dict(include_self_link=False), indent=2, allow_nan=False))
    return out
