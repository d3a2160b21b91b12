"""Checkpoints: ``<path>.safetensors`` (weights and normalisation buffers) + ``<path>.json`` (model card).

The card records what is needed to rebuild and to trust the model: ``name``, ``architecture``
({"model", "kwargs"}), ``bands``, ``scale``, ``normalisation`` ({"mean", "std"}), ``receptive_field``,
``n_params``, ``sensor_operator`` (e.g. ``Degradation.describe()``), ``training`` (data, split manifest,
config), ``metrics``, ``eosr_version``, ``format`` and the SHA-256 of the weights file, after the card's
``schema_version`` (:mod:`eosr._schema`; cards without one, written before it existed, still load). Both
files are written to temporary names and renamed at the end (weights first, so a card always has its weights).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from eosr._schema import check_schema, stamped
from eosr.errors import ModelError
from eosr.models.base import SRNet

FORMAT = "eosr-checkpoint/1"
SUFFIXES = (".safetensors", ".json")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, card) paths for a checkpoint path given with or without a suffix."""
    p = Path(path)
    if p.suffix in SUFFIXES:
        p = p.with_suffix("")
    return Path(f"{p}.safetensors"), Path(f"{p}.json")


def _clean(v: Any) -> Any:
    """JSON-strict copy: NaN/inf become None, tuples lists, Paths strings."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item") and callable(v.item):
        return _clean(v.item())
    return v


def save_checkpoint(model: SRNet, path: str | Path, card: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` and ``<path>.json`` atomically; returns both paths.

    ``card`` adds user fields (training data and split manifest, metrics, sensor operator, ...); the
    architecture, bands, scale, normalisation, receptive field and parameter count come from the model.
    """
    from safetensors.torch import save_file

    import eosr
    from eosr.io.raster import atomic_path

    if not isinstance(model, SRNet):
        raise ModelError(f"save_checkpoint needs an eosr model (SRNet), got {type(model).__name__}")
    wpath, jpath = checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    spec = model.spec
    info: dict[str, Any] = dict(card or {})
    info.setdefault("name", wpath.stem)
    info.update(
        format=FORMAT,
        architecture=model.arch,
        scale=spec.scale,
        bands=list(spec.bands) if spec.bands else None,
        n_bands=model.n_bands,
        normalisation=(
            {"mean": list(spec.mean), "std": list(spec.std or ())} if spec.mean is not None else None
        ),
        receptive_field=spec.receptive_field,
        multi_image=spec.multi_image,
        n_params=model.n_params(),
        eosr_version=eosr.__version__,
    )
    info.setdefault("sensor_operator", None)
    info.setdefault("training", None)
    info.setdefault("metrics", None)
    with atomic_path(wpath) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "model": str(model.arch.get("model"))})
        info["weights_sha256"] = hashlib.sha256(tmp.read_bytes()).hexdigest()
    text = json.dumps(_clean(stamped(info)), indent=2, allow_nan=False)
    with atomic_path(jpath) as tmp:
        tmp.write_text(text + "\n")
    return wpath, jpath


def read_card(path: str | Path) -> dict[str, Any]:
    """The JSON card of a checkpoint."""
    _, jpath = checkpoint_paths(path)
    if not jpath.is_file():
        raise ModelError(f"checkpoint card not found: {jpath}")
    try:
        card = json.loads(jpath.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"unreadable checkpoint card {jpath}: {e}") from None
    if not isinstance(card, dict) or "architecture" not in card:
        raise ModelError(f"{jpath} is not an eosr checkpoint card (no 'architecture')")
    check_schema(card, str(jpath), ModelError)
    return card


def check_card(card: dict[str, Any], *, scale: int | None = None, bands: Sequence[str] | None = None,
               n_bands: int | None = None, where: str = "checkpoint") -> None:
    """Raise :class:`ModelError` if the checkpoint's scale or bands differ from the requested ones."""
    from eosr.sensors import normalise_band_name

    if scale is not None and int(scale) != int(card.get("scale", -1)):
        raise ModelError(f"{where} is a x{card.get('scale')} model, but x{scale} was requested")
    have = card.get("bands")
    if bands is not None:
        want = [normalise_band_name(str(b)) for b in (bands.split(",") if isinstance(bands, str) else bands)]
        if have is not None and list(have) != want:
            raise ModelError(f"{where} was trained on bands {','.join(have)}, but {','.join(want)} were requested")
        if have is None and card.get("n_bands") not in (None, len(want)):
            raise ModelError(f"{where} takes {card.get('n_bands')} bands, but {len(want)} were requested")
    if n_bands is not None and card.get("n_bands") not in (None, int(n_bands)):
        raise ModelError(f"{where} takes {card.get('n_bands')} bands, but {n_bands} were requested")


def load_checkpoint(path: str | Path, *, scale: int | None = None, bands: Sequence[str] | None = None,
                    n_bands: int | None = None) -> SRNet:
    """Rebuild the model of a checkpoint and load its weights (eval mode); ``card`` is kept on ``model.card``.

    Giving ``scale``, ``bands`` or ``n_bands`` checks them against the card (:class:`ModelError` if wrong).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from eosr.models.registry import build_from_arch

    wpath, jpath = checkpoint_paths(path)
    card = read_card(path)
    check_card(card, scale=scale, bands=bands, n_bands=n_bands, where=f"checkpoint {jpath.stem}")
    if not wpath.is_file():
        raise ModelError(f"checkpoint weights not found: {wpath}")
    model = build_from_arch(card["architecture"])
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"unreadable weights {wpath}: {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise ModelError(f"weights {wpath.name} do not fit architecture {card['architecture'].get('model')}: "
                         f"{' '.join(x.strip() for x in first[:2])}") from None
    model.spec.name = str(card.get("name", wpath.stem))
    model.card = card  # type: ignore[assignment]
    return model.eval()


def predict(model: torch.nn.Module, lr: Any, **kw: Any) -> Any:  # re-exported by eosr.models
    """Run ``model`` without gradients on NumPy or torch, (C, h, w) or (B, C, h, w); returns the input's type."""
    from eosr._arrays import as_batch, like, to_tensor, unbatch

    t = to_tensor(lr, torch.float32)
    b, was3d = as_batch(t, "LR image")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(b, **kw)
    finally:
        model.train(was_training)
    if isinstance(out, tuple):
        return tuple(like(unbatch(o, was3d), lr) for o in out)
    return like(unbatch(out, was3d), lr)
