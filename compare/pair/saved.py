"""Ported weights on disk: written only once the proof passed, loadable without running
code, and checked against the record written beside them.

A Keras target is saved as `.weights.h5` (arrays only: no custom objects, no code), a
torch target as a `state_dict` file read back with `torch.load(weights_only=True)`.
Beside it, `PATH.json` records the source and target classes, the package versions, the
Keras backend, every level with its figures, the file's SHA-256 and a hash of the
weights themselves (by position, shape, dtype and bytes). `load` refuses a file whose
bytes are not the recorded ones (truncated, tampered with), a file for the other
framework, and a model it does not fit (another architecture, other shapes), each in one
line, and leaves the model as it was: never a partial load passed over in silence.

Stage: pair.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import os
import pathlib
import platform
import warnings

import numpy as np

from compare import files
from compare.errors import UserError
from compare.pair.result import say

SCHEMA = "keras-vs-pytorch/ported/v1"
SUFFIXES = {"keras": (".weights.h5",), "torch": (".pt", ".pth")}


class PortFileError(UserError):
    """A saved port that cannot be loaded as it was saved (exit 2, one line)."""


class PortRefused(UserError):
    """The proof failed: nothing is written (exit 1; `force=True` writes anyway)."""

    exit_code = 1


def record_path(path) -> pathlib.Path:
    path = pathlib.Path(path)
    return path.with_name(path.name + ".json")


def framework_of(model) -> str:
    """'keras' for a Keras layer (a torch module too on Keras's torch backend), else 'torch'."""
    import sys

    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Layer):
        return "keras"
    return "torch"


def class_of(model) -> str:
    kind = type(model)
    return f"{kind.__module__}.{kind.__qualname__}"


def weights_hash(model) -> str:
    """SHA-256 over the model's weights: torch's state_dict by name, Keras's variables by
    position (their paths change with layer numbering), each with shape and dtype."""
    digest = hashlib.sha256()
    if framework_of(model) == "torch":
        items = [(k, v.detach().cpu().numpy()) for k, v in sorted(model.state_dict().items())]
    else:
        items = [(str(i), np.asarray(w)) for i, w in enumerate(model.get_weights())]
    for name, array in items:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_hash(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_path(path, framework: str) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.name.endswith(SUFFIXES[framework]):
        raise UserError(
            f"--save {path}: a {'Keras' if framework == 'keras' else 'torch'} target is saved "
            f"as {' or '.join(SUFFIXES[framework])}: name it e.g. "
            f"{path.stem.split('.')[0]}{SUFFIXES[framework][0]}"
        )
    return path


def save(ported, path, force: bool = False) -> dict:
    """Write the target's weights and their record; refuses a failed proof unless forced."""
    framework = framework_of(ported.model)
    path = check_path(path, framework)
    if not ported.passed and not force:
        raise PortRefused(
            f"not saved: {ported.report.name} is not the same model "
            f"({ported.report.first_failure}); --force writes it anyway"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        if framework == "keras":
            ported.model.save_weights(str(temporary))
        else:
            import torch

            torch.save(ported.model.state_dict(), temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    record = {
        "schema": SCHEMA,
        "saved_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "passed": ported.passed,
        "forced": bool(force and not ported.passed),
        "direction": f"{framework_of(ported.source)} -> {framework}",
        "source": {
            "framework": framework_of(ported.source),
            "class": class_of(ported.source),
            "weights_sha256": weights_hash(ported.source),
        },
        "target": {
            "framework": framework,
            "class": class_of(ported.model),
            "file": path.name,
            "file_sha256": file_hash(path),
            "weights_sha256": weights_hash(ported.model),
        },
        "keras_backend": ported.report.entry["keras_backend"],
        "versions": versions(),
        "levels": ported.report.entry["checks"],
        "first_failure": ported.report.first_failure,
    }
    files.write_json_atomic(record_path(path), files.finite_or_none(record))
    return record


def load(model, path) -> dict:
    """Load saved weights into `model` after checking them against their record; returns
    the record. Any mismatch is a PortFileError and leaves `model` as it was."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise PortFileError(f"{path}: no such file: give the path --save wrote")
    beside = record_path(path)
    try:
        record = json.loads(beside.read_text())
    except FileNotFoundError:
        raise PortFileError(
            f"{path}: its record {beside.name} is not beside it, so its hash cannot be checked: "
            "copy the record with it, or save it again (python -m compare port --save)"
        ) from None
    except (OSError, ValueError) as error:
        raise PortFileError(f"{beside}: not a readable record ({say(error)}): save again") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise PortFileError(f"{beside}: not a record of keras-vs-pytorch's port: save again")
    target = record.get("target") or {}
    found = file_hash(path)
    if found != target.get("file_sha256"):
        raise PortFileError(
            f"{path} is not the file its record describes (sha256 {found[:12]}, recorded "
            f"{str(target.get('file_sha256'))[:12]}): it was truncated or changed after it was "
            "saved: save it again"
        )
    framework = framework_of(model)
    if target.get("framework") != framework:
        raise PortFileError(
            f"{path} holds {target.get('framework')} weights: load it into a "
            f"{target.get('framework')} model, not a {framework} one"
        )
    before = _snapshot(model)
    try:
        _load(model, path, framework)
        if weights_hash(model) != target.get("weights_sha256"):
            raise PortFileError(
                f"{path} does not fit {class_of(model)} (saved from {target.get('class')}): "
                "some weights did not load as saved; build the architecture the record names"
            )
    except BaseException:
        _restore(model, before)
        raise
    return record


def _load(model, path, framework) -> None:
    if framework == "torch":
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged file: one line
            raise PortFileError(f"{path} does not load as a state_dict: {say(error)}") from None
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise PortFileError(f"{path} holds no state_dict of tensors")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            reason = say(error).splitlines()
            detail = reason[1].strip() if len(reason) > 1 else reason[0]
            raise PortFileError(f"{path} does not fit {class_of(model)}: {detail}") from None
        return
    if not getattr(model, "built", True) or not model.weights:
        raise PortFileError(
            f"{class_of(model)} is not built: call it once on an example before loading {path}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a partial load is found by the hash, not by a warning
            model.load_weights(str(path))
    except Exception as error:  # noqa: BLE001 - another architecture: one line
        text = say(error).splitlines()[0]
        raise PortFileError(f"{path} does not fit {class_of(model)}: {text}") from None


def _snapshot(model):
    if framework_of(model) == "torch":
        return copy.deepcopy(model.state_dict())
    return [np.array(w) for w in model.get_weights()]


def _restore(model, before) -> None:
    if framework_of(model) == "torch":
        model.load_state_dict(before, strict=True)
    else:
        for variable, value in zip(model.weights, before, strict=True):
            variable.assign(value)


def versions() -> dict:
    import importlib.metadata

    found = {"python": platform.python_version()}
    for name in (
        "numpy",
        "torch",
        "keras",
        "tensorflow",
        "tensorflow-cpu",
        "jax",
        "keras-vs-pytorch",
    ):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
