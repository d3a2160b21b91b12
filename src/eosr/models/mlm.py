"""STAC Machine Learning Model (MLM) metadata of a checkpoint, built and validated with ``stac-model``.

The item describes what a user outside eosr needs to run the weights: the input bands, array layout and
type (reflectance, float32, ``(batch, bands, height, width)``), the scale factor, the tiling margin (the
receptive field in LR pixels: tiles overlapping by it give the whole-image result), the normalisation
(per-band z-score buffers stored IN the weights: the network takes reflectance), the operator the model
was trained with, and the weights asset with its SHA-256. ``stac-model`` (pydantic models of the MLM
extension, https://github.com/stac-extensions/mlm) validates the MLM fields when the item is built; the
STAC core fields are checked against the schemas ``pystac`` ships (tests). Install with
``pip install 'eosr[stac]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eosr.errors import ModelError

#: Temporal applicability of a Sentinel-2 model: from Sentinel-2A's launch, open-ended (STAC core needs
#: both ends when ``datetime`` is null; MLM's own examples use a far end date the same way).
START, END = "2015-06-23T00:00:00Z", "9999-12-31T23:59:59Z"


def mlm_item(ref: str | os.PathLike[str]) -> dict[str, Any]:
    """The STAC item (a dict) with MLM metadata of a shipped weights name or checkpoint path."""
    try:
        import pystac
        from stac_model.base import ProcessingExpression
        from stac_model.input import InputStructure, ModelInput
        from stac_model.output import ModelOutput, ModelResult
        from stac_model.schema import MLModelExtension, MLModelProperties
    except ImportError:
        raise ModelError("STAC MLM metadata needs the stac-model package: pip install 'eosr[stac]'") from None

    from eosr.models.checkpoint import read_card
    from eosr.models.registry import checkpoint_stem

    stem = checkpoint_stem(str(ref))
    if stem is None:
        raise ModelError(f"{ref} is an architecture without weights: MLM metadata describes trained weights")
    card = read_card(stem)
    weights = Path(f"{stem}.safetensors")
    bands = [str(b) for b in card.get("bands") or []]
    scale = int(card["scale"])
    arch = card.get("architecture", {})
    c = len(bands) or int(card.get("n_bands", 0))
    layout = ["batch", "bands", "height", "width"]
    model_input = ModelInput(
        name=f"{c}-band reflectance",
        bands=bands,
        input=InputStructure(shape=[-1, c, -1, -1], dim_order=layout, data_type="float32"),
        value_scaling=None,  # the per-band z-score is inside the weights (normalisation buffers)
        resize_type=None,
        pre_processing_function=ProcessingExpression(format="python", expression="eosr.io.source:read_scene"),
    )
    model_output = ModelOutput(
        name="super-resolved reflectance",
        bands=bands,
        tasks={"super-resolution"},
        result=ModelResult(shape=[-1, c, -1, -1], dim_order=layout, data_type="float32"),
        post_processing_function=None,
    )
    outputs = [model_output]
    if card.get("uncertainty"):  # a variance head: the predictive std per band, calibrated
        outputs.append(ModelOutput(name="predictive std (calibrated)", bands=bands, tasks={"regression"},
                                   result=ModelResult(shape=[-1, c, -1, -1], dim_order=layout, data_type="float32"),
                                   post_processing_function=None))
    import torch

    props = MLModelProperties(
        name=str(card.get("name", stem.name)),
        architecture=str(arch.get("model", "unknown")),
        tasks={"super-resolution"},
        framework="pytorch",
        framework_version=torch.__version__.split("+")[0],
        accelerator="amd64",
        accelerator_constrained=False,
        file_size=weights.stat().st_size if weights.is_file() else 0,
        pretrained=True,
        pretrained_source="; ".join(_train_locations(card)) or None,
        total_parameters=int(card.get("n_params", 0)),
        input=[model_input],
        output=outputs,
    )
    item = pystac.Item(
        id=str(card.get("name", stem.name)), geometry=None, bbox=None, datetime=None,
        properties={"start_datetime": START, "end_datetime": END,
                    "description": f"eosr x{scale} super-resolution of {', '.join(bands)}; docs/models.md",
                    "eosr:scale": scale, "eosr:receptive_field_lr_px": int(card.get("receptive_field", 0)),
                    "eosr:tiling_margin_lr_px": int(card.get("receptive_field", 0)),
                    "eosr:normalisation": "per-band z-score inside the weights (buffers norm_mean, norm_std)",
                    "eosr:input_units": "reflectance (DN x scale + offset; see eosr.io.source.read_scene)",
                    "eosr:sensor_operator": card.get("sensor_operator"),
                    "eosr:eosr_version": card.get("eosr_version")},
        assets={"weights": pystac.Asset(weights.name, title="safetensors weights and normalisation buffers",
                                        media_type="application/octet-stream; application=safetensors",
                                        roles=["mlm:model", "mlm:weights", "data"],
                                        extra_fields={"mlm:artifact_type": "safetensors",
                                                      "eosr:weights_sha256": card.get("weights_sha256")}),
                "card": pystac.Asset(f"{stem.name}.json", title="eosr model card (training config, split manifest, "
                                     "operator, validation scores)", media_type="application/json",
                                     roles=["metadata"])},
    )
    ext = MLModelExtension.ext(item, add_if_missing=True)
    ext.apply(props.model_dump(by_alias=True, exclude_unset=True, exclude_defaults=True))
    return item.to_dict(include_self_link=False)


def _train_locations(card: dict[str, Any]) -> list[str]:
    """Training locations (train split only) of a card's config, or of its base model's (a head on a frozen
    base: ``card["base"]["name"]``)."""
    from eosr.models.checkpoint import read_card
    from eosr.models.registry import shipped_weights

    cfg = card.get("training", {}).get("config")
    if not isinstance(cfg, dict):
        base = card.get("base", {}).get("name") if isinstance(card.get("base"), dict) else None
        return _train_locations(read_card(shipped_weights()[base])) if base in shipped_weights() else []
    sources = cfg.get("data", {}).get("sources", [])
    return sorted({str(s.get("location", s.get("path", "?"))) for s in sources if s.get("split") in (None, "train")})
