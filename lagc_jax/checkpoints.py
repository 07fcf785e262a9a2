"""Checkpoints of a chunked run: resume an interrupted simulation without mixing runs.

Internal to the engine (no public API). A checkpoint directory holds

* ``manifest.json`` — the run's fingerprint, the iterations done, and the exact
  files of the run with their sha256; it is the only file ever replaced, by one
  atomic write, and it is written last: it *commits* a chunk;
* ``chunk_<k0>_<token>.npz`` — the records of one chunk (trials trimmed to the
  run's count, so the files do not depend on the device count);
* ``carry_<done>_<token>.npz`` — the state after the last committed chunk.

Chunk and carry files get fresh names, so a process killed at any point leaves
the previous manifest and every file it names intact. Files the manifest does
not name are leftovers of a killed write and are removed at the next commit.
A missing, stale (other content) or corrupt file raises ValueError naming it.

The run's key hashes everything that determines the result, in named parts (the
engine's: the program a chunk runs, traced from all the code inside it; the data;
the initial state; the configuration); a directory written by another run raises
ValueError naming the parts that differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import types
import zipfile
from pathlib import Path

import jax
import numpy as np

from .results import atomic_write

MANIFEST = "manifest.json"
_FORMAT = 3  # 3: records by name ("record:NAME"); 2 held them by position (record0..5)
_RECORD_PREFIX = "record:"
_END_PREFIX = "end:"  # the values after the chunk's last iteration (loss, gap)
_WHAT_DIFFERS = (
    "program: the code run inside a chunk — a strategy piece, the loss, the "
    "optimizer or the delay model; data: the problem or replayed unit times; "
    "initial state: what the strategy and optimizer build before iteration 0; "
    "configuration: knobs, delays, seed, trials, chunking, dtype"
)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")


# --------------------------------------------------------------------------- #
# fingerprint
# --------------------------------------------------------------------------- #
def _feed(h, obj, depth: int = 0) -> None:
    """Feed a canonical byte form of ``obj`` to the hash ``h`` (no memory addresses)."""
    if depth > 50:
        raise ValueError("fingerprint: object nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, str, complex, np.generic)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, (np.ndarray, jax.Array)):
        a = np.ascontiguousarray(np.asarray(obj))
        h.update(f"array:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    elif isinstance(obj, dict):
        h.update(f"dict:{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key, depth + 1)
            _feed(h, obj[key], depth + 1)
    elif isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        h.update(f"{type(obj).__name__}:{len(obj)};".encode())
        for item in obj:
            _feed(h, item, depth + 1)
    elif callable(obj) and not hasattr(obj, "tree_flatten"):
        _feed(h, describe_callable(obj), depth + 1)
    else:  # any pytree (NamedTuple, registered dataclass, strategy pieces, ...)
        leaves, treedef = jax.tree_util.tree_flatten(obj)
        if len(leaves) == 1 and leaves[0] is obj:  # an opaque leaf
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                h.update(f"dataclass:{type(obj).__module__}.{type(obj).__qualname__};".encode())
                _feed(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, depth + 1)
            else:
                h.update(f"object:{_ADDRESS.sub('', repr(obj))};".encode())
            return
        h.update(f"tree:{_ADDRESS.sub('', str(treedef))};".encode())
        for leaf in leaves:
            _feed(h, leaf, depth + 1)


def describe_callable(fn, depth: int = 0):
    """Structure of a function without memory addresses: module, qualname, a hash of its
    bytecode and constants, and (recursively) the values its closure captured, so that
    ``optax.sgd(0.1)`` and ``optax.sgd(0.2)`` differ while two processes agree."""
    if depth > 8:
        return "..."
    if isinstance(fn, types.MethodType):
        return [
            "method",
            describe_callable(fn.__func__, depth + 1),
            _describe_value(fn.__self__, depth),
        ]
    if isinstance(fn, types.FunctionType):
        code = fn.__code__
        consts = hashlib.sha256(
            repr(tuple(c for c in code.co_consts if not isinstance(c, types.CodeType))).encode()
        ).hexdigest()
        cells = []
        for cell in fn.__closure__ or ():
            try:
                cells.append(_describe_value(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                cells.append("<empty>")
        defaults = [_describe_value(v, depth + 1) for v in (fn.__defaults__ or ())]
        return [
            "function",
            fn.__module__,
            fn.__qualname__,
            hashlib.sha256(code.co_code).hexdigest(),
            consts,
            cells,
            defaults,
        ]
    if isinstance(fn, type):
        return ["class", fn.__module__, fn.__qualname__]
    if hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        return [
            "partial",
            describe_callable(fn.func, depth + 1),
            [_describe_value(a, depth + 1) for a in fn.args],
            {k: _describe_value(v, depth + 1) for k, v in sorted(fn.keywords.items())},
        ]
    return ["callable", type(fn).__module__, type(fn).__qualname__, _ADDRESS.sub("", repr(fn))]


def _describe_value(value, depth: int):
    if value is None or isinstance(value, (bool, int, float, str, complex)):
        return value
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        a = np.ascontiguousarray(np.asarray(value))
        return ["array", a.dtype.str, list(a.shape), hashlib.sha256(a.tobytes()).hexdigest()]
    if isinstance(value, (list, tuple)):
        return [type(value).__qualname__] + [_describe_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {repr(k): _describe_value(v, depth + 1) for k, v in value.items()}
    if callable(value):
        return describe_callable(value, depth + 1)
    return [type(value).__module__, type(value).__qualname__, _ADDRESS.sub("", repr(value))]


def describe_jaxpr(closed) -> list:
    """A canonical description of a closed jaxpr: every equation (primitive, parameters,
    operand avals) with variables numbered in order, sub-jaxprs written out in place,
    and the constants' bytes — independent of the process's tracing caches (jax's own
    printing shares a sub-jaxpr by object identity, which differs between processes)."""
    constants = []

    def text(jaxpr) -> str:
        names = {}

        def name(v):
            if type(v).__name__ == "Literal":
                return f"{v.val!r}:{v.aval}"
            if type(v).__name__ == "DropVar":
                return f"_:{v.aval}"
            if v not in names:
                names[v] = f"v{len(names)}:{v.aval}"
            return names[v]

        lines = ["in " + " ".join(name(v) for v in (*jaxpr.constvars, *jaxpr.invars))]
        for eqn in jaxpr.eqns:
            params = ";".join(f"{k}={param(v)}" for k, v in sorted(eqn.params.items()))
            lines.append(
                f"{' '.join(name(v) for v in eqn.outvars)} = {eqn.primitive.name}"
                f"[{params}] {' '.join(name(v) for v in eqn.invars)}"
            )
        lines.append("out " + " ".join(name(v) for v in jaxpr.outvars))
        return "{" + "\n".join(lines) + "}"

    def param(value) -> str:
        if hasattr(value, "jaxpr") and hasattr(value, "consts"):  # a closed jaxpr
            constants.extend(value.consts)
            return text(value.jaxpr)
        if hasattr(value, "eqns"):  # an open jaxpr
            return text(value)
        if isinstance(value, (tuple, list)):
            return "(" + ",".join(param(v) for v in value) + ")"
        if callable(value) and not isinstance(value, type):
            return repr(describe_callable(value))
        return _ADDRESS.sub("", repr(value))

    body = param(closed)
    return [body, [np.asarray(c) for c in constants]]


def fingerprint(**parts) -> str:
    """sha256 over everything that determines a run's result.

    Each keyword is hashed canonically: arrays by dtype, shape and bytes; pytrees
    (e.g. a strategy's arrays) by their treedef string and every leaf; functions by
    :func:`describe_callable`; dicts by sorted key.
    """
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


# --------------------------------------------------------------------------- #
# the store
# --------------------------------------------------------------------------- #
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _trim(array, axis, count):
    return array if axis is None else np.take(array, np.arange(count), axis=axis)


def _pad(array, axis, count):
    """Pad the trial axis to ``count`` rows by repeating row 0 (padding trials are discarded)."""
    if axis is None or array.shape[axis] == count:
        return array
    extra = np.repeat(np.take(array, [0], axis=axis), count - array.shape[axis], axis=axis)
    return np.concatenate([array, extra], axis=axis)


class Checkpoint:
    """Chunk records and the latest carry of one run in a directory (see the module doc).

    ``trial_axes`` (given to save/load) lists, per carry leaf, the axis of trials
    or None for a leaf shared by all trials: files hold exactly ``num_trials``
    trials, so a run resumes on any device count (trial order is positional).
    """

    def __init__(self, directory, parts: dict, num_trials: int):
        """``parts``: name -> fingerprint of each thing that determines the result (the
        run's key hashes them all; a mismatch on resume names the parts that differ)."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.parts = dict(parts)
        self.key = fingerprint(**self.parts)
        key = self.key
        self.num_trials = num_trials
        self.manifest = None
        self.done = 0
        path = self.dir / MANIFEST
        if not path.exists():
            if (self.dir / "checkpoint.json").exists():
                raise ValueError(
                    f"checkpoint {self.dir} was written by an older version of "
                    "lagc_jax (checkpoint.json); delete it or use another directory"
                )
            return
        try:
            manifest = json.loads(path.read_text())
            if not isinstance(manifest, dict) or manifest.get("format") not in (2, _FORMAT):
                raise ValueError("unknown format")
            if manifest["format"] == _FORMAT:
                done, chunks = int(manifest["done"]), manifest["chunks"]
                _ = manifest["key"], manifest["carry"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise ValueError(
                f"checkpoint file {path} is corrupt ({error}); delete the directory to start over"
            ) from None
        if manifest["format"] == 2:
            raise ValueError(
                f"checkpoint {self.dir} was written by an older version of "
                "lagc_jax (records by position, record0..5; they are now kept by "
                "name); delete it or use another directory"
            )
        if manifest["key"] != key:
            stored = manifest.get("parts", {})
            differ = [name for name, value in self.parts.items() if stored.get(name) != value]
            raise ValueError(
                f"checkpoint {self.dir} belongs to a different run: its {', '.join(differ)} "
                f"differ{'s' if len(differ) == 1 else ''} ({_WHAT_DIFFERS}); use another "
                "directory or delete it"
            )
        self.manifest, self.done = manifest, done
        for entry in [manifest["carry"], *chunks]:  # every named file present and unchanged
            self._verify(entry)

    def _verify(self, entry) -> Path:
        path = self.dir / entry["file"]
        if not path.exists():
            raise ValueError(
                f"checkpoint file {path} is missing (named in {self.dir / MANIFEST}); "
                "delete the directory to start over"
            )
        if _sha256(path) != entry["sha256"]:
            raise ValueError(
                f"checkpoint file {path} is stale or corrupt (its sha256 differs "
                f"from the one in {self.dir / MANIFEST}); delete the directory to "
                "start over"
            )
        return path

    def _read(self, entry) -> dict:
        path = self._verify(entry)
        try:
            with np.load(path) as z:
                return {name: z[name] for name in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"checkpoint file {path} cannot be read ({error})") from None

    def load(self, carry_template, trial_axes, padded: int):
        """(records per chunk, masks per chunk, end loss, carry) committed so far; trial
        axes are padded to ``padded`` rows for this process's device count."""
        records, masks, end_values = [], [], None
        for entry in self.manifest["chunks"]:
            z = self._read(entry)
            records.append(
                {
                    name[len(_RECORD_PREFIX) :]: values
                    for name, values in z.items()
                    if name.startswith(_RECORD_PREFIX)
                }
            )
            if "masks" in z:
                masks.append(z["masks"])
            end_values = {
                name[len(_END_PREFIX) :]: values
                for name, values in z.items()
                if name.startswith(_END_PREFIX)
            }
        z = self._read(self.manifest["carry"])
        leaves = [z[f"leaf{i}"] for i in range(len(z))]
        structure = jax.tree_util.tree_structure(carry_template)
        if len(leaves) != structure.num_leaves or len(trial_axes) != len(leaves):
            raise ValueError(
                f"checkpoint file {self.dir / self.manifest['carry']['file']} holds "
                f"{len(leaves)} state arrays, this run has {structure.num_leaves}"
            )
        leaves = [_pad(leaf, axis, padded) for leaf, axis in zip(leaves, trial_axes)]
        return records, masks, end_values, jax.tree_util.tree_unflatten(structure, leaves)

    def _write(self, name: str, arrays: dict) -> dict:
        path = self.dir / name
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return {"file": name, "sha256": _sha256(path)}

    def save(self, k0: int, done: int, records, masks, end_values, carry, trial_axes) -> None:
        """Commit one chunk (its records by name, already trimmed to ``num_trials``) and the
        carry after it: new files first, then the manifest naming them, then leftovers removed."""
        token = secrets.token_hex(6)
        arrays = {_RECORD_PREFIX + name: r for name, r in records.items()}
        arrays.update({_END_PREFIX + name: v for name, v in end_values.items()})
        if masks is not None:
            arrays["masks"] = masks
        chunk = self._write(f"chunk_{k0:09d}_{token}.npz", arrays)
        chunk.update(k0=k0, done=done)
        leaves = jax.tree_util.tree_leaves(carry)
        carry_entry = self._write(
            f"carry_{done:09d}_{token}.npz",
            {
                f"leaf{i}": _trim(np.asarray(a), axis, self.num_trials)
                for i, (a, axis) in enumerate(zip(leaves, trial_axes))
            },
        )
        chunks = [] if self.manifest is None else list(self.manifest["chunks"])
        manifest = {
            "format": _FORMAT,
            "key": self.key,
            "parts": self.parts,
            "done": done,
            "num_trials": self.num_trials,
            "carry": carry_entry,
            "chunks": chunks + [chunk],
        }
        text = json.dumps(manifest, indent=1).encode()
        atomic_write(self.dir / MANIFEST, lambda f: f.write(text))
        self.manifest, self.done = manifest, done
        keep = {MANIFEST, carry_entry["file"], *(c["file"] for c in manifest["chunks"])}
        for path in self.dir.iterdir():
            if path.name not in keep and path.name.startswith(("chunk_", "carry_", MANIFEST)):
                path.unlink(missing_ok=True)
