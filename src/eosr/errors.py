"""Typed exceptions: every bad input raises one of these with a one-line message.

The CLI maps :class:`EosrError` to exit code 2 and prints only the message.
"""

from __future__ import annotations


class EosrError(ValueError):
    """Base class of every error eosr raises on bad input."""


class ShapeError(EosrError):
    """An array has the wrong number of dimensions or mismatching sizes."""


class ScaleError(EosrError):
    """A scale factor is not an integer >= 1, or a size is not divisible by it."""


class SensorError(EosrError):
    """Unknown sensor, unknown band, or a physically impossible sensor value."""


class GeoError(EosrError):
    """CRS, transform or footprint mismatch between rasters."""


class DataError(EosrError):
    """A file is missing, unreadable, corrupt or laid out unexpectedly."""


class RadiometryError(DataError):
    """Stored values whose conversion to reflectance is not given and cannot be read from the file (integer
    data without scale metadata, float data that is not reflectance): the fix is ``--dn-scale``."""


class ModelError(EosrError):
    """Unknown model, or a checkpoint that does not fit the request."""


class ConfigError(EosrError):
    """A configuration file is invalid."""


class ResourceError(EosrError):
    """The work would need more memory or disk than is available, or a file declares an absurd size."""


class EosrWarning(UserWarning):
    """A result was produced but something about the input deserves attention (the ``eosr`` command prints
    it as one line ``warning: ...`` on stderr)."""


class GuideShiftWarning(EosrWarning):
    """The 10 m guide of a 20 m sharpening run is measurably off the 20 m bands (see
    :func:`eosr.models.guided.guide_shift`)."""
