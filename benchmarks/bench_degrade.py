"""Speed of the degradation operator against the obvious alternatives, same arrays, one run.

    .venv/bin/python benchmarks/bench_degrade.py [--size 2048] [--bands 4]

Prints seconds (best of 3) for the PSF blur on the HR grid and the x2 downsample, the ratio of each
alternative to eosr, and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import correlate1d

from eosr.degrade import Degradation


def best(fn, n: int = 3) -> float:
    fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--bands", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(2)
    x = torch.rand(1, a.bands, a.size, a.size)
    op = Degradation.from_sensor("sentinel2", ["B02", "B03", "B04", "B08"][: a.bands] or None, 2)
    ky, kx = op._taps(a.bands, 1, torch.float32)
    k = ky.shape[1]
    xn = x[0].numpy()

    def depthwise() -> None:
        xp = F.pad(x, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
        y = F.conv2d(xp, kx.view(a.bands, 1, 1, k), groups=a.bands)
        F.conv2d(y, ky.view(a.bands, 1, k, 1), groups=a.bands)

    def scipy_sep() -> None:
        for c in range(a.bands):
            correlate1d(correlate1d(xn[c], kx[c].numpy(), axis=-1, mode="reflect"), ky[c].numpy(), axis=-2,
                        mode="reflect")

    t_blur = best(lambda: op.blur(x))
    t_down = best(lambda: op.downsample(x))
    t_dw = best(depthwise)
    t_sp = best(scipy_sep)
    print(f"{a.bands} x {a.size}^2, kernel {k} taps, torch threads {torch.get_num_threads()}")
    print(f"eosr blur (FFT, symmetric borders)   {t_blur:7.3f} s")
    print(f"eosr downsample x2                    {t_down:7.3f} s")
    print(f"depthwise conv2d (separable)          {t_dw:7.3f} s   ratio {t_dw / t_blur:5.2f}x eosr")
    print(f"scipy.ndimage correlate1d             {t_sp:7.3f} s   ratio {t_sp / t_blur:5.2f}x eosr")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    np.testing.assert_allclose(op.blur(x)[0, :, 20:-20, 20:-20].numpy(),
                               np.stack([correlate1d(correlate1d(xn[c], kx[c].numpy(), axis=-1, mode="reflect"),
                                                     ky[c].numpy(), axis=-2, mode="reflect")
                                         for c in range(a.bands)])[:, 20:-20, 20:-20], atol=1e-5)
    print("eosr blur equals scipy's away from the borders (atol 1e-5)")


if __name__ == "__main__":
    main()
