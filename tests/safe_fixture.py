"""Build Sentinel-2 ``.SAFE`` products in the published layout (PSD 14.x) from real BigEarthNet pixels.

The pixels are those of one real BigEarthNet-S2 patch (L2A, DN = reflectance x 10000, 10/20/60 m
GeoTIFFs); they are written as lossless JPEG 2000 band files (GDAL OpenJPEG, GMLJP2 georeference) at
the paths the product metadata lists. ``baseline >= 04.00`` stores DN + 1000 and declares the offset
-1000 (RADIO_ADD_OFFSET for L1C, BOA_ADD_OFFSET for L2A), as ESA's processing baseline 04.00 does, so
the same reflectance must come out of both. L2A products carry a 20 m SCL raster (classes given by the
caller: synthetic classes on real pixels).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import rasterio

BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20,
       "B12": 20, "B01": 60, "B09": 60}
TILE, DATE = "T32TQM", "20220302T100029"


def _xml(level: str, baseline: str, files: list[str], offset: int | None) -> str:
    ns = f"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level[1:]}.xsd"
    spec = "\n".join(f'        <Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}"/>'
                     for i, b in enumerate(BAND_IDS))
    imgs = "\n".join(f"              <IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    if level == "L1C":
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        tag, lst = "RADIO_ADD_OFFSET", "Radiometric_Offset_List"
    else:
        quant = ('<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
                 '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
                 '</QUANTIFICATION_VALUES_LIST>')
        tag, lst = "BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST"
    offs = ""
    if offset is not None:
        offs = f"<{lst}>" + "".join(f'<{tag} band_id="{i}">{offset}</{tag}>' for i in range(13)) + f"</{lst}>"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-{level[1:]}_User_Product xmlns:n1="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2022-03-02T10:00:29.024Z</PRODUCT_START_TIME>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2A_OPER_MSI_{level}_DS" granuleIdentifier="S2A_OPER_MSI_{level}_TL"
                   imageFormat="JPEG2000">
{imgs}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      {quant}
      {offs}
      <Spectral_Information_List>
{spec}
      </Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-{level[1:]}_User_Product>
"""


def _write_jp2(path: Path, data: np.ndarray, profile: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mem = dict(driver="GTiff", count=1, dtype=data.dtype.name, height=data.shape[0], width=data.shape[1],
               crs=profile["crs"], transform=profile["transform"])
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **mem) as ds:
        ds.write(data, 1)
    with rasterio.open(tmp) as src:
        rasterio.shutil.copy(src, path, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES", RESOLUTIONS="1")
    tmp.unlink()


def make_safe(root: Path, patch: Path, *, level: str = "L2A", baseline: str = "04.00",
              scl: np.ndarray | None = None, zip_it: bool = False, nodata_rows: int = 0) -> Path:
    """Write a one-granule product ``<root>/S2A_MSI<level>_..._N<baseline>_....SAFE`` (or its ``.zip``).

    ``nodata_rows``: that many top rows of every band are stored as DN 0 (NO_DATA), as at a swath edge.
    ``scl``: the 20 m classification for L2A (default: all class 4, vegetation).
    """
    import rasterio.shutil  # noqa: F401  (rasterio.shutil.copy)

    n = baseline.replace(".", "")
    name = f"S2A_MSI{level}_{DATE}_N{n}_R022_{TILE}_20220302T120000.SAFE"
    safe = root / name
    gran = f"GRANULE/{level}_{TILE}_A034998_{DATE}"
    offset = 1000 if baseline >= "04.00" else 0
    files: list[str] = []
    shape20: tuple[int, int] | None = None
    profile20: dict[str, object] = {}
    for band, res in RES.items():
        src = next(patch.glob(f"*_{band}.tif"))
        with rasterio.open(src) as ds:
            dn = ds.read(1).astype(np.uint16)
            prof = {"crs": ds.crs, "transform": ds.transform}
        valid = dn > 0
        dn = np.where(valid, dn + offset, 0).astype(np.uint16)
        if nodata_rows:
            k = max(1, nodata_rows * 10 // res)
            dn[:k] = 0
        if level == "L1C":
            rel = f"{gran}/IMG_DATA/{TILE}_{DATE}_{band}"
        else:
            rel = f"{gran}/IMG_DATA/R{res}m/{TILE}_{DATE}_{band}_{res}m"
        _write_jp2(safe / f"{rel}.jp2", dn, prof)
        files.append(rel)
        if res == 20:
            shape20, profile20 = dn.shape, prof
    if level == "L2A":
        assert shape20 is not None
        cls = np.full(shape20, 4, np.uint8) if scl is None else scl.astype(np.uint8)
        rel = f"{gran}/IMG_DATA/R20m/{TILE}_{DATE}_SCL_20m"
        _write_jp2(safe / f"{rel}.jp2", cls, profile20)
        files.append(rel)
    (safe / f"MTD_MSI{level}.xml").write_text(_xml(level, baseline, files, -offset if offset else None))
    (safe / gran / "MTD_TL.xml").write_text("<Tile/>")
    if not zip_it:
        return safe
    z = root / f"{name}.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(root).as_posix())
    return z
