"""Heteroscedastic (aleatoric) negative log-likelihoods of Kendall & Gal, "What uncertainties do we
need in Bayesian deep learning for computer vision?", NeurIPS 2017.

The network predicts y_hat and a log-scale s per pixel and band:

    Gaussian, s = log sigma^2:  L = (1/|V|) sum_V [ 0.5 e^(-s) (y - y_hat)^2 + 0.5 s ]
    Laplace,  s = log b:        L = (1/|V|) sum_V [ |y - y_hat| e^(-s) + s ]

(constants 0.5 log 2 pi and log 2 dropped). For a fixed residual d, the Gaussian loss is minimised
at sigma^2 = d^2, the Laplace loss at b = |d| (docs/conventions.md#losses).
"""

from __future__ import annotations

from typing import Any

import torch

from eosr.losses._common import batch4, masked_mean, out, validity


def _prep(pred: Any, s: Any, target: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p = batch4(pred, "prediction")
    ls = batch4(s, "log-scale").to(p.dtype)
    y = batch4(target, "target").to(p.dtype)
    valid = validity(p, ls, y, mask=mask)
    z = torch.zeros((), dtype=p.dtype)
    return torch.where(valid, p - y, z), torch.where(valid, ls, z), valid


def gaussian_nll(pred: Any, log_var: Any, target: Any, mask: Any = None) -> Any:
    """Gaussian NLL with ``log_var`` = s = log sigma^2 (Kendall & Gal 2017, eq. 8)."""
    d, s, v = _prep(pred, log_var, target, mask)
    return out(masked_mean(0.5 * torch.exp(-s) * d * d + 0.5 * s, v), pred)


def laplace_nll(pred: Any, log_b: Any, target: Any, mask: Any = None) -> Any:
    """Laplace NLL with ``log_b`` = s = log b, b the Laplace scale (not log sigma^2)."""
    d, s, v = _prep(pred, log_b, target, mask)
    return out(masked_mean(d.abs() * torch.exp(-s) + s, v), pred)
