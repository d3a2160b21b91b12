"""ONNX export with dynamic batch, height and width, verified against onnxruntime.

The TorchScript-based exporter of torch (``dynamo=False``; the dynamo exporter needs ``onnxscript``, which
eosr does not depend on) writes the graph; the export is then run with onnxruntime on two sizes (the
example and an odd size that differs from it, proving the dynamic axes) and compared with the torch model:
the largest absolute difference must stay below ``atol`` (default 1e-4 reflectance), else ModelError.
The ONNX file carries the model card (scale, bands, normalisation, receptive field) as metadata.

The exporter is run quietly in a private temporary folder (its working directory while it runs; its
stdout/stderr, at the file-descriptor level, and its warnings go to a log there, so neither the TorchScript
IR it prints on failure nor helper files reach the user); only the checked model is written, atomically, to
the target path. A model's geometric self-ensemble is left out by default (the plain network, 8x cheaper;
``self_ensemble=True`` exports the 8 flips/transposes explicitly).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr.errors import DataError, EosrError, ModelError
from eosr.models.base import SRNet

NOT_EXPORTABLE = {"backprojection": "uses FFT convolutions", "mi_median": "uses NumPy registration"}
EXAMPLE_SIZE = (8, 1024)  # allowed example height/width (the axes are dynamic: the example only traces)
MAX_FRAMES = 64


def _example(model: SRNet, b: int, h: int, w: int, n_frames: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    name = model.arch.get("model")
    if name == "s2_multires":
        h, w = h + h % 2, w + w % 2
        n10, n20 = int(getattr(model, "n10")), int(getattr(model, "n20"))  # noqa: B009 - set by S2MultiRes only
        x10 = 0.05 + 0.3 * torch.rand(b, n10, h, w, generator=g)
        x20 = 0.05 + 0.3 * torch.rand(b, n20, h // 2, w // 2, generator=g)
        return x10, x20
    c = model.n_bands or 3
    if model.spec.multi_image:
        frames = 0.05 + 0.3 * torch.rand(b, n_frames, c, h, w, generator=g)
        masks = (torch.rand(b, n_frames, h, w, generator=g) > 0.1).to(torch.float32)
        if getattr(model, "register", False):  # registered outside the graph: shifts are an input
            shifts = 2 * torch.rand(b, n_frames, 2, generator=g) - 1
            shifts[:, 0] = 0
            return frames, masks, shifts
        return frames, masks
    return (0.05 + 0.3 * torch.rand(b, c, h, w, generator=g),)


def _names(model: SRNet) -> tuple[list[str], dict[str, dict[int, str]]]:
    if model.arch.get("model") == "s2_multires":
        return ["x10", "x20"], {"x10": {0: "batch", 2: "height", 3: "width"},
                                "x20": {0: "batch", 2: "height20", 3: "width20"},
                                "sr": {0: "batch", 2: "out_height", 3: "out_width"}}
    if model.spec.multi_image:
        axes = {"frames": {0: "batch", 3: "height", 4: "width"}, "masks": {0: "batch", 2: "height", 3: "width"},
                "sr": {0: "batch", 2: "out_height", 3: "out_width"}}
        if getattr(model, "register", False):
            return ["frames", "masks", "shifts"], axes | {"shifts": {0: "batch"}}
        return ["frames", "masks"], axes
    if model.n_bands is None:  # band-agnostic (interpolation): the band count is dynamic too
        return ["lr"], {"lr": {0: "batch", 1: "bands", 2: "height", 3: "width"},
                        "sr": {0: "batch", 1: "bands", 2: "out_height", 3: "out_width"}}
    return ["lr"], {"lr": {0: "batch", 2: "height", 3: "width"}, "sr": {0: "batch", 2: "out_height", 3: "out_width"}}


def check_export_options(height: int, width: int, n_frames: int = 4, atol: float = 1e-4) -> None:
    """Raise a one-line :class:`ModelError` for an example size, frame count or tolerance out of range."""
    lo, hi = EXAMPLE_SIZE
    for key, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ModelError(f"export {key} must be an integer in {lo}..{hi} (the exported size is dynamic), got {v}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or not 1 <= n_frames <= MAX_FRAMES:
        raise ModelError(f"export frames must be an integer in 1..{MAX_FRAMES}, got {n_frames}")
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol > 0):
        raise ModelError(f"export atol must be a finite number > 0, got {atol}")


@contextlib.contextmanager
def _quiet_in(folder: Path) -> Iterator[Path]:
    """Run the block with ``folder`` as working directory and its output (Python and C level) in a log there."""
    log = folder / "export.log"
    cwd = os.getcwd()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no standard descriptors (embedded interpreter): Python-level capture only
        saved = []
    with open(log, "wb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fd in (1, 2) if saved else ():
            os.dup2(f.fileno(), fd)
        os.chdir(folder)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield log
        finally:
            os.chdir(cwd)
            with contextlib.suppress(Exception):
                ctypes.CDLL(None).fflush(None)  # C/C++ buffers (torch's IR log) into the log, not the terminal
            for fd, old in zip((1, 2), saved, strict=False):
                os.dup2(old, fd)
                os.close(old)


def export_onnx(model: SRNet, path: str | Path, *, height: int = 32, width: int = 32, n_frames: int = 4,
                opset: int = 17, check: bool = True, atol: float = 1e-4,
                self_ensemble: bool = False) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` (atomically) and check it with onnxruntime; returns a report.

    Height and width (and batch) are dynamic; a multi-image model's frame count is fixed to ``n_frames``
    (its recursive fusion unrolls over the frames); a model that registers its frames (``highresnet`` with
    ``register=True``) takes their shifts as a third input ``shifts`` (B, N, 2) (dy, dx) in LR px against
    frame 0 (estimate them with :func:`eosr.models.highresnet.register_to_first`). The report holds the
    opset, the sizes checked and the
    largest absolute difference to torch. ``self_ensemble`` (models that have one, e.g. the shipped CARN-M)
    exports the 8-pass geometric self-ensemble instead of the plain network; the check compares with torch
    under the same setting. Nothing but ``path`` is written (the exporter runs in a temporary folder).
    """
    from eosr.io.raster import atomic_path

    if not isinstance(model, SRNet):
        raise ModelError(f"export needs an eosr model, got {type(model).__name__}")
    name = str(model.arch.get("model"))
    if name in NOT_EXPORTABLE:
        raise ModelError(f"{name} cannot be exported to ONNX ({NOT_EXPORTABLE[name]}); export a network instead")
    check_export_options(height, width, n_frames, atol)
    flag = getattr(model, "self_ensemble", None)
    if self_ensemble and flag is None:
        raise ModelError(f"{name} has no self-ensemble to export")
    target = Path(path).absolute()
    if not target.parent.is_dir():
        raise DataError(f"output folder does not exist: {target.parent}")
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data
    except ImportError:
        raise ModelError("ONNX export needs the 'onnx' extra: pip install 'eosr[onnx]'") from None
    model = model.eval()
    inputs, axes = _names(model)
    example = _example(model, 1, height, width, n_frames, 0)
    report: dict[str, Any] = {"path": str(path), "opset": opset, "model": name, "checked": [],
                              "self_ensemble": bool(self_ensemble)}
    try:
        if flag is not None:
            model.self_ensemble = bool(self_ensemble)  # type: ignore[assignment]
        with tempfile.TemporaryDirectory(prefix="eosr-export-") as scratch, _quiet_in(Path(scratch)):
            tmp = Path(scratch) / "model.onnx"
            try:
                torch.onnx.export(model, example, str(tmp), dynamo=False, input_names=inputs, output_names=["sr"],
                                  dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
            except Exception as e:  # the exporter raises many types; report one line
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ModelError(f"ONNX export of {name} failed: {first}") from None
            proto = onnx.load(str(tmp), load_external_data=False)
            if any(uses_external_data(t) for t in proto.graph.initializer):
                raise ModelError(f"ONNX export of {name} is over 2 GB (external data files are not supported)")
            meta = {"eosr_model": name, "scale": str(model.spec.scale),
                    "bands": json.dumps(list(model.spec.bands) if model.spec.bands else None),
                    "n_bands": str(model.n_bands), "receptive_field": str(model.spec.receptive_field),
                    "normalisation": json.dumps({"mean": model.spec.mean, "std": model.spec.std}),
                    "architecture": json.dumps(model.arch), "self_ensemble": json.dumps(bool(self_ensemble))}
            for k, v in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = k, v
            onnx.checker.check_model(proto)
            data = proto.SerializeToString()
            if check:
                for b, h, w in ((1, height, width), (2, height + 7, width + 3)):
                    report["checked"].append(check_onnx(model, data, _example(model, b, h, w, n_frames, 1), atol))
                report["max_abs_diff"] = max(c["max_abs_diff"] for c in report["checked"])
    except EosrError:
        raise
    except Exception as e:  # onnx checker / runtime failures: one line, no traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"ONNX export of {name} failed: {first[:300]}") from None
    finally:
        if flag is not None:
            model.self_ensemble = flag  # type: ignore[assignment]
    with atomic_path(target) as out:
        out.write_bytes(data)
    return report


def check_onnx(model: SRNet, path: str | Path | bytes, inputs: tuple[torch.Tensor, ...],
               atol: float = 1e-4) -> dict[str, Any]:
    """Run the ONNX file (or serialised model) with onnxruntime on ``inputs`` and compare with torch
    (ModelError above ``atol``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("checking an ONNX export needs onnxruntime: pip install 'eosr[onnx]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    model_arg = path if isinstance(path, bytes) else str(path)
    sess = ort.InferenceSession(model_arg, opts, providers=["CPUExecutionProvider"])
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs, strict=True)}
    got = sess.run(None, feed)[0]
    with torch.no_grad():
        ref = model(*inputs).numpy()
    if got.shape != ref.shape:
        raise ModelError(f"ONNX output shape {got.shape} differs from torch {ref.shape}")
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    if (nan_g != nan_r).any():  # nodata (NaN) must be at the same pixels; elsewhere the values are compared
        raise ModelError(f"ONNX output has NaN at other pixels than torch at input {tuple(inputs[0].shape)}")
    diff = float(np.abs(got - ref)[~nan_r].max()) if (~nan_r).any() else 0.0
    if not diff <= atol:
        raise ModelError(f"ONNX output differs from torch by {diff:.2e} > {atol:.0e} at input {tuple(inputs[0].shape)}")
    return {"input_shape": list(inputs[0].shape), "output_shape": list(got.shape), "max_abs_diff": diff}
