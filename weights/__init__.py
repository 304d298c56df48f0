"""Finding, mapping and loading the official SVD weights (svd-spec.md section 6).

locate.py           where the files are (diffusers folder, single file, Hugging Face cache)
original_layout.py  single-file (sgm) names <-> diffusers / transformers names
load.py             header checks, lazy per-part views, streaming copy into a module
errors.py           WeightsError and its subclasses
"""
from .errors import (CorruptFile, MissingKeys, ShapeMismatch, UnexpectedKeys, WeightsError, WeightsNotFound,
                     WrongModel)
from .load import PartView, load_state_dict_into, open_diffusers_part, open_single_file, open_state
from .locate import Found, locate

__all__ = ["CorruptFile", "Found", "MissingKeys", "PartView", "ShapeMismatch", "UnexpectedKeys", "WeightsError",
           "WeightsNotFound", "WrongModel", "load_state_dict_into", "locate", "open_diffusers_part",
           "open_single_file", "open_state"]
