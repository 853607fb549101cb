"""The parity levels that check each side's own built model against the spec, not
against the other side: its initial weights and its dropout.

The other levels transplant torch's weights into Keras and switch dropout off, so
neither Keras's own initialisers nor either side's dropout would ever be compared;
here each side builds its model exactly as a study run does (`build_model`, seeded by
`compare.parity.suite.configure`) and is tested against the distribution and the rate
the spec names. Thresholds come from `compare.spec.schema.ParitySpec`.

Stage: parity.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from compare.pair.result import Check
from compare.parity.levels import K, T, tensor_names
from compare.spec.schema import ExperimentSpec, ParitySpec


def init_distribution(kind: str, kernel_shape: tuple[int, ...]):
    """(scipy distribution, bound or None) the spec's initialiser `kind` draws a tensor of
    a layer whose canonical kernel is `kernel_shape` from; None for "zeros".

    Canonical kernels are (in, out) or (kh, kw, in, out): fan_in is everything but the
    last axis, fan_out the last axis times the receptive field (torch's and Keras's
    definitions agree on that).
    """
    fan_in = math.prod(kernel_shape[:-1])
    fan_out = kernel_shape[-1] * math.prod(kernel_shape[:-2])
    if kind == "uniform_fan_in":
        bound = 1.0 / math.sqrt(fan_in)
    elif kind == "glorot_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
    elif kind == "standard_normal":
        return stats.norm(0.0, 1.0), None
    elif kind == "zeros":
        return None, 0.0
    else:
        raise ValueError(f"unknown initializer {kind!r}")
    return stats.uniform(-bound, 2 * bound), bound


def fits_initializer(values: np.ndarray, kind: str, kernel_shape, parity: ParitySpec) -> dict:
    """One tensor against its distribution: bounds, KS, mean and variance z-scores."""
    values = np.asarray(values, dtype=np.float64).ravel()
    distribution, bound = init_distribution(kind, kernel_shape)
    if distribution is None:  # zeros: exactly
        nonzero = int(np.count_nonzero(values))
        return {"init": kind, "size": values.size, "nonzero": nonzero, "ok": nonzero == 0}
    n = values.size
    mean, var = distribution.mean(), distribution.var()
    # Var of the sample variance: (mu4 - sigma^4) / n, mu4 from the distribution's kurtosis.
    mu4 = (distribution.stats(moments="k") + 3.0) * var**2
    z_mean = (values.mean() - mean) / math.sqrt(var / n)
    z_var = (values.var() - var) / math.sqrt((mu4 - var**2) / n)
    ks_p = float(stats.kstest(values, distribution.cdf).pvalue)
    # float32 rounding may put a value a hair past a uniform bound.
    within = bound is None or float(np.max(np.abs(values))) <= bound * (1 + 1e-6)
    ok = (
        within
        and ks_p >= parity.init_p_min
        and abs(z_mean) <= parity.init_z_max
        and abs(z_var) <= parity.init_z_max
    )
    return {
        "init": kind,
        "size": n,
        "bound": bound,
        "max_abs": float(np.max(np.abs(values))),
        "within_bound": within,
        "ks_p": ks_p,
        "z_mean": float(z_mean),
        "z_variance": float(z_var),
        "ok": bool(ok),
    }


def check_init(experiment: ExperimentSpec, parity: ParitySpec) -> Check:
    """Each side's own freshly built weights, tensor by tensor, against the spec's
    initialisers (`kernel_init`, `bias_init`). Fails naming the first tensor off."""
    model_spec = experiment.model
    names = tensor_names(model_spec)
    sides, passed, first = {}, True, None
    for impl in (T, K):
        weights = impl.get_weights(impl.build_model(model_spec))
        tensors = []
        for index, values in enumerate(weights):
            kernel_shape = weights[index - index % 2].shape
            kind = model_spec.kernel_init if index % 2 == 0 else model_spec.bias_init
            tested = {
                "tensor": names[index],
                **fits_initializer(values, kind, kernel_shape, parity),
            }
            tensors.append(tested)
            if not tested["ok"] and first is None:
                first = f"{impl.FRAMEWORK}: {names[index]} is not {kind}"
            passed = passed and tested["ok"]
        sides[impl.FRAMEWORK] = tensors
    tested = [t for side in sides.values() for t in side]
    worst_p = min(t.get("ks_p", 1.0) for t in tested)
    # How far any value lies past its bound (0: none does), absolute and relative.
    past = [(max(0.0, t["max_abs"] - t["bound"]), t["bound"]) for t in tested if t.get("bound")]
    past_abs = max((p for p, _ in past), default=0.0)
    past_rel = max((p / bound for p, bound in past), default=0.0)
    return Check(
        "init",
        passed,
        past_abs,
        past_rel,
        {"ks_p_min": parity.init_p_min, "z_max": parity.init_z_max, "bounds": "exact"},
        {"first_failure": first, "worst_ks_p": worst_p, "tensors": sides},
    )


def expected_dropout_positions(model_spec) -> list[int]:
    """After how many weighted layers the spec puts a dropout layer: after each hidden
    dense layer's activation (the convolutions come first)."""
    if model_spec.dropout_rate <= 0 or model_spec.logits_from != "dense":
        return []
    convolutions = len(model_spec.conv_filters) if model_spec.architecture == "cnn" else 0
    return [convolutions + i for i in range(1, len(model_spec.hidden_sizes) + 1)]


def dropout_layer_verdict(probe: dict, rate: float, parity: ParitySpec) -> dict:
    """One dropout layer: drop share among non-zero inputs, survivors' scale, identity
    in inference."""
    x = np.asarray(probe["input"], dtype=np.float64).ravel()
    trained = np.asarray(probe["training"], dtype=np.float64).ravel()
    inference = np.asarray(probe["inference"], dtype=np.float64).ravel()
    live = x != 0
    dropped = int(np.count_nonzero(trained[live] == 0))
    trials = int(np.count_nonzero(live))
    p_rate = float(stats.binomtest(dropped, trials, rate).pvalue) if trials else 0.0
    kept = live & (trained != 0)
    scales = trained[kept] / x[kept]
    expected_scale = 1.0 / (1.0 - rate)
    scale_error = (
        float(np.max(np.abs(scales / expected_scale - 1.0))) if scales.size else float("inf")
    )
    identity = bool(np.array_equal(inference, x))
    return {
        "after_weighted_layers": probe["after_weighted_layers"],
        "dropped_share": dropped / trials if trials else None,
        "units": trials,
        "rate_p": p_rate,
        "survivor_scale_max_rel_error": scale_error,
        "inference_is_identity": identity,
        "ok": p_rate >= parity.dropout_p_min
        and scale_error <= parity.dropout_scale_rtol
        and identity,
    }


def check_dropout(
    torch_model, keras_model, experiment: ExperimentSpec, x: np.ndarray, parity: ParitySpec
) -> Check:
    """Dropout in each side's built model, as the spec names it: in the same positions
    (after the same weighted layers, seeing the same input: the Keras model holds
    torch's weights), dropping the spec's rate, scaling survivors by 1 / (1 - rate),
    and the identity in inference mode."""
    rate = experiment.model.dropout_rate
    expected = expected_dropout_positions(experiment.model)
    probes = {
        T.FRAMEWORK: T.dropout_probe(torch_model, x),
        K.FRAMEWORK: K.dropout_probe(keras_model, x),
    }
    positions = {f: [p["after_weighted_layers"] for p in ps] for f, ps in probes.items()}
    passed = all(found == expected for found in positions.values())
    first = None if passed else f"dropout after weighted layers {positions}, spec: {expected}"
    layers = {}
    for framework, found in probes.items():
        layers[framework] = [dropout_layer_verdict(probe, rate, parity) for probe in found]
        for layer in layers[framework]:
            if not layer["ok"] and first is None:
                first = (
                    f"{framework}: the dropout after weighted layer "
                    f"{layer['after_weighted_layers']} drops {layer['dropped_share']:.4f} "
                    f"(spec {rate}), survivors' scale off by "
                    f"{layer['survivor_scale_max_rel_error']:.2e}, inference identity "
                    f"{layer['inference_is_identity']}"
                )
            passed = passed and layer["ok"]
    # Same position means the same input on both sides (same weights, same x).
    input_gap = 0.0
    if passed:
        for a, b in zip(probes[T.FRAMEWORK], probes[K.FRAMEWORK], strict=True):
            gap = float(np.max(np.abs(a["input"] - b["input"])))
            input_gap = max(input_gap, gap)
            bound = parity.forward_atol + parity.forward_rtol * float(np.max(np.abs(a["input"])))
            if gap > bound:
                passed = False
                first = first or (
                    f"the inputs of the dropout after weighted layer "
                    f"{a['after_weighted_layers']} differ by {gap:.2e} (bound {bound:.2e})"
                )
    scale_errors = [
        layer["survivor_scale_max_rel_error"] for found in layers.values() for layer in found
    ]
    return Check(
        "dropout",
        passed,
        input_gap,
        max(scale_errors, default=0.0),
        {"rate_p_min": parity.dropout_p_min, "scale_rtol": parity.dropout_scale_rtol},
        {"first_failure": first, "rate": rate, "expected_positions": expected, "layers": layers},
    )
