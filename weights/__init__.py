"""Finding, mapping and loading the official SVD weights (docs/svd.md §3).

locate.py           where the files are (diffusers folder, single file, Hugging Face cache)
original_layout.py  single-file (sgm) names <-> diffusers / transformers names
load.py             header checks, lazy per-part views, streaming copy into a module
errors.py           WeightsError and its subclasses
svd.py              load_svd: locate + config + meta-device networks + streamed weights, in one call

    svd = load_svd()            # the shipped tiny model weights/tiny/sgi2v-tiny/ (not the HF cache)
    svd = load_svd("hf")        # official SVD from the Hugging Face cache; or a folder / .safetensors path
"""
from .errors import (CorruptFile, MissingKeys, ShapeMismatch, UnexpectedKeys, WeightsError, WeightsNotFound,
                     WrongModel)
from .load import PartView, load_state_dict_into, open_diffusers_part, open_single_file, open_state
from .locate import Found, locate
from .svd import SVD, SVDFiles, find_svd, load_svd

__all__ = ["CorruptFile", "Found", "MissingKeys", "PartView", "SVD", "SVDFiles", "ShapeMismatch", "UnexpectedKeys",
           "WeightsError", "WeightsNotFound", "WrongModel", "find_svd", "load_state_dict_into", "load_svd", "locate",
           "open_diffusers_part", "open_single_file", "open_state"]
