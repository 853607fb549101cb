"""A minimal reproduction of a failing pair: the first layer where the two part, alone.

`check_pair(..., repro=DIR)` (and `--repro DIR`) writes DIR/repro.py, DIR/repro.npz and
DIR/repro.json. The script imports numpy, torch and keras only (and, for a gradient on
Keras's JAX or TensorFlow backend, that backend), rebuilds just that layer on each side
from its settings (torch's constructor, Keras's config), loads its weights in each
framework's layout, runs it on the recorded input and prints the gap the check measured.

What is isolated:
- forward (and a structure or weights failure naming a layer): the layer's output. Fed
  torch's input on both sides when the layer itself computes otherwise; fed each side's
  own recorded input when its input already differed (the cause lies upstream, which
  the script says);
- gradients: the layer's weight gradients for one fixed output cotangent, torch's put
  in Keras's layout by an index map the engine derives from the layer's converter.
Lockstep and optimizer failures are not isolated to a layer: no repro is written for
them, and the report says so.

Stage: pair.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np

from compare import files
from compare.pair import repro_layers, trace
from compare.pair.repro_layers import LITERALS, NotWritable
from compare.pair.result import bound_of, gap, say
from compare.pair.units import LayerPair, has_weights

SCHEMA = "keras-vs-pytorch/repro/v1"
SCRIPT = pathlib.Path(__file__).with_name("repro_script.py")


def write(session, checks, directory, name: str) -> dict:
    """Write the reproduction of the first failing level; returns what was written (or
    why nothing was)."""
    failed = next(c for c in checks if not c.passed)
    try:
        pair, mode = _target(session, failed)
        meta, arrays = _case(session, pair, mode)
    except NotWritable as error:
        return {"written": False, "reason": str(error)}
    except Exception as error:  # noqa: BLE001 - a repro that cannot be made is a note, not a crash
        return {"written": False, "reason": f"the layer could not be isolated: {say(error)}"}
    meta |= {"schema": SCHEMA, "pair": name, "level": failed.name}
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files.write_atomic(out / "repro.npz", lambda f: np.savez(f, **arrays), mode="wb")
    files.write_json_atomic(out / "repro.json", meta)
    shutil.copyfile(SCRIPT, out / "repro.py")
    return {
        "written": True,
        "script": str(out / "repro.py"),
        "layer": meta["layer"],
        "mode": mode,
        "gap": meta["gap"],
    }


def _target(session, failed):
    """(the pair to isolate, 'forward', 'gradients' or 'shapes')."""
    text = (failed.detail or {}).get("first_failure") or ""
    named = [p for p in session.pairing.pairs if p.label() in text]
    if failed.name == "gradients":
        weighted = [p for p in named if has_weights(p.torch_unit)]
        if weighted:
            return weighted[0], "gradients"
    if failed.name in ("optimizer", "lockstep"):
        raise NotWritable(
            f"the {failed.name} level fails on whole training steps, which no one layer "
            "reproduces (its report names the step and the parameter)"
        )
    found = session.parted or (named[0] if named else None)
    if found is not None:
        stacked = found.part and getattr(found.torch_module, "num_layers", 1) > 1
        # One layer of a stacked torch module has no recorded input of its own: the
        # whole module is rebuilt, and what the two hold and give is compared.
        return found, "shapes" if stacked else "forward"
    unfit = _unfit(session, text)
    if unfit is not None:
        return unfit, "shapes"
    raise NotWritable(
        f"the {failed.name} failure names no two layers to set side by side (a layer with no "
        "counterpart, or the model as a whole): its report says where"
    )


def _unfit(session, text: str):
    """The two layers a structure failure names as the nearest of a kind that does not
    fit ("torch up1 (ConvTranspose2d) has no Keras counterpart; the nearest ..., Keras
    up1 (Conv2DTranspose), does not fit"), as a pair of their own weights."""
    ours = [u for u in session.torch_units() if f"torch {u.label()}" in text]
    theirs = [u for u in session.keras_units() if f"Keras {u.label()}" in text]
    if not ours or not theirs:
        return None
    return LayerPair(ours[0], theirs[0], ours[0].converters[0], how="does not fit")


def _case(session, pair, mode):
    """(repro.json's content, repro.npz's arrays) for `pair`, its gap measured here."""
    import torch

    _, torch_calls = session.run_torch()
    _, keras_calls = session.run_keras()
    ct = (torch_calls.get(pair.torch_name) or [None])[0]
    ck = (keras_calls.get(pair.keras_name) or [None])[0]
    if ct is None or ck is None:
        raise NotWritable(f"{pair.label()} is not called in the forward pass")
    module, candidates, rename = repro_layers.torch_side(pair, whole=mode == "shapes")
    layer, config = repro_layers.keras_side(pair)
    arrays = {}
    torch_state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    arrays |= {f"torch_state/{k}": v for k, v in torch_state.items()}
    keras_weights = [np.asarray(w) for w in layer.get_weights()]
    arrays |= {f"keras_weight/{i}": w for i, w in enumerate(keras_weights)}
    torch_args, keras_args = list(ct.inputs), list(ck.inputs)
    same_input, own_reason = False, "unlike"
    if mode != "shapes" and len(torch_args) == 1 and len(keras_args) == 1:
        aligned = pair.converter.align_input(pair, torch_args[0], np.shape(keras_args[0]))
        if aligned is not None:
            keras_args, same_input = [np.ascontiguousarray(aligned)], True
    torch_kwargs = _kwargs(ct.kwargs, "torch", arrays)
    keras_kwargs = _kwargs(ck.kwargs, "keras", arrays)
    arrays |= {f"torch_input/{i}": a for i, a in enumerate(torch_args)}

    def run_torch(model, grad=False):
        model.eval()
        with torch.set_grad_enabled(grad):
            out = model(*_tensors(torch, torch_args), **_torch_kwargs(torch, torch_kwargs, arrays))
        return trace.tensors_in(out)[0]

    def run_keras(target):
        return trace.tensors_in(
            target(*keras_args, **repro_layers.keras_kwargs(keras_kwargs, arrays))
        )[0]

    torch_out = trace.to_numpy(run_torch(module))
    keras_out = trace.to_numpy(run_keras(layer))
    if gap(torch_out, ct.output) > 0:
        raise NotWritable(
            f"torch {pair.torch_unit.label()} does not rerun alike from its recorded input"
        )
    expression = repro_layers.rebuilt_torch(candidates, module, run_torch, torch_out)
    index = None if mode == "shapes" else _index(pair, torch_out.shape, keras_out.shape)
    if index is None and mode != "shapes":
        mode, same_input = "shapes", False
        keras_args = list(ck.inputs)
        keras_out = trace.to_numpy(run_keras(layer))
    spec = session.spec
    bound, layer_gap = None, None
    if mode != "shapes":
        ours = torch_out.reshape(-1)[index]
        bound = bound_of(ours, spec.forward_rtol, spec.forward_atol)
        layer_gap = gap(ours, keras_out)
        if same_input and layer_gap <= bound and gap(ct.output, ck.output) > 0:
            # The layer computes alike: its input differed (the cause is upstream). Feed
            # each side what it was fed, which reproduces the check's gap.
            keras_args, same_input, own_reason = list(ck.inputs), False, "differ"
            keras_out = trace.to_numpy(run_keras(layer))
            layer_gap = gap(ours, keras_out)
        arrays["output_index"] = index
    arrays |= {f"keras_input/{i}": a for i, a in enumerate(keras_args)}
    arrays |= {"torch_output": torch_out, "keras_output": keras_out}
    config = repro_layers.rebuildable(pair, layer, config, keras_out, arrays, keras_kwargs)
    meta = {
        "mode": mode,
        "layer": pair.label(),
        "keras_backend": _backend(),
        "same_input": same_input,
        "input_note": _INPUT_NOTES["shapes" if mode == "shapes" else same_input or own_reason],
        "torch": {
            "expression": expression,
            "inputs": len(torch_args),
            "kwargs": torch_kwargs,
            "state": sorted(torch_state),
        },
        "keras": {
            **config,
            "weights": len(keras_weights),
            "inputs": len(keras_args),
            "kwargs": keras_kwargs,
        },
        "settings": _settings(pair),
        "bound": bound,
        "versions": _versions(),
    }
    if mode == "gradients":
        from compare.pair import repro_gradients

        layer_gap = repro_gradients.add(
            pair, module, layer, run_torch, run_keras, keras_out, index, rename, meta, arrays
        )
    if mode == "shapes":
        meta["shapes"] = shapes_text(
            torch_out.shape, keras_out.shape, {k: v.shape for k, v in torch_state.items()},
            [w.shape for w in keras_weights],
        )  # fmt: skip
    meta["gap"] = None if layer_gap is None else float(layer_gap)
    return meta, arrays


_INPUT_NOTES = {
    True: "both sides get torch's input (in Keras's layout): the layer itself computes otherwise",
    "differ": "each side gets the input it had in the check: they already differ there, so "
    "the cause is upstream of this layer",
    "unlike": "each side gets the input it had in the check (the two inputs are not one "
    "tensor in two layouts: several inputs, or a layer before it that only one side has)",
    "shapes": "each side gets the input it had in the check, and keeps its own weights: the "
    "two layers do not hold or compute the same shapes",
}


def shapes_text(torch_output, keras_output, torch_weights: dict, keras_weights: list) -> str:
    """What the two layers hold and give, in the words the script prints."""
    ours = ", ".join(f"{k} {tuple(v)}" for k, v in sorted(torch_weights.items())) or "none"
    theirs = ", ".join(str(tuple(s)) for s in keras_weights) or "none"
    return (
        f"torch's output {tuple(torch_output)}, Keras's {tuple(keras_output)}; torch's "
        f"weights {ours}; Keras's {theirs}"
    )


def _settings(pair) -> list[dict]:
    try:
        found = pair.converter.settings(pair)
    except Exception:  # noqa: BLE001 - a pair that does not fit may not read alike
        return []
    return [
        {"name": s.name, "torch": str(s.torch), "keras": str(s.keras)} for s in found if s.differs
    ]


def _kwargs(kwargs: dict, side: str, arrays: dict) -> dict:
    """Literal keyword arguments for the JSON, arrays into the npz (named in the JSON)."""
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, np.ndarray):
            arrays[f"{side}_kwarg/{key}"] = value
            out[key] = {"array": f"{side}_kwarg/{key}"}
        elif isinstance(value, LITERALS):
            out[key] = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, LITERALS) for v in value):
            out[key] = {"tuple": list(value)}
        else:
            raise NotWritable(f"{side}'s call takes {key}={type(value).__name__}, not data")
    return out


def _tensors(torch, arrays):
    return [torch.as_tensor(np.ascontiguousarray(a)) for a in arrays]


def _torch_kwargs(torch, kwargs, arrays):
    return {
        k: tuple(v["tuple"])
        if isinstance(v, dict) and "tuple" in v
        else torch.as_tensor(arrays[v["array"]])
        if isinstance(v, dict)
        else v
        for k, v in kwargs.items()
    }


def _index(pair, torch_shape, keras_shape):
    """Where each Keras output element sits in torch's flattened output (None: the two
    do not line up): the converter's alignment, applied to positions."""
    positions = np.arange(int(np.prod(torch_shape)), dtype=np.float64).reshape(torch_shape)
    found = pair.converter.align(pair, positions, tuple(keras_shape))
    return None if found is None else np.ascontiguousarray(found).astype(np.int64)


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _versions() -> dict:
    import keras
    import torch

    return {"numpy": np.__version__, "torch": torch.__version__, "keras": keras.__version__}


def rerun(directory) -> str | None:
    """Run a written reproduction in a fresh process: None when it prints the gap the
    check measured (to 3 significant digits; for shapes, the same shapes), else why not."""
    import os
    import re
    import subprocess
    import sys

    out = pathlib.Path(directory)
    meta = json.loads((out / "repro.json").read_text())
    env = {**os.environ, "KERAS_BACKEND": meta["keras_backend"], "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(out / "repro.py")], capture_output=True, text=True, env=env, cwd=out
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the script exits {done.returncode}: {tail}"
    if meta["mode"] == "shapes":
        expected = f"shapes differ: {meta['shapes']}"
        return None if expected in done.stdout.splitlines() else f"it printed {done.stdout!r}"
    found = re.search(r"differ by (\S+) \(", done.stdout)
    if found is None:
        return f"it printed no gap: {done.stdout!r}"
    value, recorded = float(found.group(1)), meta["gap"]
    if not np.isclose(value, recorded, rtol=5e-4, atol=0.0):
        return f"it measures {value:.6e}, the check {recorded:.6e}"
    return None
