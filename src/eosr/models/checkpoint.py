"""Checkpoints: ``<path>.safetensors`` (weights and normalisation buffers) + ``<path>.json`` (model card).

The card records what is needed to rebuild and to trust the model: ``name``, ``architecture``
({"model", "kwargs"}), ``bands``, ``scale``, ``normalisation`` ({"mean", "std"}), ``receptive_field``,
``n_params``, ``sensor_operator`` (e.g. ``Degradation.describe()``), ``training`` (data, split manifest,
config), ``metrics``, ``eosr_version``, ``format`` and the SHA-256 of the weights file, after the card's
``schema_version`` (:mod:`eosr._schema`; cards without one, written before it existed, still load). Both
files are written to temporary names and renamed at the end (weights first, so a card always has its weights).

Loading trusts nothing in the pair: the card's fields are checked against :mod:`eosr.models.limits` before
anything is built, and the weights' SHA-256 must equal the card's ``weights_sha256`` (hashed once per process
per file version; shipped weights must carry the hash, user checkpoints without one still load).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
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


def canonical_safetensors(blob: bytes) -> bytes:
    """``blob`` (a safetensors file) with its ``__metadata__`` keys in sorted order.

    The writer keeps the metadata in a hash map whose order changes from call to call, so the same weights
    gave different bytes (and SHA-256). Sorting only permutes the header's keys: its length, the tensor
    entries and the data are unchanged, and any reader gets the same content.
    """
    n = int.from_bytes(blob[:8], "little")
    head = json.loads(blob[8: 8 + n])
    meta = head.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta is not None else {}) | head
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # never for a pure reordering; keep the writer's bytes rather than break the file
        return blob
    return blob[:8] + text + b" " * (n - len(text)) + blob[8 + n:]


def save_checkpoint(model: SRNet, path: str | Path, card: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` and ``<path>.json`` atomically; returns both paths.

    ``card`` adds user fields (training data and split manifest, metrics, sensor operator, ...); the
    architecture, bands, scale, normalisation, receptive field and parameter count come from the model.
    """
    from safetensors.torch import save

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
        blob = canonical_safetensors(save(state, metadata={"format": FORMAT, "model": str(model.arch.get("model"))}))
        tmp.write_bytes(blob)
        info["weights_sha256"] = hashlib.sha256(blob).hexdigest()
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


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, mtime_ns: int, size: int, inode: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, hashed once per process for each (path, mtime, size, inode)."""
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_mtime_ns, st.st_size, st.st_ino)


def verify_weights(wpath: Path, card: dict[str, Any], *, required: bool = False) -> None:
    """Raise :class:`ModelError` if the SHA-256 of ``wpath`` differs from the card's ``weights_sha256``.

    A card without the hash passes unless ``required`` (shipped weights always carry one).
    """
    want = card.get("weights_sha256")
    if want is None and not required:
        return
    if not isinstance(want, str) or len(want) != 64:
        raise ModelError(f"card of {wpath.name} has no valid weights_sha256 (got {str(want)[:20]!r})")
    got = file_sha256(wpath)
    if got != want.lower():
        raise ModelError(f"weights {wpath} do not match their card: sha256 {got[:12]}... != card's {want[:12]}...")


def validate_card(card: dict[str, Any], where: str = "checkpoint") -> None:
    """Check a card's architecture record and sizes (:mod:`eosr.models.limits`) before building anything."""
    from eosr.models.limits import check_option_bounds

    arch = card.get("architecture")
    if not isinstance(arch, dict) or not isinstance(arch.get("model"), str):
        raise ModelError(f"{where}: card field 'architecture' must be {{'model': name, 'kwargs': {{...}}}}")
    kwargs = arch.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ModelError(f"{where}: card field 'architecture.kwargs' must be a mapping")
    check_option_bounds(kwargs, f"{where} (architecture)")
    check_option_bounds({k: card.get(k) for k in ("scale", "n_bands", "bands")}, where)


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
    The card is validated and the weights' hash verified before the model is built.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from eosr.models.registry import WEIGHTS_DIR, build_from_arch

    wpath, jpath = checkpoint_paths(path)
    card = read_card(path)
    validate_card(card, f"checkpoint {jpath.stem}")
    check_card(card, scale=scale, bands=bands, n_bands=n_bands, where=f"checkpoint {jpath.stem}")
    if not wpath.is_file():
        raise ModelError(f"checkpoint weights not found: {wpath}")
    verify_weights(wpath, card, required=wpath.resolve().parent == WEIGHTS_DIR)
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


def is_run_folder(out: Path) -> bool:
    """True if ``out`` is an output folder of ``eosr train``: it holds eosr's split manifest
    (``split_manifest.json``, the first file a run writes, with eosr's ``schema_version`` and ``splits``)."""
    try:
        doc = json.loads((out / "split_manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and "schema_version" in doc and "splits" in doc
