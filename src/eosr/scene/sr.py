"""Super-resolve whole scenes: GeoTIFF / COG in and out, seamless tiling, bounded memory, optional Dask.

The output lies on the HR grid of the input: same CRS and origin, pixel size / r (GDAL pixel-is-area),
band descriptions kept, nodata propagated through the model's support (see :mod:`eosr.scene.infer`),
and tags recording the model, its version and the eosr version. Integer input is written back as the
same integer type and DN scale (e.g. uint16 reflectance x 10000; values are rounded and clipped to the
type's range), or float32 reflectance on request. Windows are streamed to an uncompressed tiled stage
file, which is then copied to a compressed GeoTIFF or a COG under a temporary name and renamed at the
end: an error or Ctrl-C leaves no partial output.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eosr import __version__
from eosr._alloc import keep_large_allocations, reuse_large_allocations
from eosr._arrays import like, to_tensor
from eosr._progress import show_progress
from eosr.degrade.resolve import TAG
from eosr.errors import ConfigError, DataError, EosrError, EosrWarning, ModelError, ScaleError
from eosr.io.raster import atomic_path, check_geotiff_name, copy_to_cog, to_dn
from eosr.io.source import file_tag
from eosr.physics import check_scale
from eosr.scene.engine import check_engine, choose_engine
from eosr.scene.infer import model_scale, predict_tile, receptive_field
from eosr.scene.source import SceneSource, open_source
from eosr.scene.tiling import Blender, TilePlan, Window, default_overlap
from eosr.sensors import normalise_band_name

GDAL_CACHE_BYTES = 64 * 2**20  # bounded GDAL block cache (bytes: small values would mean MB)


def load_model(name: str, *, scale: int | None = None, bands: Sequence[str] | None = None,
               n_bands: int | None = None, allow_untrained: bool = False) -> Any:
    """A model by reference (``eosr.models.resolve_model``: registry name, shipped weights or checkpoint path)."""
    from eosr.models.registry import is_architecture, resolve_model

    if not is_architecture(name):  # checkpoints: scale and bands are checked by _resolve, with scene-level messages
        return resolve_model(name)
    return resolve_model(name, scale=scale, bands=tuple(bands) if bands else None, n_bands=n_bands,
                         allow_untrained=allow_untrained)


def _described(names: Sequence[str]) -> bool:
    return all(not n.startswith("band") for n in names)


def check_model_bands(model: Any, names: Sequence[str]) -> None:
    """Raise :class:`ModelError` unless the input bands are the ones the model was trained for."""
    want = getattr(model.spec, "bands", None)
    if want is None:
        return
    want_n = [normalise_band_name(b) for b in want]
    if not _described(names):
        raise ModelError(f"model {model.spec.name} was trained for bands {','.join(want_n)}; the input bands have "
                         "no names: label them with --bands (Python: bands=[...])")
    got = [normalise_band_name(b) for b in names]
    if got != want_n:
        raise ModelError(f"model {model.spec.name} was trained for bands {','.join(want_n)}, "
                         f"not {','.join(got)}")


def _resolve(model: Any, source_names: Sequence[str], n_bands: int, scale: Any, allow_untrained: bool = False) -> Any:
    r = None if scale is None else check_scale(scale)
    if isinstance(model, str):
        model = load_model(model, scale=r, bands=source_names if _described(source_names) else None, n_bands=n_bands,
                           allow_untrained=allow_untrained)
    if getattr(model.spec, "multi_image", False):
        raise ModelError(f"model {model.spec.name} fuses several LR frames; eosr sr takes single-image models")
    mr = model_scale(model)
    if r is not None and r != mr:
        raise ScaleError(f"model {model.spec.name} works at x{mr}, not the requested x{r}")
    check_model_bands(model, source_names)
    return model


def _with_operator(model: Any, operator: str | None, sensor: str | None, in_path: Any, src: Any, scale: Any) -> Any:
    """Back-projection built with the chosen operator (option > the input's eosr_operator tag > its default)."""
    from eosr.degrade.resolve import resolve_operator
    from eosr.models.backprojection import BackProjection

    is_bp = isinstance(model, BackProjection) or (isinstance(model, str) and model.strip().lower() == "backprojection")
    if not is_bp:
        _refuse_operator(model, operator)
        return model
    tag = file_tag(in_path, TAG)
    r = check_scale(scale) if scale is not None else None
    names = list(src.band_names) if _described(src.band_names) else None
    choice = resolve_operator(operator, sensor=sensor, bands=names, scale=r if r is not None or operator is None else 2,
                              n_bands=src.count, tag=tag, default=None)
    if choice.operator is None:
        return model
    kw = dict(model.spec.extra.get("options", {})) if isinstance(model, BackProjection) else {}
    return BackProjection(choice.operator.scale, names, src.count, operator=choice.operator, **kw)


def _refuse_operator(model: Any, operator: str | None) -> None:
    """A :class:`ModelError` (one line) when ``--operator`` is given to a model whose physics takes none."""
    if operator is not None and getattr(model, "operator", None) is None:
        name = model if isinstance(model, str) else model.spec.name
        raise ModelError(f"--operator applies to physics-based models (backprojection, CNNs with a "
                         f"back-projection skip, s2_multires_20m); {name} uses the operator it was trained with")


def _operator_tags(model: Any, operator: str | None, sensor: str | None, in_path: Any) -> dict[str, str]:
    """Tell a model whose physics uses the operator (CARN with bp_skip) its operator (option > the input's
    tag > the card's) and return the output tags that record it; backprojection: its operator; else {}."""
    import json

    from eosr.models.backprojection import BackProjection, set_model_operator

    if isinstance(model, BackProjection):
        tag = file_tag(in_path, TAG)
        op, mode = model.operator, operator or ("tag" if tag else "default")
        source = "option" if operator is not None else "tag" if tag else "default"
    elif getattr(model, "operator", None) is not None:
        ch = set_model_operator(model, operator, sensor=sensor, tag=file_tag(in_path, TAG))
        op, mode, source = ch.operator, ch.mode, ch.source
    else:
        return {}
    return {"eosr_model_operator": json.dumps(op.describe(), separators=(",", ":")),
            "eosr_model_operator_mode": str(mode), "eosr_model_operator_source": str(source)}


def _available_20m(in_path: Any, guide: Any, model_bands: Sequence[str]) -> list[str] | None:
    """The model's 20 m bands the input holds (those of a band folder, product or STAC item; the band
    descriptions of a 20 m GeoTIFF), or None when the input cannot say (an undescribed GeoTIFF)."""
    from eosr.io.source import input_bands, is_multifile

    p = Path(in_path)
    if guide is None and p.exists() and is_multifile(p):
        have = set(input_bands(p))
    elif p.is_file():
        from eosr.io.raster import open_quietly

        with open_quietly(p) as ds:
            have = {normalise_band_name(d) for d in ds.descriptions if d}
        if not have:
            return None
    else:
        return None
    return [b for b in model_bands if b in have]


def _multires(model: Any, scale: Any, bands: Sequence[str | int] | None, allow_untrained: bool = False,
              in_path: Any = None, guide: Any = None, with_10m: bool = False) -> Any:
    """The packed single-input form of a Sentinel-2 20 m sharpening model (``s2_multires``, its trained
    ``s2_multires_20m``, ``guided_hpf``), or None for other models.

    ``scale`` is relative to the 10 m grid (1: the 20 m bands at 10 m; r: every band at 10/r m). For the
    architecture by name, ``bands`` lists the 10 m and 20 m bands to build it with (default: the model's).
    For a model that takes any subset of its 20 m bands (``s2_multires_20m``, ``guided_hpf``), the 20 m
    names in ``bands`` choose the bands to sharpen; by default, those the input holds: a missing band is
    declared absent, never faked, and the output names exactly the given bands.
    """
    from eosr.models.guided import GuidedHPF
    from eosr.models.s2_multires import PackedS2MultiRes, S2MultiRes

    if isinstance(model, PackedS2MultiRes):
        return model
    if isinstance(model, str) and model.strip().lower() in ("s2_multires", "guided_hpf"):
        from eosr.models import get_model
        from eosr.models.registry import check_trained

        check_trained(model, allow_untrained)
        names = [str(b) for b in bands] if bands else None
        model = get_model(model.strip().lower(), scale=check_scale(scale) if scale is not None else 1, bands=names)
        bands = None  # they built the model
    if not isinstance(model, (S2MultiRes, GuidedHPF)):
        if guide is not None or with_10m:
            raise ModelError("--guide / --with-10m apply to 20 m sharpening models (s2_multires_20m, guided_hpf)")
        return None
    if scale is not None and check_scale(scale) != model.scale:
        raise ScaleError(f"model {model.spec.name} works at x{model.scale} (relative to 10 m), not the requested "
                         f"x{scale}")
    sub: list[str] | None = None
    if model.presence:
        if bands:
            sub = [normalise_band_name(str(b)) for b in bands]
            guide_named = [b for b in sub if b in model.bands_10m]
            if guide_named:
                raise ModelError(f"bands {', '.join(guide_named)}: the 10 m bands ({', '.join(model.bands_10m)}) are "
                                 f"the guide and always read; name only the 20 m bands to sharpen (among "
                                 f"{', '.join(model.bands_20m)}); --with-10m also writes the guide")
        elif in_path is not None:
            sub = _available_20m(in_path, guide, model.bands_20m)
            if sub is not None and not sub:
                raise DataError(f"{in_path}: none of the 20 m bands {', '.join(model.bands_20m)} found")
    return model.packed(sub or None, with_10m=with_10m)


def _inference_mode(model: Any, uncertainty: bool) -> None:
    """Put a torch module in eval mode (models of the registry come in training mode); uncertainty
    models manage their own mode (e.g. MC dropout) in ``forward_with_uncertainty``."""
    import torch

    if isinstance(model, torch.nn.Module) and not uncertainty:
        model.eval()


def _plan(h: int, w: int, model: Any, tile: int, overlap: int | None) -> TilePlan:
    rf = receptive_field(model)
    plan = TilePlan(h, w, model_scale(model), int(tile), default_overlap(rf) if overlap is None else int(overlap), rf)
    if not plan.exact:
        warnings.warn(f"overlap {plan.overlap} < receptive field {rf} + blend {plan.halfwidth}: tiles are blended "
                      "but differ from whole-image inference near their edges", EosrWarning, stacklevel=3)
    return plan


def _run_tiles(plan: TilePlan, model: Any, source: SceneSource | np.ndarray, blender: Blender, *,
               uncertainty: bool, workers: int | None, scheduler: Any, progress: bool, engine: str = "torch") -> None:
    from tqdm import tqdm

    r = plan.scale
    bar = tqdm(total=plan.height * plan.width * r * r, unit="px", unit_scale=True, disable=not progress,
               desc="eosr sr", leave=False)

    def done(i: int, j: int, pred: np.ndarray) -> None:
        blender.add(i, j, pred)
        y0, y1, x0, x1 = plan.core(i, j)
        bar.update((y1 - y0) * (x1 - x0) * r * r)

    try:
        if workers is None and scheduler is None:
            with reuse_large_allocations():  # no page-fault storm from per-tile feature maps (eosr._alloc)
                for i, j in plan.tiles():
                    done(i, j, predict_tile(model, source, plan, i, j, uncertainty, engine=engine))
        else:
            _run_dask(plan, model, source, done, uncertainty=uncertainty, workers=workers, scheduler=scheduler,
                      engine=engine)
    finally:
        bar.close()


#: a local cluster has at most this many worker processes per CPU, and each needs this much available memory
MAX_WORKERS_PER_CPU = 4
WORKER_MEMORY = 2**29


def max_local_workers() -> int:
    """The most worker processes a local cluster may start here: CPUs x 4, 0.5 GiB of available memory each."""
    from eosr.io.raster import available_memory

    by_memory = available_memory() // WORKER_MEMORY
    return max(1, min((os.cpu_count() or 1) * MAX_WORKERS_PER_CPU, by_memory))


def check_workers(workers: int) -> int:
    """``workers`` if it is a worker count a local cluster may start here, else :class:`ConfigError`."""
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers}")
    limit = max_local_workers()
    if workers > limit:
        raise ConfigError(f"workers must be <= {limit} on this machine ({os.cpu_count()} CPUs x "
                          f"{MAX_WORKERS_PER_CPU}, {WORKER_MEMORY / 2**30:g} GiB of available memory each), "
                          f"got {workers}")
    return int(workers)


def local_cluster(workers: int) -> tuple[Any, Any]:
    """Start a private local Dask cluster of ``workers`` processes; returns ``(cluster, client)``.

    Private: TLS on 127.0.0.1 with a certificate generated for this run (``distributed.Security.temporary``),
    so only this client can connect; no dashboard, and the HTTP servers of scheduler and workers serve no
    route. The caller closes the client and the cluster (every process ends with them).
    """
    import dask
    from distributed import Client, LocalCluster, Security

    n = check_workers(workers)
    try:
        security = Security.temporary()
    except ImportError:
        raise ConfigError("a local Dask cluster needs the package 'cryptography' (a TLS certificate per run): "
                          "pip install cryptography") from None
    with dask.config.set({"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, protocol="tls", host="127.0.0.1",
                               dashboard_address=None, worker_dashboard_address=None, security=security)
    try:
        client = Client(cluster, security=security)
        client.run_on_scheduler(_stop_http)  # distributed starts them even without a dashboard
        client.run(_stop_http)
        client.run(keep_large_allocations)  # these workers only run tiles: no page-fault storm (eosr._alloc)
    except BaseException:
        cluster.close()
        raise
    return cluster, client


def _stop_http(dask_worker: Any = None, dask_scheduler: Any = None) -> None:
    """Close the HTTP server (health/metrics routes) of a scheduler or worker: nothing listens but the TLS comm."""
    server = dask_worker or dask_scheduler
    if getattr(server, "http_server", None) is not None:
        server.http_server.stop()


def _run_dask(plan: TilePlan, model: Any, source: Any, done: Any, *, uncertainty: bool, workers: int | None,
              scheduler: Any, engine: str = "torch") -> None:
    """Tiles as tasks on a ``distributed`` cluster; the model is scattered to every worker once."""
    from distributed import Client

    if workers is not None and scheduler is not None:
        raise ConfigError("give either workers (a local cluster) or a scheduler address, not both")
    cluster = None
    threads = None
    if scheduler is None:
        cluster, client = local_cluster(1 if workers is None else workers)
        threads = 1
    elif isinstance(scheduler, Client):
        client = scheduler
    else:
        try:
            client = Client(str(scheduler), timeout="20s")
        except OSError as e:
            raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {e}") from None
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        model_f = client.scatter(model, broadcast=True, hash=False)
        source_f = client.scatter(source, broadcast=True, hash=False)
        queue: deque[Any] = deque()
        tiles = iter(plan.tiles())
        limit = 2 * n_workers + 1
        exhausted = False
        while True:
            while not exhausted and len(queue) < limit:
                nxt = next(tiles, None)
                if nxt is None:
                    exhausted = True
                    break
                fut = client.submit(predict_tile, model_f, source_f, plan, nxt[0], nxt[1], uncertainty, threads,
                                    engine, pure=False)
                queue.append((nxt, fut))
            if not queue:
                break
            (i, j), fut = queue.popleft()
            done(i, j, fut.result())
    finally:
        disabled = logging.root.manager.disable
        if cluster is not None:  # closing mid-run (Ctrl-C, an error) makes the scheduler and nannies complain
            logging.disable(logging.CRITICAL)
        try:
            if client is not scheduler:
                client.close()
            if cluster is not None:
                cluster.close()
                reap_resource_tracker()
        finally:
            logging.disable(disabled)


def reap_resource_tracker() -> None:
    """Stop and wait for multiprocessing's resource tracker, which the local cluster's spawned workers start.

    Otherwise it outlives eosr: it ends only when this process exits, orphaned, and stays a zombie in the
    caller's process group wherever PID 1 does not reap (containers). ``ResourceTracker._stop`` is private
    CPython API (3.8+); a no-op when it is missing or the tracker is not running. A later spawn starts a new one.
    """
    from multiprocessing import resource_tracker

    stop = getattr(getattr(resource_tracker, "_resource_tracker", None), "_stop", None)
    if stop is not None:
        with contextlib.suppress(OSError, ChildProcessError):
            stop()


def super_resolve_array(lr: Any, model: Any, *, tile: int = 512, overlap: int | None = None,
                        uncertainty: bool = False, progress: bool | None = None, engine: str = "auto") -> Any:
    """Tiled SR of an in-memory ``(C, h, w)`` reflectance array (NaN = nodata); NumPy or torch in, same out.

    The same tiling and blending as :func:`super_resolve`; returns ``(C, r h, r w)`` (``2C`` with
    uncertainty: SR bands then std bands). ``progress``: a progress bar (default: when interactive).
    ``engine``: ``"auto"``, ``"torch"`` or ``"onnxruntime"`` (:mod:`eosr.scene.engine`).
    """
    x = to_tensor(lr, dtype=None).detach().cpu().numpy().astype(np.float32)
    if x.ndim != 3:
        raise DataError(f"super_resolve_array needs (C, H, W), got shape {x.shape}")
    plan = _plan(x.shape[1], x.shape[2], model, tile, overlap)
    _inference_mode(model, uncertainty)
    r = plan.scale
    c_out = int(getattr(model, "n_out_bands", None) or x.shape[0])  # a packed multi-resolution model: its output bands
    out = np.empty(((2 if uncertainty else 1) * c_out, x.shape[1] * r, x.shape[2] * r), np.float32)

    def sink(win: Window, data: np.ndarray) -> None:
        out[:, win[0] : win[1], win[2] : win[3]] = data

    _run_tiles(plan, model, x, Blender(plan, sink), uncertainty=uncertainty, workers=None, scheduler=None,
               progress=show_progress(progress),
               engine=choose_engine(engine, model, uncertainty))
    import torch

    return like(torch.from_numpy(out), lr)


def sharpen_20m(x10: Any, x20: Any, model: Any = "s2_multires_20m", *, bands: Sequence[str] | None = None,
                with_10m: bool = False, tile: int = 512, allow_untrained: bool = False,
                coregister: bool = False, operator: Any = None) -> Any:
    """20 m -> 10 m Sentinel-2 sharpening of in-memory arrays (NumPy or torch in, same out), tiled.

    ``x10``: (4, H, W) reflectance of B02 B03 B04 B08; ``x20``: (k, H/2, W/2) reflectance of the 20 m bands
    named by ``bands`` (in that order; default all six B05 B06 B07 B8A B11 B12), on the same pixel-is-area
    grid (same origin). ``model``: ``s2_multires_20m`` (default), ``guided_hpf``, or any reference of
    :func:`eosr.models.resolve_model` to such a model. Returns (k, H, W), the given bands in the order of
    ``bands`` (with ``with_10m``: the 4 guide bands first, as given).

    The guide's shift against the 20 m bands is estimated from the inputs (centre 256 x 256 20 m pixels,
    :func:`eosr.models.guided.guide_shift`). Above ``GUIDE_SHIFT_WARN`` (0.25 px of 10 m) a
    :class:`eosr.errors.GuideShiftWarning` names it: a misregistered guide can make the result worse than
    bicubic. ``coregister=True`` shifts the guide by the estimate first (when above ``COREGISTER_MIN`` = 0.1 px;
    Lanczos-3 interpolation, :func:`eosr.models.interp.lanczos_shift`, the same as ``eosr sr --coregister``).

    ``operator``: the x2 PSF of the 20 m bands, told to a method whose guided estimate takes it (``guided_hpf``,
    ``s2_multires_20m``): ``"full"``, ``"wald"``, a sensor file or a :class:`eosr.degrade.Degradation`
    (:func:`eosr.models.backprojection.set_model_operator`); default: the model's (the Sentinel-2 Wald PSF).
    """
    from eosr.models.registry import resolve_model
    from eosr.models.s2_multires import pack_10m

    net = _multires(resolve_model(model, scale=1, allow_untrained=allow_untrained) if isinstance(model, str)
                    else model, 1, bands, allow_untrained)
    if net is None:
        raise ModelError(f"{model} is not a 20 m sharpening model (s2_multires_20m, guided_hpf)")
    net = copy.deepcopy(net)  # operator and guide shift are set on a copy: a model passed in stays as it was
    if operator is not None:
        from eosr.models.backprojection import set_model_operator

        set_model_operator(net.inner, operator)
    a10 = to_tensor(x10, dtype=None).detach().cpu().float()
    a20 = to_tensor(x20, dtype=None).detach().cpu().float()
    names = [normalise_band_name(str(b)) for b in bands] if bands else list(net.bands_20m)
    if a10.ndim != 3 or a20.ndim != 3 or a10.shape[0] != len(net.bands_10m) or a20.shape[0] != len(names):
        raise DataError(f"sharpen_20m needs x10 ({len(net.bands_10m)}, H, W) and x20 ({len(names)}, H/2, W/2), got "
                        f"{tuple(a10.shape)} and {tuple(a20.shape)}")
    if a10.shape[1] != 2 * a20.shape[1] or a10.shape[2] != 2 * a20.shape[2]:
        raise DataError(f"x10 {tuple(a10.shape[1:])} must be twice the size of x20 {tuple(a20.shape[1:])}")
    order = [names.index(b) for b in net.bands_20m]
    import torch

    from eosr.models.guided import needs_coregistration

    shift = _checked_shift(a10, a20, names, "pass coregister=True to shift it first", warn=not coregister)
    if coregister and shift is not None and needs_coregistration(shift):
        net.set_guide_shift(*shift)

    packed_in = torch.cat([pack_10m(a10[None])[0], a20[order]])
    out = super_resolve_array(packed_in, net, tile=tile)
    y = out[[list(net.bands_20m).index(b) for b in names]]
    res = torch.cat([a10, y]) if with_10m else y
    return like(res, x20)


def hr_transform(transform: Any, scale: int) -> Any:
    """Transform of the HR grid: same origin, pixel size / ``scale`` (GDAL pixel-is-area)."""
    from affine import Affine

    t = transform
    return Affine(t.a / scale, t.b / scale, t.c, t.d / scale, t.e / scale, t.f)


def uncertainty_path(out_path: str | os.PathLike[str]) -> Path:
    """Sidecar of the per-pixel std: ``sr.tif`` -> ``sr.uncertainty.tif``."""
    p = Path(out_path)
    return p.with_name(p.stem + ".uncertainty" + (p.suffix or ".tif"))


def super_resolve(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    model: Any,
    *,
    bands: Sequence[str | int] | None = None,
    scale: Any = None,
    tile: int = 512,
    overlap: int | None = None,
    cog: bool = False,
    workers: int | None = None,
    scheduler: Any = None,
    uncertainty: bool = False,
    output_dtype: str | None = None,
    progress: bool | None = None,
    self_ensemble: bool | None = None,
    dn_scale: float | None = None,
    dn_offset: float | None = None,
    operator: str | None = None,
    sensor: str | None = None,
    allow_untrained: bool = False,
    guide: str | os.PathLike[str] | None = None,
    with_10m: bool = False,
    coregister: bool = False,
    engine: str = "auto",
) -> Path:
    """Super-resolve a GeoTIFF (or a folder of band files) window by window into a GeoTIFF / COG.

    ``model``: a module with a ``spec`` (ModelSpec), or a reference for :func:`eosr.models.resolve_model` (registry
    name, shipped weights name, checkpoint path or folder); a learned architecture named without weights is
    refused unless ``allow_untrained``. ``tile``: core tile size in
    LR pixels; ``overlap`` (LR px) defaults to the receptive field + a blend band (tiled == whole image).
    ``workers`` starts a local ``distributed`` cluster of that many processes on 127.0.0.1;
    ``scheduler`` uses an existing one (address or Client): workers read their windows from
    ``in_path`` themselves, so it must be visible to them. ``output_dtype``: None keeps the input
    type and DN scale, "float32" writes reflectance. ``self_ensemble=True`` runs a model's geometric
    self-ensemble (8 passes per tile; :func:`eosr.models.base.dihedral_ensemble`); by default (None or
    False) every model runs one pass, whatever its card says. ``dn_scale``/``dn_offset``: DN -> reflectance,
    else resolved from the input (:func:`eosr.io.raster.resolve_radiometry`). ``operator`` (``"full"``,
    ``"wald"`` or a sensor file, with ``sensor`` for the first two) sets the operator of a physics-based
    model (back-projection, or a CNN with a back-projection skip such as ``carn_m_s2_x2_psf``, see
    :func:`eosr.models.backprojection.set_model_operator`); without it such a model uses the input's
    ``eosr_operator`` tag (written by ``eosr simulate``), else its default (a CNN: the operator of its card).
    The output's ``eosr_model_operator`` (JSON), ``_mode`` and ``_source`` tags record the operator used.
    20 m sharpening models (``s2_multires_20m``, ``guided_hpf``, ``s2_multires``) read a band folder with the
    10 m and 20 m bands, or ``in_path`` = a GeoTIFF of 20 m bands with ``guide`` = a GeoTIFF of the 10 m bands
    (same CRS and origin, half the pixel size); ``bands`` then chooses the 20 m bands to sharpen (default:
    those the input has) and ``with_10m`` writes the 10 m bands first. The guide's shift against the 20 m bands is
    estimated on the centre window and tagged (``eosr_guide_shift_px``); above 0.25 px of 10 m a
    :class:`eosr.errors.GuideShiftWarning` says so, and ``coregister=True`` shifts the guide by it instead
    (Lanczos-3, tile by tile: exact, the overlap grows by the shift's reach). ``engine``: how the network runs,
    ``"auto"`` (ONNX Runtime for large jobs when installed, else torch), ``"torch"`` or ``"onnxruntime"``
    (:mod:`eosr.scene.engine`); the ``eosr_engine`` tag records it. Returns the output path.
    """
    import rasterio

    check_engine(engine)
    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise DataError(f"output path is a folder: {out}")
    if Path(in_path).resolve() == out.resolve():
        raise DataError(f"output would overwrite the input: {out}")
    check_writable(out)
    from eosr.models.registry import check_trained, is_architecture, uncertainty_companion

    if isinstance(model, str):
        check_trained(model, allow_untrained)  # before reading anything: a learned architecture needs weights
        if uncertainty:  # carn_m_s2_x2 -> carn_m_s2_x2_unc: the same SR plus its calibrated std
            model = uncertainty_companion(model) or model
        if not is_architecture(model):  # shipped weights or a checkpoint path
            model = load_model(model)
    packed = _multires(model, scale, bands, allow_untrained, in_path, guide, with_10m)
    if coregister and packed is None:
        raise ModelError("--coregister applies to 20 m sharpening models (s2_multires_20m, guided_hpf)")
    if packed is not None:  # 10 m + 20 m bands of a folder (or a GeoTIFF pair), packed on the 20 m grid
        from eosr.scene.source import open_multires

        model = packed
        src: Any = open_multires(in_path, packed.bands_10m, packed.bands_20m, guide=guide,
                                 dn_scale=dn_scale, dn_offset=dn_offset)
        out_names = list(packed.spec.bands)
        _refuse_operator(packed.inner, operator)
        guide_tags = _check_guide(src, packed, in_path, coregister) | _operator_tags(packed.inner, operator, sensor,
                                                                                     in_path)
    else:
        src = open_source(in_path, bands, dn_scale=dn_scale, dn_offset=dn_offset)
        model = _with_operator(model, operator, sensor, in_path, src, scale)
        model = _resolve(model, src.band_names, src.count, scale, allow_untrained)
        out_names = [src.descriptions[b] or (src.band_names[b] if _described(src.band_names) else "")
                     for b in range(src.count)]
    op_tags = _operator_tags(model, operator, sensor, in_path) if packed is None else guide_tags
    target = getattr(model, "inner", model)  # the packed multi-resolution wrapper holds the network
    if hasattr(target, "self_ensemble"):  # one pass unless asked: whole tiles at 1/8 of the cost
        target.self_ensemble = bool(self_ensemble)
    elif self_ensemble:
        raise ModelError(f"model {model.spec.name} has no self-ensemble option")
    plan = _plan(src.height, src.width, model, tile, overlap)
    _inference_mode(model, uncertainty)
    engine = choose_engine(engine, model, uncertainty)
    r = plan.scale
    if output_dtype is None:
        dtype = src.dtype if np.issubdtype(np.dtype(src.dtype), np.integer) else "float32"
    elif output_dtype in ("float32", "same"):
        dtype = src.dtype if output_dtype == "same" else "float32"
    else:
        raise ConfigError(f"output_dtype must be None, 'same' or 'float32', got {output_dtype!r}")
    is_int = np.issubdtype(np.dtype(dtype), np.integer)
    dn_scale, dn_offset = (src.dn_scale, src.dn_offset) if is_int or dtype == src.dtype else (1.0, 0.0)
    nodata = src.out_nodata if is_int or (dtype == src.dtype and src.out_nodata is not None) else float("nan")
    if is_int and nodata is None and any(n is not None for n in src.nodata):
        nodata = next(n for n in src.nodata if n is not None)
    spec = model.spec
    tags = {"eosr_version": __version__, "eosr_model": getattr(spec, "name", type(model).__name__),
            "eosr_model_version": getattr(spec, "version", "?"), "eosr_scale": r, "eosr_tile": plan.tile,
            "eosr_overlap": plan.overlap, "eosr_receptive_field": plan.receptive_field,
            "eosr_tiling_exact": plan.exact, "eosr_source": Path(in_path).name, "eosr_engine": engine} | op_tags
    h, w, c = src.height * r, src.width * r, len(out_names)
    t_out = hr_transform(src.transform, r) if src.georeferenced else src.transform  # none made up
    profile = dict(driver="GTiff", width=w, height=h, count=c, crs=src.crs, transform=t_out,
                   tiled=True, blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER")
    paths = [out] + ([uncertainty_path(out)] if uncertainty else [])
    if uncertainty and not hasattr(model, "forward_with_uncertainty"):
        raise ModelError(f"model {spec.name} offers no uncertainty (forward_with_uncertainty)")
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), atomic_path(out) as tmp, \
            (atomic_path(paths[-1]) if uncertainty else _null()) as tmp_u:
        stages = [Path(str(tmp) + ".stage.tif")] + ([Path(str(tmp_u) + ".stage.tif")] if uncertainty else [])
        try:
            with warnings.catch_warnings():  # a non-georeferenced input (PNG, JPEG) gives a plain raster
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                dss = [rasterio.open(stages[0], "w", dtype=dtype, nodata=nodata, **profile)]
                if uncertainty:
                    dss.append(rasterio.open(stages[1], "w", dtype="float32", nodata=float("nan"), **profile))

            valid = [False]  # an input with no valid pixel gives no output file (checked as the tiles go)

            def sink(win: Window, data: np.ndarray) -> None:
                rw = rasterio.windows.Window(win[2], win[0], win[3] - win[2], win[1] - win[0])
                valid[0] = valid[0] or bool(np.isfinite(data[:c]).any())
                dss[0].write(to_dn(data[:c], dtype, dn_scale, dn_offset, nodata), window=rw)
                if uncertainty:
                    dss[1].write(data[c:], window=rw)

            try:
                _run_tiles(plan, model, src, Blender(plan, sink), uncertainty=uncertainty, workers=workers,
                           scheduler=scheduler, progress=show_progress(progress), engine=engine)
                if not valid[0]:
                    raise DataError(f"{Path(in_path).name}: no valid pixel (all nodata or NaN): nothing to "
                                    "super-resolve")
                for k, ds in enumerate(dss):
                    for b, name in enumerate(out_names):
                        if name:
                            ds.set_band_description(b + 1, name + ("_std" if k else ""))
                    if k == 0 and (is_int or (dn_scale, dn_offset) != (1.0, 0.0)):
                        ds.scales = [dn_scale] * c
                        ds.offsets = [dn_offset] * c
                    ds.update_tags(**{kk: str(v) for kk, v in tags.items()},
                                   **({"eosr_layer": "std"} if k else {}))
            finally:
                for ds in dss:
                    ds.close()
                src.close()
            for stage, target in zip(stages, [tmp, tmp_u], strict=False):
                if target is not None:
                    finish_stage(stage, target, cog)
        finally:
            for s in stages:
                if s.exists():
                    s.unlink()
    if not uncertainty:
        drop_stale_uncertainty(out)
    return out


def _checked_shift(x10: Any, x20: Any, bands_20m: Sequence[str], fix: str, where: str = "",
                   size: int | None = 256, warn: bool = True) -> tuple[float, float] | None:
    """The guide's shift against the 20 m bands (:func:`eosr.models.guided.guide_shift`), or None when the
    inputs have too few valid pixels to tell; with ``warn``, a :class:`GuideShiftWarning` naming ``fix``
    above ``GUIDE_SHIFT_WARN``."""
    from eosr.errors import GuideShiftWarning
    from eosr.models.guided import GUIDE_SHIFT_WARN, guide_shift

    try:
        dy, dx = guide_shift(x10, x20, bands_20m, size=size)
    except EosrError:  # too few valid pixels for the regression
        return None
    if warn and max(abs(dy), abs(dx)) > GUIDE_SHIFT_WARN:
        warnings.warn(f"{where}the 10 m bands are ({dy:+.2f}, {dx:+.2f}) px off the 20 m bands (estimated from the "
                      f"inputs): a misregistered guide can make sharpening worse than bicubic; {fix}",
                      GuideShiftWarning, stacklevel=3)
    return dy, dx


def _check_guide(src: Any, packed: Any, in_path: Any, coregister: bool = False, size: int = 256) -> dict[str, str]:
    """The guide's shift on the centre window (at most ``size`` x ``size`` 20 m px) of a packed source
    (:func:`_checked_shift`), as the tag ``eosr_guide_shift_px`` ("dy,dx" in 10 m pixels); empty when the
    window cannot tell. With ``coregister`` the packed model shifts the guide by it (above 0.1 px; tag
    ``eosr_guide_coregistered``) instead of warning."""
    import torch

    from eosr._windows import centre_box
    from eosr.models.guided import needs_coregistration

    r0, r1, c0, c1 = centre_box(src.height, src.width, size)
    x10 = src.s10.read((2 * r0, 2 * r1, 2 * c0, 2 * c1))
    x20 = src.s20.read((r0, r1, c0, c1))
    if min(r1 - r0, c1 - c0) < 16 or np.isfinite(x20).all(axis=0).mean() < 0.5:
        return {}
    shift = _checked_shift(torch.from_numpy(x10), torch.from_numpy(x20), packed.bands_20m,
                           "pass --coregister (Python: coregister=True) to shift it first",
                           f"{Path(in_path).name}: ", size=None, warn=not coregister)
    if shift is None:
        if coregister:
            raise DataError(f"{Path(in_path).name}: too few valid pixels in the centre window to estimate the "
                            "guide's shift for --coregister")
        return {}
    tags = {"eosr_guide_shift_px": f"{shift[0]:.2f},{shift[1]:.2f}"}
    if coregister:
        moved = needs_coregistration(shift)
        if moved:
            packed.set_guide_shift(*shift)
        tags["eosr_guide_coregistered"] = str(moved).lower()
    return tags


def drop_stale_uncertainty(out: str | os.PathLike[str]) -> bool:
    """Remove ``OUT.uncertainty.tif`` when eosr wrote it (tag ``eosr_layer = std``) for an earlier SR in
    ``out``: a run without ``--uncertainty`` replaced that SR, so the std no longer describes it (and
    ``eosr evaluate`` or a STAC item would pair the two). Returns whether a file was removed."""
    side = uncertainty_path(out)
    if side.is_file() and file_tag(side, "eosr_layer") == "std":
        side.unlink()
        return True
    return False


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DataError` unless a file can be created beside ``path`` (before any work is done)."""
    import tempfile

    check_geotiff_name(path)
    folder = Path(path).parent
    if not folder.is_dir():
        raise DataError(f"output folder does not exist: {folder}")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise DataError(f"output folder is not writable: {folder} ({e.strerror})") from None


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def finish_stage(stage: Path, target: Path, cog: bool) -> None:
    """Copy the uncompressed stage to a deflate-compressed tiled GeoTIFF or a COG (streamed by GDAL)."""
    from rasterio.shutil import copy as rio_copy

    if cog:
        copy_to_cog(stage, target)
    else:
        rio_copy(str(stage), str(target), driver="GTiff", compress="deflate", tiled=True, blockxsize=256,
                 blockysize=256, BIGTIFF="IF_SAFER")
