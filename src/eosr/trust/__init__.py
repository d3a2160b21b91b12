"""Trust: uncertainty, calibration, saliency, support and layer-level analysis of SR models.

Submodules (import what you need; nothing heavy is imported eagerly):

- :mod:`eosr.trust.uncertainty`: MC dropout, deep ensembles, variance heads, ``UncertainSR`` wrapper.
- :mod:`eosr.trust.calibration`: sparsification/AUSE, Spearman, interval coverage, conformal recalibration.
- :mod:`eosr.trust.saliency`: input gradients, integrated gradients, effective receptive field.
- :mod:`eosr.trust.support`: the share of SR detail above the LR Nyquist frequency.
- :mod:`eosr.trust.layers`: controlled stimuli, activation statistics, filter responses, hallucination trace.
- :mod:`eosr.trust.attention_model`: a small RCAN-style channel-attention SR net that exports its attention.
- :mod:`eosr.trust.classical`: back-projection SR with a jittered PSF (a cheap, training-free ensemble).
- :mod:`eosr.trust.explain`: the API behind ``eosr explain`` (figures and JSON).
"""

from __future__ import annotations

from eosr._lazy import lazy_exports

_EXPORTS = {
    "Uncertainty": "uncertainty",
    "UncertainSR": "uncertainty",
    "mc_dropout": "uncertainty",
    "ensemble": "uncertainty",
    "ensemble_from_state_dicts": "uncertainty",
    "predict_with_head": "uncertainty",
    "head_variance": "uncertainty",
    "has_variance_head": "uncertainty",
    "split_output": "uncertainty",
    "coverage": "calibration",
    "spearman": "calibration",
    "Sparsification": "calibration",
    "sparsification": "calibration",
    "ConformalCalibration": "calibration",
    "calibration_path": "calibration",
    "fit_conformal": "calibration",
    "group_weights": "calibration",
    "weighted_conformal_quantile": "calibration",
    "calibration_table": "calibration",
    "input_gradient": "saliency",
    "IntegratedGradients": "saliency",
    "integrated_gradients": "saliency",
    "ReceptiveField": "saliency",
    "effective_receptive_field": "saliency",
    "attribution_mass_within": "saliency",
    "band_limited": "support",
    "SupportMaps": "support",
    "support_maps": "support",
    "make_stimulus": "layers",
    "high_frequency_share": "layers",
    "LayerRecord": "layers",
    "activation_stats": "layers",
    "HallucinationTrace": "layers",
    "hallucination_trace": "layers",
    "FilterResponse": "layers",
    "filter_responses": "layers",
    "ChannelAttentionSR": "eosr.models.rcan",
    "write_attention": "attention_model",
    "psf_jitter_ensemble": "classical",
    "explain": "explain",
    "resolve_model": "explain",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports("eosr.trust", _EXPORTS)
