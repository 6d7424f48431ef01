"""tinyllm.save / tinyllm.load: storing tensors and the containers around them, without pickle.

PyTorch's `torch.save` pickles its argument, and unpickling can run arbitrary code — loading a
stranger's checkpoint is running a stranger's program. tinyllm stores only *data*: tensors
(and NumPy arrays), None, bools, ints, floats and strings, in dicts, lists and tuples nested in
any way — exactly what a `state_dict()` of a model or an optimizer is made of. Anything else
(a module, a function, an arbitrary object) is a TypeError that names its place in the object,
e.g. `obj['state'][0]['fn']`.

The file is a NumPy `.npz` archive (a zip of `.npy` arrays, read with allow_pickle=False) with
two kinds of member, like safetensors' header + buffers:

    t0, t1, …        the arrays, one per distinct tensor
    __structure__    one JSON document: the object's tree, with each tensor replaced by a
                     reference {"tensor": "t3"}, and each tensor's dtype and requires_grad

    node := null | true | false | 12 | 0.5 | "text"
          | {"float": "nan" | "inf" | "-inf"}         (JSON has no non-finite numbers)
          | {"list": [node, …]} | {"tuple": [node, …]}
          | {"dict": [[key, node], …], "ordered": bool}   keys are strings or ints, so an
                                                         optimizer's {0: …} comes back as 0
          | {"tensor": name}

The same tensor (or array) object reached twice — a tied weight named `transformer.wte.weight`
and `lm_head.weight` — is stored once and loads as one Tensor under both names. (PyTorch also
shares *views* of one storage; here only the identical object is shared.) `load` returns
Tensors for every stored tensor or array, OrderedDicts where an OrderedDict was saved, and
Python numbers for NumPy scalars. bf16 tensors keep their dtype.

`save` writes atomically (tinyllm/runtime/fileio.py): a crash leaves the old file or the new
one, never half of one.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections import OrderedDict

import numpy as np

from tinyllm.dtypes import bfloat16, half_seen, logical_dtype
from tinyllm.engine import Tensor
from tinyllm.runtime.fileio import atomic_write

FORMAT = "tinyllm-save"
VERSION = 1
STRUCTURE = "__structure__"
_STORABLE_KINDS = "biufc"  # bool, int, unsigned, float, complex


class SerializationError(ValueError):
    """A file that tinyllm.load cannot read: missing structure, corrupt, or not tinyllm's."""


# ---- save ---------------------------------------------------------------------------------


class _Writer:
    """Walks the object, turning it into JSON nodes and collecting its arrays."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.tensors: dict[str, dict] = {}
        self.by_id: dict[int, str] = {}
        self.keep_alive: list = []  # ids are only unique while the objects live

    def node(self, obj, path: str):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        if isinstance(obj, np.generic) and obj.dtype.kind in _STORABLE_KINDS:
            return self.node(obj.item(), path)  # a NumPy scalar becomes a Python number
        if isinstance(obj, (Tensor, np.ndarray)):
            return {"tensor": self.tensor(obj, path)}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(
                        f"tinyllm.save: dict key {k!r} ({type(k).__name__}) at {path} — only "
                        "str and int keys can be stored"
                    )
                items.append([k, self.node(v, f"{path}[{k!r}]")])
            return {"dict": items, "ordered": isinstance(obj, OrderedDict)}
        if isinstance(obj, (list, tuple)):
            kind = "tuple" if isinstance(obj, tuple) else "list"
            return {kind: [self.node(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
        raise TypeError(
            f"tinyllm.save: cannot store {type(obj).__name__} at {path} — only Tensors, NumPy "
            "arrays, None, bool, int, float, str and dicts / lists / tuples of them (no pickle)"
        )

    def tensor(self, obj, path: str) -> str:
        if id(obj) in self.by_id:
            return self.by_id[id(obj)]
        array = obj.data if isinstance(obj, Tensor) else obj
        info = {"requires_grad": bool(isinstance(obj, Tensor) and obj.requires_grad)}
        if logical_dtype(array.dtype) is bfloat16:
            info["dtype"] = "bfloat16"
            array = array.view(np.uint16)
        elif array.dtype.kind not in _STORABLE_KINDS or array.dtype.fields is not None:
            raise TypeError(
                f"tinyllm.save: array of dtype {array.dtype} at {path} cannot be stored"
            )
        else:
            info["dtype"] = array.dtype.str
        name = f"t{len(self.arrays)}"
        self.arrays[name], self.tensors[name] = np.ascontiguousarray(array), info
        self.by_id[id(obj)] = name
        self.keep_alive.append(obj)
        return name


def save(obj, f) -> None:
    """Store `obj` (tensors in nested dicts / lists / tuples, see above) in `f`.

    `f` is a path (written atomically) or a binary file object opened for writing.
    """
    writer = _Writer()
    root = writer.node(obj, "obj")
    structure = {"format": FORMAT, "version": VERSION, "root": root, "tensors": writer.tensors}
    payload = dict(writer.arrays)
    text = json.dumps(structure, allow_nan=False, ensure_ascii=False)
    payload[STRUCTURE] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if hasattr(f, "write"):
        np.savez(f, **payload)
    else:
        atomic_write(f, lambda out: np.savez(out, **payload))


# ---- load ---------------------------------------------------------------------------------


def _read(f, where: str) -> dict:
    try:
        with np.load(f, allow_pickle=False) as z:
            names = z.files
            if STRUCTURE not in names:
                hint = ""
                if isinstance(z.zip, zipfile.ZipFile) and any(
                    n.endswith("data.pkl") for n in z.zip.namelist()
                ):
                    hint = (
                        " — it is a PyTorch pickle file (torch.save); tinyllm never unpickles: "
                        "load it with torch and convert the tensors with .numpy()"
                    )
                raise SerializationError(f"{where}: not a tinyllm.save file{hint}")
            return {k: z[k] for k in names}
    except SerializationError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError, NotImplementedError) as e:
        raise SerializationError(
            f"{where}: not a readable tinyllm.save file (truncated or corrupt?): "
            f"{type(e).__name__}: {e}"
        ) from None


class _Reader:
    def __init__(self, arrays, tensors, where):
        self.arrays, self.tensors, self.where = arrays, tensors, where
        self.loaded: dict[str, Tensor] = {}

    def fail(self, what):
        raise SerializationError(f"{self.where}: corrupt structure: {what}")

    def node(self, n):
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        if isinstance(n, dict) and len(n) >= 1:
            if "tensor" in n:
                return self.tensor(n["tensor"])
            if "float" in n and n["float"] in ("nan", "inf", "-inf"):
                return float(n["float"])
            if "list" in n:
                return [self.node(v) for v in n["list"]]
            if "tuple" in n:
                return tuple(self.node(v) for v in n["tuple"])
            if "dict" in n:
                out = OrderedDict() if n.get("ordered") else {}
                for pair in n["dict"]:
                    if not (isinstance(pair, list) and len(pair) == 2):
                        self.fail(f"dict item {pair!r}")
                    out[pair[0]] = self.node(pair[1])
                return out
        self.fail(f"unknown node {str(n)[:80]}")

    def tensor(self, name):
        if name in self.loaded:
            return self.loaded[name]
        if name not in self.arrays or name not in self.tensors:
            self.fail(f"tensor {name!r} is referenced but not stored")
        array, info = self.arrays[name], self.tensors[name]
        if info.get("dtype") == "bfloat16":
            half_seen()  # the engine's half-precision rules switch on (tinyllm/dtypes.py)
            array = array.view(bfloat16.storage)
        elif np.dtype(info.get("dtype", array.dtype.str)) != array.dtype:
            self.fail(f"tensor {name!r} has dtype {array.dtype}, structure says {info['dtype']}")
        t = Tensor(array, requires_grad=bool(info.get("requires_grad", False)))
        self.loaded[name] = t
        return t


def load(f, map_location=None, weights_only: bool = True, mmap=None):
    """Read back what `save` stored: Tensors in the same dicts / lists / tuples.

    `f` is a path or a binary file object. `map_location` may be None or "cpu" (the only
    device); `weights_only` and `mmap` are accepted for PyTorch's call signature — loading is
    always weights-only here, since nothing but data can be stored.
    """
    if map_location is not None and str(map_location) != "cpu":
        raise ValueError(f"tinyllm.load: map_location {map_location!r}: only 'cpu' exists here")
    if hasattr(f, "read"):
        where = getattr(f, "name", type(f).__name__)
        arrays = _read(io.BytesIO(f.read()), where)
    else:
        where = os.fspath(f)
        if not os.path.exists(where):
            raise FileNotFoundError(f"tinyllm.load: no such file: {where}")
        arrays = _read(where, where)
    try:
        structure = json.loads(arrays.pop(STRUCTURE).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SerializationError(f"{where}: the structure is not valid JSON: {e}") from None
    if not isinstance(structure, dict) or structure.get("format") != FORMAT:
        raise SerializationError(f"{where}: not a tinyllm.save file (format {FORMAT!r} expected)")
    if structure.get("version", 0) > VERSION:
        raise SerializationError(
            f"{where}: written by a newer tinyllm (format version {structure['version']})"
        )
    tensors = structure.get("tensors", {})
    if set(tensors) != set(arrays):
        lost, extra = sorted(set(tensors) - set(arrays)), sorted(set(arrays) - set(tensors))
        raise SerializationError(f"{where}: corrupt archive: arrays missing {lost}, extra {extra}")
    return _Reader(arrays, tensors, where).node(structure.get("root"))
