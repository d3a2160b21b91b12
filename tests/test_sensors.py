import pytest

from eosr.errors import SensorError
from eosr.sensors import get_sensor, list_sensors, load_sensor, normalise_band_name, sensor_from_dict

CESBIO = {"B02": 0.304, "B03": 0.276, "B04": 0.233, "B05": 0.343, "B06": 0.336, "B07": 0.338, "B08": 0.222,
          "B8A": 0.325, "B09": 0.39, "B11": 0.21, "B12": 0.19}


def test_sentinel2_has_13_bands_with_cesbio_mtf():
    s2 = get_sensor("sentinel2")
    assert len(s2.bands) == 13
    for name, m in CESBIO.items():
        assert s2.band(name).mtf_nyquist == m
    assert {b.gsd_m for b in s2.bands} == {10, 20, 60}
    assert not any(s2.band(n).assumed_mtf for n in CESBIO)
    assert s2.band("B10").assumed_mtf


@pytest.mark.parametrize("name,n", [("venus", 12), ("landsat8", 9), ("landsat9", 9), ("probav", 4), ("spot67", 5)])
def test_catalog_sensors(name, n):
    s = get_sensor(name)
    assert len(s.bands) == n
    assert all(b.source for b in s.bands)


def test_landsat_pan_is_15m_and_venus_5m():
    assert get_sensor("landsat8").band("B8").gsd_m == 15
    assert {b.gsd_m for b in get_sensor("venus").bands} == {5}


def test_band_names_normalise():
    assert normalise_band_name("b2") == "B02"
    assert normalise_band_name("B8a") == "B8A"
    assert normalise_band_name("red") == "RED"
    # one sensor or product prefix is dropped (VENµS GeoTIFFs describe their bands VENUS_B1 ... VENUS_B12;
    # Landsat Collection 2 names SR_B4); longer stems stay as they are
    assert [normalise_band_name(n) for n in ("VENUS_B1", "venus_b10", "SR_B4", "S2_B8A")] == ["B01", "B10", "B04",
                                                                                              "B8A"]
    assert normalise_band_name("LC08_L1TP_B4") == "LC08_L1TP_B4" and normalise_band_name("QA_PIXEL") == "QA_PIXEL"
    assert get_sensor("S2").band("b04").name == "B04"


def test_unknown_sensor_and_band():
    with pytest.raises(SensorError, match="unknown sensor"):
        get_sensor("nope")
    with pytest.raises(SensorError, match="unknown band"):
        get_sensor("sentinel2").band("B13")


def test_user_sensor_from_toml(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('name = "mycam"\n[[bands]]\nname = "pan"\ngsd_m = 2.0\nmtf_nyquist = 0.15\n')
    s = load_sensor(p)
    assert s.name == "mycam" and s.band("PAN").mtf_nyquist == 0.15
    assert get_sensor(p).name == "mycam"
    assert [x.name for x in list_sensors()][0] == "sentinel2"


def test_user_sensor_rejects_bad_mtf():
    with pytest.raises(SensorError, match=r"\(0, 1\)"):
        sensor_from_dict({"name": "x", "bands": [{"name": "a", "gsd_m": 1, "mtf_nyquist": 1.2}]})
    with pytest.raises(SensorError, match="missing the key"):
        sensor_from_dict({"name": "x", "bands": [{"name": "a"}]})


def test_a_band_named_twice_is_refused():
    """`x` and `X` (or B2 and B02) are one band name: a second definition could never be used."""
    for a, b in (("x", "X"), ("B2", "B02")):
        d = {"name": "dup", "bands": [{"name": a, "gsd_m": 10, "mtf_nyquist": 0.3},
                                      {"name": b, "gsd_m": 10, "mtf_nyquist": 0.1}]}
        with pytest.raises(SensorError, match="twice"):
            sensor_from_dict(d)
