"""ONNX export with dynamic batch, height and width, verified against onnxruntime.

The TorchScript-based exporter of torch (``dynamo=False``; the dynamo exporter needs ``onnxscript``, which
eosr does not depend on) writes the graph; the export is then run with onnxruntime on two sizes (the
example and an odd size that differs from it, proving the dynamic axes) and compared with the torch model:
the largest absolute difference must stay below ``atol`` (default 1e-4 reflectance), else ModelError.
The ONNX file carries the model card (scale, bands, normalisation, receptive field) as metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eosr.errors import ModelError
from eosr.models.base import SRNet

NOT_EXPORTABLE = {"backprojection": "uses FFT convolutions", "mi_median": "uses NumPy registration"}


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
        return frames, masks
    return (0.05 + 0.3 * torch.rand(b, c, h, w, generator=g),)


def _names(model: SRNet) -> tuple[list[str], dict[str, dict[int, str]]]:
    if model.arch.get("model") == "s2_multires":
        return ["x10", "x20"], {"x10": {0: "batch", 2: "height", 3: "width"},
                                "x20": {0: "batch", 2: "height20", 3: "width20"},
                                "sr": {0: "batch", 2: "out_height", 3: "out_width"}}
    if model.spec.multi_image:
        return ["frames", "masks"], {"frames": {0: "batch", 3: "height", 4: "width"},
                                     "masks": {0: "batch", 2: "height", 3: "width"},
                                     "sr": {0: "batch", 2: "out_height", 3: "out_width"}}
    if model.n_bands is None:  # band-agnostic (interpolation): the band count is dynamic too
        return ["lr"], {"lr": {0: "batch", 1: "bands", 2: "height", 3: "width"},
                        "sr": {0: "batch", 1: "bands", 2: "out_height", 3: "out_width"}}
    return ["lr"], {"lr": {0: "batch", 2: "height", 3: "width"}, "sr": {0: "batch", 2: "out_height", 3: "out_width"}}


def export_onnx(model: SRNet, path: str | Path, *, height: int = 32, width: int = 32, n_frames: int = 4,
                opset: int = 17, check: bool = True, atol: float = 1e-4) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` (atomically) and check it with onnxruntime; returns a report.

    Height and width (and batch) are dynamic; a multi-image model's frame count is fixed to ``n_frames``
    (its recursive fusion unrolls over the frames). The report holds the opset, the sizes checked and the
    largest absolute difference to torch.
    """
    from eosr.io.raster import atomic_path

    if not isinstance(model, SRNet):
        raise ModelError(f"export needs an eosr model, got {type(model).__name__}")
    name = str(model.arch.get("model"))
    if name in NOT_EXPORTABLE:
        raise ModelError(f"{name} cannot be exported to ONNX ({NOT_EXPORTABLE[name]}); export a network instead")
    try:
        import onnx
    except ImportError:
        raise ModelError("ONNX export needs the 'onnx' extra: pip install 'eosr[onnx]'") from None
    model = model.eval()
    inputs, axes = _names(model)
    example = _example(model, 1, height, width, n_frames, 0)
    target = Path(path)
    with atomic_path(target) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, example, str(tmp), dynamo=False, input_names=inputs, output_names=["sr"],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
        except Exception as e:  # the exporter raises many types; report one line
            raise ModelError(f"ONNX export of {name} failed: {str(e).strip().splitlines()[0]}") from None
        proto = onnx.load(str(tmp))
        meta = {"eosr_model": name, "scale": str(model.spec.scale),
                "bands": json.dumps(list(model.spec.bands) if model.spec.bands else None),
                "n_bands": str(model.n_bands), "receptive_field": str(model.spec.receptive_field),
                "normalisation": json.dumps({"mean": model.spec.mean, "std": model.spec.std}),
                "architecture": json.dumps(model.arch)}
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        report: dict[str, Any] = {"path": str(target), "opset": opset, "model": name, "checked": []}
        if check:
            for b, h, w in ((1, height, width), (2, height + 7, width + 3)):
                report["checked"].append(check_onnx(model, tmp, _example(model, b, h, w, n_frames, 1), atol))
            report["max_abs_diff"] = max(c["max_abs_diff"] for c in report["checked"])
    return report


def check_onnx(model: SRNet, path: str | Path, inputs: tuple[torch.Tensor, ...], atol: float = 1e-4) -> dict[str, Any]:
    """Run the ONNX file with onnxruntime on ``inputs`` and compare with torch (ModelError above ``atol``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("checking an ONNX export needs onnxruntime: pip install 'eosr[onnx]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs, strict=True)}
    got = sess.run(None, feed)[0]
    with torch.no_grad():
        ref = model(*inputs).numpy()
    if got.shape != ref.shape:
        raise ModelError(f"ONNX output shape {got.shape} differs from torch {ref.shape}")
    diff = float(np.abs(got - ref).max())
    if not diff <= atol:
        raise ModelError(f"ONNX output differs from torch by {diff:.2e} > {atol:.0e} at input {tuple(inputs[0].shape)}")
    return {"input_shape": list(inputs[0].shape), "output_shape": list(got.shape), "max_abs_diff": diff}
