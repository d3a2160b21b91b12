"""Built-in sensors. Every value cites its source; assumed MTF values are flagged ``assumed_mtf``.

Sources
-------
[S2-SPEC] ESA, *Sentinel-2 User Handbook* (2015) and S2A spectral response functions v3.0
          (COPE-GSEG-EOPG-TN-15-0007): central wavelength and bandwidth of S2A MSI.
[CESBIO]  CESBIO ``sensorsio`` Sentinel-2 MTF table (Michel et al.): B2 0.304, B3 0.276, B4 0.233,
          B5 0.343, B6 0.336, B7 0.338, B8 0.222, B8A 0.325, B9 0.39, B11 0.21, B12 0.19.
[S2SHARP] Ulfarsson et al., "Sentinel-2 sharpening using a reduced-rank method", IEEE TGRS 2019
          (MTF list used by S2Sharp/SupReME): B1 0.32.
[ESA-REQ] ESA Sentinel-2 mission requirements: MTF at Nyquist between 0.15 and 0.30 for all bands.
[VENUS]   Ferrier et al. 2010 / CNES-Theia VENµS L1 product description: 12 bands, 5.3 m GSD.
[OLI]     USGS *Landsat 8 Data Users Handbook* v5 (2019), OLI band table; Landsat 9 OLI-2 has the same bands.
[PROBAV]  Dierckx et al., "PROBA-V mission for global vegetation monitoring", IJRS 2014; Märtens et al.,
          "Super-resolution of PROBA-V images using convolutional neural networks", Astrodynamics 2019.
[SPOT]    Airbus DS, *SPOT 6 & SPOT 7 Imagery User Guide* (2013): bands and GSD.

No published in-flight MTF at Nyquist was found for VENµS, Landsat 8/9 OLI, PROBA-V or SPOT 6/7
in the sources above; their values are assumptions (see ``assumed_mtf``) in the range that the
Sentinel-2 requirement [ESA-REQ] and in-flight measurements of comparable push-broom imagers report.
CESBIO itself reuses Sentinel-2 values for VENµS; eosr does the same, matching bands by wavelength.
"""

from __future__ import annotations

from eosr.sensors.model import Band, Sensor

_S2_SRC = "[S2-SPEC] wavelengths; [CESBIO] MTF"

SENTINEL2 = Sensor(
    name="sentinel2",
    description="Sentinel-2 MSI (S2A values), 13 bands at 10/20/60 m",
    aliases=("s2", "sentinel-2", "msi"),
    source="ESA Sentinel-2 User Handbook; CESBIO sensorsio MTF",
    bands=(
        Band("B01", 60, 442.7, 21, 0.32, "[S2-SPEC]; MTF [S2SHARP]"),
        Band("B02", 10, 492.4, 66, 0.304, _S2_SRC),
        Band("B03", 10, 559.8, 36, 0.276, _S2_SRC),
        Band("B04", 10, 664.6, 31, 0.233, _S2_SRC),
        Band("B05", 20, 704.1, 15, 0.343, _S2_SRC),
        Band("B06", 20, 740.5, 15, 0.336, _S2_SRC),
        Band("B07", 20, 782.8, 20, 0.338, _S2_SRC),
        Band("B08", 10, 832.8, 106, 0.222, _S2_SRC),
        Band("B8A", 20, 864.7, 21, 0.325, _S2_SRC),
        Band("B09", 60, 945.1, 20, 0.39, _S2_SRC),
        Band("B10", 60, 1373.5, 31, 0.25, "[S2-SPEC]; MTF assumed (mid-range of [ESA-REQ])", True),
        Band("B11", 20, 1613.7, 91, 0.21, _S2_SRC),
        Band("B12", 20, 2202.4, 175, 0.19, _S2_SRC),
    ),
)

_VENUS_MTF = "[VENUS]; MTF assumed = Sentinel-2 band of nearest wavelength (as CESBIO does)"

VENUS = Sensor(
    name="venus",
    description="VENµS VM1 superspectral camera, 12 bands at 5 m",
    aliases=("vns", "venµs"),
    source="CNES/Theia VENµS product description",
    bands=(
        Band("B01", 5, 420, 40, 0.304, _VENUS_MTF, True),
        Band("B02", 5, 443, 40, 0.304, _VENUS_MTF, True),
        Band("B03", 5, 490, 40, 0.304, _VENUS_MTF, True),
        Band("B04", 5, 555, 40, 0.276, _VENUS_MTF, True),
        Band("B05", 5, 620, 40, 0.233, _VENUS_MTF, True),
        Band("B06", 5, 620, 40, 0.233, _VENUS_MTF, True),
        Band("B07", 5, 667, 30, 0.233, _VENUS_MTF, True),
        Band("B08", 5, 702, 24, 0.343, _VENUS_MTF, True),
        Band("B09", 5, 742, 16, 0.336, _VENUS_MTF, True),
        Band("B10", 5, 782, 16, 0.338, _VENUS_MTF, True),
        Band("B11", 5, 865, 40, 0.325, _VENUS_MTF, True),
        Band("B12", 5, 910, 20, 0.39, _VENUS_MTF, True),
    ),
)

_OLI = "[OLI]; MTF assumed 0.25 (no in-flight value at Nyquist in [OLI])"


def _oli(name: str, description: str) -> Sensor:
    return Sensor(
        name=name,
        description=description,
        source="USGS Landsat 8 Data Users Handbook",
        aliases=(name.replace("landsat", "l"),),
        bands=(
            Band("B01", 30, 443, 16, 0.25, _OLI, True),
            Band("B02", 30, 482, 60, 0.25, _OLI, True),
            Band("B03", 30, 562, 57, 0.25, _OLI, True),
            Band("B04", 30, 655, 37, 0.25, _OLI, True),
            Band("B05", 30, 865, 28, 0.25, _OLI, True),
            Band("B06", 30, 1609, 85, 0.25, _OLI, True),
            Band("B07", 30, 2201, 187, 0.25, _OLI, True),
            Band("B08", 15, 590, 172, 0.25, _OLI + " (panchromatic)", True),
            Band("B09", 30, 1373, 20, 0.25, _OLI, True),
        ),
    )


LANDSAT8 = _oli("landsat8", "Landsat 8 OLI, 30 m multispectral and 15 m panchromatic (B08)")
LANDSAT9 = _oli("landsat9", "Landsat 9 OLI-2, same bands as Landsat 8 OLI")

_PV = "[PROBAV]; MTF assumed 0.25"

PROBAV = Sensor(
    name="probav",
    description="PROBA-V centre camera at 100 m (the Kelvins LR frames are 300 m, x3)",
    aliases=("proba-v",),
    source="Dierckx et al. 2014",
    bands=(
        Band("BLUE", 100, 464, 46, 0.25, _PV, True),
        Band("RED", 100, 655, 79, 0.25, _PV, True),
        Band("NIR", 100, 837, 144, 0.25, _PV, True),
        Band("SWIR", 200, 1603, 73, 0.25, _PV, True),
    ),
)

_SPOT = "[SPOT]; MTF assumed 0.2"

SPOT67 = Sensor(
    name="spot67",
    description="SPOT 6/7 NAOMI: 6 m multispectral, 1.5 m panchromatic",
    aliases=("spot6", "spot7", "spot"),
    source="Airbus SPOT 6 & 7 Imagery User Guide",
    bands=(
        Band("PAN", 1.5, 597.5, 295, 0.2, _SPOT, True),
        Band("BLUE", 6, 490, 70, 0.2, _SPOT, True),
        Band("GREEN", 6, 560, 60, 0.2, _SPOT, True),
        Band("RED", 6, 660, 70, 0.2, _SPOT, True),
        Band("NIR", 6, 825, 130, 0.2, _SPOT, True),
    ),
)

BUILTIN: tuple[Sensor, ...] = (SENTINEL2, VENUS, LANDSAT8, LANDSAT9, PROBAV, SPOT67)
