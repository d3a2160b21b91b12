"""What the report says about each metric: direction, unit, what it needs, formula and source.

Names follow the JSON of ``eosr.evaluate`` (issue 4). A metric that ``eosr.evaluate`` returns but this
table does not know still enters the results; the report then shows it without a definition.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDoc:
    """A metric as the benchmark presents it."""

    name: str
    title: str
    higher_is_better: bool | None
    unit: str
    formula: str
    source: str
    needs_hr: bool = True
    needs_lr: bool = False
    quality: bool = True  # False: a diagnostic (shift, gain, bias), not ranked
    how: str = ""  # one line: how to read the number (shown in the report next to the value)


_D = MetricDoc
_CONV_DETAIL = "eosr conventions, docs/conventions.md#hallucination-omission-improvement"
_LIST = [
    _D("psnr", "PSNR", True, "dB", "10 log10(R^2 / MSE), MSE pooled over valid pixels of all bands",
       "Standard; R = data_range (1.0 for reflectance)"),
    _D("rmse", "RMSE", False, "reflectance", "sqrt(mean((SR - HR)^2))", "Standard"),
    _D("mae", "MAE", False, "reflectance", "mean(|SR - HR|)", "Standard"),
    _D("ssim", "SSIM", True, "",
       "mean of (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)), "
       "Gaussian window 11, sigma 1.5, C1 = (0.01 R)^2, C2 = (0.03 R)^2",
       "Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 13(4), 2004"),
    _D("sam_deg", "SAM", False, "deg", "mean over pixels of arccos(<SR, HR> / (|SR| |HR|))",
       "Kruse et al., Remote Sens. Environ. 44, 1993"),
    _D("ergas", "ERGAS", False, "", "(100 / r) sqrt(mean_b(RMSE_b^2 / mean(HR_b)^2))",
       "Wald, Data Fusion, Presses de l'Ecole des Mines, 2002"),
    _D("uiqi", "UIQI", True, "", "SSIM with C1 = C2 = 0", "Wang & Bovik, IEEE SPL 9(3), 2002"),
    _D("lr_fidelity", "LR fidelity", False, "reflectance",
       "mean(|LR - D(SR)|), D = the sensor operator (PSF + decimation)",
       "Physically informed consistency (eosr; cf. CESBIO's Sentinel-2 SR evaluation, Michel et al. 2022)",
       needs_hr=False, needs_lr=True),
    _D("hr_fidelity", "HR fidelity", False, "reflectance",
       "mean(|(HR - LPF(HR)) - (SR - LPF(SR))|), LPF = the sensor PSF on the HR grid",
       "eosr (high-frequency detail only; cf. CESBIO's HR fidelity)"),
    _D("psnr_low_gradient", "PSNR, low-gradient stratum", True, "dB",
       "PSNR over pixels with g <= q50(g); g = mean_b sqrt(dx^2 + dy^2) of HR (central differences)",
       "Gradient strata as in CESBIO's S2 SR evaluation (percentile variant)"),
    _D("psnr_high_gradient", "PSNR, high-gradient stratum", True, "dB", "PSNR over pixels with g >= q90(g)",
       "Gradient strata as in CESBIO's S2 SR evaluation (percentile variant)"),
    _D("rmse_low_gradient", "RMSE, low-gradient stratum", False, "reflectance", "RMSE over pixels with g <= q50(g)",
       "Gradient strata (percentile variant)"),
    _D("rmse_high_gradient", "RMSE, high-gradient stratum", False, "reflectance", "RMSE over pixels with g >= q90(g)",
       "Gradient strata (percentile variant)"),
    _D("frr", "Frequency restoration rate", True, "%",
       "100 sum(max(min(P, T), min(I, T)) - min(T, I)) / sum(T - min(T, I)) on radial power profiles in dB "
       "over all frequencies (0, 0.5] cycles per HR px (T = HR, I = interpolated LR, P = SR)",
       "Michel et al. 2024, Revisiting remote sensing cross-sensor SISR"),
    _D("shift_x_px", "Shift x", None, "HR px", "SR(row, col) ~ HR(row - dy, col - dx), +x = east; phase correlation",
       "Guizar-Sicairos et al., Opt. Lett. 33(2), 2008", quality=False),
    _D("shift_y_px", "Shift y", None, "HR px", "as shift_x_px, +y = south", "Guizar-Sicairos et al. 2008",
       quality=False),
    _D("gain", "Gain", None, "", "least squares SR_aligned ~ gain HR + bias",
       "eosr conventions, docs/conventions.md#gain-and-bias", quality=False),
    _D("bias", "Bias", None, "reflectance", "least squares SR_aligned ~ gain HR + bias",
       "eosr conventions, docs/conventions.md#gain-and-bias", quality=False),
    _D("psnr_aligned", "PSNR (aligned)", True, "dB", "PSNR after shift, gain and bias compensation",
       "WorldStrat / MuS2 style compensated metrics"),
    _D("hallucination", "Hallucination", False, "",
       "sum|a - c| / sum|t|; t = HR - I, a = SR' - I, c = sign(t) clip(a sign(t), 0, |t|), SR' compensated",
       _CONV_DETAIL),
    _D("omission", "Omission", False, "", "sum|t - c| / sum|t|", _CONV_DETAIL),
    _D("improvement", "Improvement", True, "", "sum|c| / sum|t|", _CONV_DETAIL),
]

_LIST += [
    _D("rmse_aligned", "RMSE (aligned)", False, "reflectance", "RMSE after shift, gain and bias compensation",
       "WorldStrat / MuS2 style compensated metrics"),
    _D("mae_aligned", "MAE (aligned)", False, "reflectance", "MAE after shift, gain and bias compensation",
       "WorldStrat / MuS2 style compensated metrics"),
    _D("ssim_aligned", "SSIM (aligned)", True, "", "SSIM after shift, gain and bias compensation",
       "WorldStrat / MuS2 style compensated metrics"),
    _D("mae_low_gradient", "MAE, low-gradient stratum", False, "reflectance", "MAE over pixels with g <= q50(g)",
       "Gradient strata (percentile variant)"),
    _D("mae_high_gradient", "MAE, high-gradient stratum", False, "reflectance", "MAE over pixels with g >= q90(g)",
       "Gradient strata (percentile variant)"),
    _D("ssim_low_gradient", "SSIM, low-gradient stratum", True, "", "mean of the SSIM map over pixels with g <= q50(g)",
       "Gradient strata (percentile variant)"),
    _D("ssim_high_gradient", "SSIM, high-gradient stratum", True, "",
       "mean of the SSIM map over pixels with g >= q90(g)",
       "Gradient strata (percentile variant)"),
    _D("lr_fidelity_l2", "LR fidelity (L2)", False, "reflectance", "sqrt(mean((LR - D(SR))^2))",
       "Physically informed consistency (eosr)", needs_hr=False, needs_lr=True),
    _D("hr_fidelity_l2", "HR fidelity (L2)", False, "reflectance",
       "sqrt(mean(((HR - LPF(HR)) - (SR - LPF(SR)))^2))", "eosr (high-frequency detail only)"),
    _D("sam_lr_deg", "SAM against LR", False, "deg", "SAM(D(SR), LR): spectral angle after degrading SR",
       "Kruse et al. 1993 on the LR grid (eosr)", needs_hr=False, needs_lr=True),
    _D("frr_overshoot_db", "FRR overshoot", False, "dB",
       "mean over frequency bins of max(P - T, 0), radial power profiles in dB (P = SR', T = HR)",
       "Michel et al. 2024 (dB-difference form, docs/conventions.md#frequency-restoration-in-db)"),
    _D("frr_undershoot_db", "FRR undershoot", False, "dB",
       "mean over frequency bins of max(I - P, 0), radial power profiles in dB (I = interpolated LR)",
       "Michel et al. 2024 (dB-difference form, docs/conventions.md#frequency-restoration-in-db)"),
    _D("effective_resolution_px", "Effective resolution", False, "HR px",
       "0.5 / f_c, f_c = first frequency where the coherent transfer Re sum S H* / max(sum|S|^2, sum|H|^2) < 0.5",
       "eosr, after Fourier ring correlation (Saxton & Baumeister, J. Microsc. 127, 1982)"),
    _D("hf_gain_db", "HF gain (no reference)", None, "dB",
       "mean of P - I over frequency bins above the LR Nyquist (dB profiles)", "eosr (no-reference FRR variant)",
       needs_hr=False, needs_lr=True, quality=False),
    _D("lf_deviation_db", "LF deviation (no reference)", False, "dB",
       "mean |P - I| below half the LR Nyquist (dB profiles)", "eosr (no-reference FRR variant)",
       needs_hr=False, needs_lr=True),
]

#: How to read each metric (one line, shown in the report instead of a pointer to the docs).
HOW = {
    "psnr": "higher is better; +1 dB is about 11 % less mean squared error; capped at 120 dB",
    "rmse": "lower is better; in reflectance units (0.01 = one reflectance percent)",
    "mae": "lower is better; in reflectance units",
    "ssim": "higher is better, 1 = identical local structure; differences below 0.001 are rarely visible",
    "sam_deg": "lower is better; spectral angle in degrees, 0 = same spectral shape (brightness ignored)",
    "ergas": "lower is better; relative RMSE per band, normalised by the band mean and the scale",
    "uiqi": "higher is better, 1 = identical; SSIM without stabilising constants",
    "lr_fidelity": "lower is better; how far SR, degraded by the sensor, is from the LR it came from",
    "lr_fidelity_l2": "lower is better; as LR fidelity with a squared norm (outliers weigh more)",
    "hr_fidelity": "lower is better; error on the high-frequency detail alone (what SR adds)",
    "hr_fidelity_l2": "lower is better; as HR fidelity with a squared norm",
    "psnr_low_gradient": "higher is better; flat areas, where interpolation already does well",
    "psnr_high_gradient": "higher is better; edges and texture, where SR must earn its keep",
    "rmse_low_gradient": "lower is better; flat areas", "rmse_high_gradient": "lower is better; edges and texture",
    "mae_low_gradient": "lower is better; flat areas", "mae_high_gradient": "lower is better; edges and texture",
    "ssim_low_gradient": "higher is better; flat areas", "ssim_high_gradient": "higher is better; edges and texture",
    "frr": "higher is better; share of the spectral energy missing in the interpolated LR that SR restores "
           "(0 = interpolation, 100 = HR)",
    "frr_overshoot_db": "lower is better; power SR adds beyond HR (artefacts, noise), 0 = none",
    "frr_undershoot_db": "lower is better; power SR removed from its own input (over-smoothing), 0 = none",
    "effective_resolution_px": "lower is better; finest HR-pixel scale at which SR still matches HR (1 = full HR)",
    "shift_x_px": "diagnostic: should be ≈ 0; a constant shift lowers PSNR without any loss of detail",
    "shift_y_px": "diagnostic: should be ≈ 0; a constant shift lowers PSNR without any loss of detail",
    "gain": "diagnostic: should be ≈ 1; a gain ≠ 1 is a radiometric error, not a loss of detail",
    "bias": "diagnostic: should be ≈ 0 (reflectance); an offset is a radiometric error, not a loss of detail",
    "psnr_aligned": "higher is better; PSNR once shift, gain and bias are removed (detail quality alone)",
    "rmse_aligned": "lower is better; RMSE once shift, gain and bias are removed",
    "mae_aligned": "lower is better; MAE once shift, gain and bias are removed",
    "ssim_aligned": "higher is better; SSIM once shift, gain and bias are removed",
    "hallucination": "lower is better; share of added detail that HR does not have (0 = none invented)",
    "omission": "lower is better; share of the missing detail SR did not restore (1 = none restored)",
    "improvement": "higher is better; share of the missing detail SR restored (1 = all of it)",
    "sam_lr_deg": "lower is better; spectral consistency with the LR after degrading SR",
    "hf_gain_db": "diagnostic: high-frequency power SR adds over interpolation; cannot tell true from invented",
    "lf_deviation_db": "lower is better; SR should keep the low frequencies the LR measures",
}
_LIST = [_D(**{**d.__dict__, "how": HOW.get(d.name, "")}) for d in _LIST]

#: Known metrics by name.
METRICS: dict[str, MetricDoc] = {d.name: d for d in _LIST}


def known_metric_names() -> set[str]:
    """Names accepted in a config's ``metrics`` list (this table plus what ``eosr.metrics`` declares)."""
    names = set(METRICS)
    try:  # the metrics package may publish its own list
        import eosr.metrics as m

        extra = getattr(m, "METRIC_NAMES", None)
        if extra:
            names |= set(extra)
    except ImportError:  # pragma: no cover
        pass
    return names


def doc_for(name: str) -> MetricDoc:
    """The doc of a metric, or a neutral placeholder for a metric this table does not know."""
    if name in METRICS:
        return METRICS[name]
    return MetricDoc(name, name, None, "", "(not described by eosr.benchmark)", "eosr.metrics", quality=True,
                     how="a metric the benchmark does not know: read its definition where it was computed")
