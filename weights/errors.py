"""Errors raised while finding, reading and loading SVD weights.

Every error says which file (or which places) it is about, so a user can act on it.
"""


class WeightsError(Exception):
    """Base class of every weights/ error."""


class WeightsNotFound(WeightsError):
    """No usable set of weight files was found; the message lists every place looked at."""


class CorruptFile(WeightsError):
    """A file is not a readable safetensors file (bad header, truncated data)."""


class WrongModel(WeightsError):
    """A readable file that holds some other model (e.g. image-only Stable Diffusion)."""


class MissingKeys(WeightsError):
    """The module needs tensors that the file does not have."""


class UnexpectedKeys(WeightsError):
    """The file has tensors that the module (or the layout mapping) does not know."""


class ShapeMismatch(WeightsError):
    """A tensor's shape in the file differs from the module's."""


def name_some(names, limit: int = 5) -> str:
    """'a, b, c, d, e and 7 more' for a sorted listing in error messages."""
    names = sorted(names)
    text = ", ".join(names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")
