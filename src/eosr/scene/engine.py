"""How a network runs on a tile: torch (channels_last) or ONNX Runtime, chosen by measurement.

Measured on this project's 2-core CPU with ``carn_m_s2_x2`` (``benchmarks/bench_scene.py`` prints the
ratios and the achieved GFLOP/s against torch's sgemm rate in the same process; docs/scenes.md, "Speed"):
with large buffers kept between tiles (:mod:`eosr._alloc`), torch in channels_last runs a scene 2.5x faster
than torch in NCHW did and 1.0-1.4x faster than ONNX Runtime fp32 (a tie under load, 1.37x on a quiet
machine), all within 1e-6 reflectance of each other, with no export step. bfloat16 is not used: its error
(RMSE ~5e-4, max ~4e-3 reflectance) is too large for a default.

* ``"torch"``: the module in ``torch.channels_last`` memory format (any model).
* ``"onnxruntime"``: the module exported once to ONNX (:func:`eosr.models.export.export_onnx`, checked against
  torch to 1e-4 on two sizes) and run by an ONNX Runtime session with the caller's thread count, for
  users whose deployment runs ONNX anyway. The export costs seconds, so it is cached on disk under
  ``$EOSR_CACHE/onnx/<fingerprint>.onnx``, keyed by a hash of the module's class, architecture, spec, every
  parameter and buffer (the operator of a back-projection skip included) and the torch/onnx versions: a
  changed weight or operator is a new export.
* ``"auto"`` (the default of :func:`eosr.scene.super_resolve`): torch, the faster of the two by the
  measurement above. Outputs say which ran (the ``eosr_engine`` tag).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr.errors import ConfigError

ENGINES = ("auto", "torch", "onnxruntime")

_SESSIONS: dict[tuple[str, int], Any] = {}
_FINGERPRINTS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[Any, ...], str]] = weakref.WeakKeyDictionary()


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else :class:`ConfigError`."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def _ort_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def exportable(model: Any) -> bool:
    """Whether ``model`` is a single-input eosr network that :func:`eosr.models.export.export_onnx` takes."""
    from eosr.models.base import SRNet
    from eosr.models.export import NOT_EXPORTABLE

    return (isinstance(model, SRNet) and str(model.arch.get("model")) not in NOT_EXPORTABLE
            and not getattr(model.spec, "multi_image", False) and not hasattr(model, "inner"))


def choose_engine(engine: str, model: Any, uncertainty: bool = False) -> str:
    """The engine that runs: ``"torch"`` or ``"onnxruntime"`` (module docstring for the ``"auto"`` rule).

    ``"onnxruntime"`` asked for a model it cannot run, or without the package, is refused (:class:`ConfigError`).
    """
    check_engine(engine)
    if engine == "torch":
        return "torch"
    if engine == "onnxruntime":
        if not _ort_available():
            raise ConfigError("engine 'onnxruntime' needs the onnx extra: pip install 'eosr[onnx]'")
        if uncertainty or not exportable(model):
            name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
            why = "the uncertainty path" if uncertainty else f"model {name}"
            raise ConfigError(f"engine 'onnxruntime' cannot run {why}; use engine 'torch' or 'auto'")
        return "onnxruntime"
    return "torch"  # "auto": the faster engine by measurement (module docstring)


def _state_key(model: torch.nn.Module) -> tuple[Any, ...]:
    """What changes when a weight, buffer, flag or spec changes: storage and in-place version counter of
    every tensor (``Tensor._version`` counts in-place writes), the spec and the self-ensemble flag."""
    tensors = [*model.parameters(), *model.buffers()]
    return (repr(getattr(model, "spec", None)), getattr(model, "self_ensemble", None),
            tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors))


def fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of what the exported graph depends on: class, architecture, spec, self-ensemble flag, every
    parameter and buffer (persistent or not), and the torch/onnx versions. Cached per model object until
    :func:`_state_key` changes, so tiles after the first do not hash the weights again."""
    key = _state_key(model)
    hit = _FINGERPRINTS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    digest = _fingerprint(model)
    _FINGERPRINTS[model] = (key, digest)
    return digest


def _fingerprint(model: torch.nn.Module) -> str:
    import onnx

    h = hashlib.sha256()
    head = {"class": f"{type(model).__module__}.{type(model).__qualname__}",
            "arch": getattr(model, "arch", None), "spec": repr(getattr(model, "spec", None)),
            "self_ensemble": getattr(model, "self_ensemble", None), "torch": torch.__version__,
            "onnx": onnx.__version__}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def onnx_path(model: torch.nn.Module) -> Path:
    """The cached ONNX export of ``model`` (created on first use, see the module docstring)."""
    from eosr._cache import cache_dir
    from eosr.models.export import export_onnx

    path = cache_dir() / "onnx" / f"{fingerprint(model)}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path, height=40, width=40)  # type: ignore[arg-type]
    return path


def session(model: torch.nn.Module, threads: int) -> Any:
    """An ONNX Runtime session of ``model`` with ``threads`` intra-op threads (cached per process)."""
    import onnxruntime as ort

    path = onnx_path(model)
    key = (path.stem, int(threads))
    if key not in _SESSIONS:
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        _SESSIONS[key] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


def run(model: torch.nn.Module, x: np.ndarray, engine: str) -> np.ndarray:
    """One forward pass of ``x`` (1, C, h, w) float32 through ``model`` on ``engine`` -> (1, C', H, W) float32."""
    if engine == "onnxruntime":
        sess = session(model, torch.get_num_threads())
        return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0], dtype=np.float32)
    t = torch.from_numpy(x)
    if t.ndim == 4:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (typed overloads lack it)
        t = t.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = model(t)
    return y.detach().to(torch.float32).cpu().contiguous().numpy()
