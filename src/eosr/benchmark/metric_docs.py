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
    return MetricDoc(name, name, None, "", "see docs/metrics.md", "eosr.metrics", quality=True)
