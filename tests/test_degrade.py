"""Known answers for the degradation operator: grid, MTF, constants, identity, NaN, noise, gradients."""

import numpy as np
import pytest
import torch

from eosr.degrade import Degradation, calibrate_psf, simulate_frames
from eosr.errors import ScaleError, SensorError, ShapeError
from eosr.physics import estimate_shift, mtf_from_sigma, sigma_from_mtf

S2_10M = ["B02", "B03", "B04", "B08"]


@pytest.mark.parametrize("r", [2, 3, 4])
@pytest.mark.parametrize("m", [0.15, 0.233, 0.4])
def test_whole_operator_attenuates_a_cosine_by_the_mtf(r, m):
    """The full operator (not only its kernel) passes a cosine near the LR Nyquist with gain MTF(f)."""
    n = 48 * r
    f = 0.9 * 0.5 / r  # cycles per HR pixel, just below the LR Nyquist
    x = np.arange(n) + 0.5  # HR pixel centres (pixel-is-area, origin at the edge)
    img = np.cos(2 * np.pi * f * x)[None, None, :].repeat(n, 1)
    lr = Degradation.from_mtf([m], r).downsample(img)
    xl = (np.arange(n // r) + 0.5) * r  # LR pixel centres = HR block centres
    ref = np.cos(2 * np.pi * f * xl)
    core = slice(6, -6)
    amp = np.dot(lr[0, 5, core], ref[core]) / np.dot(ref[core], ref[core])
    sigma = sigma_from_mtf(m, r)
    assert amp == pytest.approx(np.exp(-2 * np.pi**2 * sigma**2 * f**2), rel=1e-3)
    # in phase: the LR samples sit at the HR block centres (no half-pixel drift for even r)
    assert np.abs(lr[0, 5, core] - amp * ref[core]).max() < 1e-3


def test_no_box_on_top_mtf_at_nyquist():
    # MTF at Nyquist of the whole operator equals m; an r x r box average would give ~0.64 m
    r, m = 2, 0.3
    op = Degradation.from_mtf([m], r)
    sig = op.sigmas[0]
    assert mtf_from_sigma(sig, r) == pytest.approx(m)


@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_constant_degrades_to_constant(r):
    op = Degradation.from_sensor("sentinel2", S2_10M, r)
    c = np.full((4, 10 * r, 7 * r), 0.37)
    out = op(c)
    assert out.shape == (4, 10, 7)
    assert np.abs(out - 0.37).max() < 1e-12


def test_identity_at_r1_sigma0():
    x = np.random.default_rng(0).random((3, 17, 23))
    assert np.abs(Degradation(scale=1, sigmas=(0.0,)).downsample(x) - x).max() < 1e-12


def test_numpy_and_torch_agree_and_types_are_kept(s2_10m):
    op = Degradation.from_sensor("sentinel2", S2_10M, 2)
    a = s2_10m.astype(np.float32)
    out_np = op(a)
    out_t = op(torch.from_numpy(a))
    assert isinstance(out_np, np.ndarray) and isinstance(out_t, torch.Tensor)
    assert out_np.dtype == np.float32 and out_t.dtype == torch.float32
    assert np.abs(out_np - out_t.numpy()).max() < 1e-6
    batched = op(torch.from_numpy(np.stack([a, a])))
    assert batched.shape == (2, 4, 60, 60)
    assert torch.allclose(batched[1], out_t)
    assert np.abs(op(s2_10m) - out_np).max() < 1e-6  # float64 path


def test_gradcheck():
    op = Degradation.from_mtf([0.3, 0.2], 2)
    x = torch.rand(1, 2, 12, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.downsample, (x,))
    assert torch.autograd.gradcheck(op.blur, (x,))


def test_operator_is_linear_and_its_adjoint_exists():
    op = Degradation.from_sensor("sentinel2", S2_10M, 2)
    rng = np.random.default_rng(1)
    a, b = rng.random((4, 16, 16)), rng.random((4, 16, 16))
    assert np.allclose(op.downsample(2 * a + b), 2 * op.downsample(a) + op.downsample(b))


def test_nan_nodata_propagates_locally():
    op = Degradation.from_sensor("sentinel2", S2_10M, 2)
    x = np.full((4, 64, 64), 0.2)
    x[1, 30, 30] = np.nan
    out = op(x)
    bad = np.isnan(out)
    assert not bad[[0, 2, 3]].any()
    assert bad[1, 15, 15] and 1 < bad[1].sum() < 64  # the LR pixels whose support touches it
    assert np.abs(out[~bad] - 0.2).max() < 1e-12  # NaN never leaks elsewhere


def test_even_and_odd_scale_share_origin(s2_10m):
    """A point source at the centre of HR block (i, j) lands on LR pixel (i, j) for r = 2 and 3."""
    for r in (2, 3):
        img = np.zeros((1, 12 * r, 12 * r))
        i, j = 4, 7
        img[0, i * r : (i + 1) * r, j * r : (j + 1) * r] = 1.0  # the whole block: symmetric about its centre
        lr = Degradation.from_mtf([0.3], r).downsample(img)[0]
        assert np.unravel_index(np.argmax(lr), lr.shape) == (i, j)
        assert lr[i, j - 1] == pytest.approx(lr[i, j + 1])  # symmetric about the block centre
        assert lr[i - 1, j] == pytest.approx(lr[i + 1, j])


def test_noise_is_seeded_and_has_the_right_sigma():
    op = Degradation.from_mtf([0.3], 2, noise_sigma=0.01)
    x = np.full((1, 256, 256), 0.2)
    a, b, c = op(x, seed=1), op(x, seed=1), op(x, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.std(a - 0.2) == pytest.approx(0.01, rel=0.05)


def test_signal_dependent_noise_follows_snr():
    op = Degradation.from_mtf([0.3], 1, snr=100.0, snr_reference=0.2)
    lo, hi = np.full((1, 200, 200), 0.05), np.full((1, 200, 200), 0.2)
    s_hi = np.std(op(hi, seed=0) - 0.2)
    s_lo = np.std(op(lo, seed=0) - 0.05)
    assert s_hi == pytest.approx(0.2 / 100, rel=0.05)  # SNR 100 at the reference reflectance
    assert s_lo == pytest.approx(s_hi * 0.5, rel=0.06)  # photon noise: sigma ~ sqrt(signal)


def test_quantisation_gain_offset():
    op = Degradation.from_mtf([0.3], 1, bits=8, gain=1.1, offset=0.01)
    x = np.full((1, 8, 8), 0.5)
    out = op(x)
    step = 1.0 / 255
    assert np.allclose(out / step, np.round(out / step))
    assert out[0, 0, 0] == pytest.approx(1.1 * 0.5 + 0.01, abs=step / 2)


def test_explicit_kernel_equals_gaussian_route():
    sig = sigma_from_mtf(0.3, 3)
    from eosr.physics import gaussian_kernel

    k = gaussian_kernel(sig, 1)  # odd, centred: the operator re-centres it per scale
    x = np.random.default_rng(2).random((1, 30, 30))
    for r in (1, 3):
        a = Degradation(scale=r, sigmas=(sig,)).downsample(x)
        b = Degradation(scale=r, kernels=(k,)).downsample(x)
        assert np.abs(a - b).max() < 1e-6
    a2 = Degradation(scale=2, sigmas=(sig,)).downsample(x)
    b2 = Degradation(scale=2, kernels=(k,)).downsample(x)  # half-pixel Fourier re-centring
    assert np.abs(a2 - b2).max() < 2e-3


def test_bad_input():
    with pytest.raises(ScaleError):
        Degradation.from_sensor("sentinel2", S2_10M, 2.5)
    with pytest.raises(ScaleError):
        Degradation.from_sensor("sentinel2", S2_10M, 0)
    with pytest.raises(SensorError, match="unknown sensor"):
        Degradation.from_sensor("sentinel-9", S2_10M, 2)
    with pytest.raises(SensorError, match="unknown band"):
        Degradation.from_sensor("sentinel2", ["B99"], 2)
    with pytest.raises(SensorError, match=r"\(0, 1\)"):
        Degradation.from_mtf([1.5], 2)
    op = Degradation.from_sensor("sentinel2", S2_10M, 2)
    with pytest.raises(ShapeError, match="band axis"):
        op(np.zeros((64, 64)))
    with pytest.raises(ScaleError, match="divisible"):
        op(np.zeros((4, 65, 64)))
    with pytest.raises(ShapeError, match="4 band PSFs"):
        op(np.zeros((3, 64, 64)))
    assert op.crop(np.zeros((4, 65, 67))).shape == (4, 64, 66)


def test_wald_operator_is_weaker():
    full = Degradation.from_sensor("sentinel2", ["B04"], 2)
    wald = Degradation.from_sensor("sentinel2", ["B04"], 2, wald=True)
    assert wald.sigmas[0] < full.sigmas[0]
    d = full.describe()
    assert d["mtf_at_lr_nyquist"] == [pytest.approx(0.233)]


# ---------------------------------------------------------------- PSF calibration on real imagery
def test_calibration_recovers_sigma_and_offset_on_real_imagery(s2_10m):
    op = Degradation.from_sensor("sentinel2", S2_10M, 2, shift=(0.3, -0.45))
    fit = calibrate_psf(s2_10m, op.downsample(s2_10m), 2)
    assert np.allclose(fit.sigma, op.sigmas, rtol=0.05)
    assert np.allclose(fit.shift_y, 0.3, atol=0.05) and np.allclose(fit.shift_x, -0.45, atol=0.05)
    assert np.allclose(fit.gain, 1.0, atol=1e-3)


def test_calibration_on_landsat_pan_with_noise(landsat_pan):
    op = Degradation.from_mtf([0.25], 2, noise_sigma=0.002)
    fit = calibrate_psf(landsat_pan, op(landsat_pan, seed=0), 2)
    assert fit.sigma[0] == pytest.approx(op.sigmas[0], rel=0.05)
    assert abs(fit.shift_y[0]) < 0.05 and abs(fit.shift_x[0]) < 0.05
    assert fit.mtf[0] == pytest.approx(0.25, abs=0.02)


def test_calibration_on_third_party_reduced_resolution_set():
    """s2_ssc_cnn_hvn2: the 20 m bands were degraded x2 by the separable kernel
    [0.053253, 0.446747, 0.446747, 0.053253], block-centred: its MTF at the LR Nyquist is 0.556."""
    h5py = pytest.importorskip("h5py")
    from conftest import HVN2

    p = HVN2 / "coastalA_cell_RR.mat"
    with h5py.File(p) as h:
        hr = np.stack([h["Xm_im"][b].T for b in range(6)])
        refs = h["Yim"][()].ravel()
        lr = np.stack([h[refs[i]][()].T for i in (4, 5, 6, 8, 10, 11)])  # B5 B6 B7 B8A B11 B12
    w = np.array([0.053253, 0.446747, 0.446747, 0.053253])
    true_mtf = abs(np.sum(w * np.exp(-2j * np.pi * 0.25 * (np.arange(4) - 1.5))))
    fit = calibrate_psf(hr, lr, 2)
    assert np.allclose(fit.mtf, true_mtf, atol=0.02)
    assert np.abs(fit.shift_y).max() < 0.05 and np.abs(fit.shift_x).max() < 0.05


# ---------------------------------------------------------------- multi-image mode
def test_frames_record_their_shifts_and_registration_recovers_them(s2_10m):
    op = Degradation.from_sensor("sentinel2", S2_10M, 2)
    fs = simulate_frames(s2_10m, op, 5, max_shift_lr=0.8, sigma_jitter=0.0, gain_jitter=0.0, bias_jitter=0.0,
                         seed=3)
    assert fs.frames.shape == (5, 4, 60, 60) and fs.shifts.shape == (5, 2)
    assert np.all(fs.shifts[0] == 0)
    for k in range(1, 5):
        dy, dx = estimate_shift(fs.frames[0], fs.frames[k])  # LR pixels
        assert (dy * 2, dx * 2) == pytest.approx(tuple(fs.shifts[k]), abs=0.1)


def test_frames_with_real_cloud_masks(s2_10m):
    from conftest import EOPATCH

    p = EOPATCH / "CLM.npy"
    clm = np.load(p)
    op = Degradation.from_sensor("sentinel2", S2_10M, 2, noise_sigma=0.001)
    fs = simulate_frames(s2_10m, op, 6, cloud_masks=clm, seed=0)
    frames = np.asarray(fs.frames)
    assert np.array_equal(np.isnan(frames).any(axis=1), ~fs.valid)
    assert (~fs.valid).any()
