"""The pair engine's tolerances and step counts: what "the same" means for a user's pair.

Every bound the levels apply comes from here, so a user can loosen or tighten one
(`check_pair(..., spec=PairSpec(forward_rtol=1e-4))`) and the report shows which held.
Float32 rounding is measured, not assumed: each level also bounds a gap by a multiple of
torch's own float32 error there (against a float64 copy of the same model, or a run from
a one-ulp nudged start), so deep or ill-conditioned models are held to what their own
arithmetic allows and shallow ones to the fixed tolerances below.

Stage: pair (framework-free; the study's `compare.parity` builds one from its ParitySpec).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PairSpec:
    """How `compare.pair.check_pair` decides that two models are the same."""

    # Forward, per layer and for the outputs: |delta| <= forward_rtol * max|torch| +
    # forward_atol, or forward_floor_factor x torch's own float32 error there (against a
    # float64 copy of the model). Two float32 computations of one function differ by up
    # to about twice either's error; DenseNet-121's 120th layer measured 8.9e-5 against a
    # fixed bound of 6.5e-5, while a BatchNorm epsilon of 1.001e-5 against 1e-5 moves the
    # first BatchNorm by 6e-4.
    forward_rtol: float = 1e-5
    forward_atol: float = 1e-5
    forward_floor_factor: float = 10.0
    # Gradients per tensor: |delta| <= gradient_rtol * max|g| + gradient_atol, or
    # gradient_floor_factor x torch's own float32 gradient error (against the float64
    # copy's). MobileNetV2's stem kernel: torch's own float32 gradient is 1.8e-2 from its
    # float64 one, so no fixed rtol of 1e-5 fits it.
    gradient_rtol: float = 1e-5
    gradient_atol: float = 1e-7
    gradient_floor_factor: float = 10.0
    loss_atol: float = 1e-5
    # Optimizer: both optimizers fed torch's gradients of one batch for this many steps.
    optimizer_steps: int = 5
    optimizer_rtol: float = 1e-5
    optimizer_atol: float = 1e-5
    # Lockstep: both train `lockstep_steps` steps of `lockstep_batch_size` examples (0:
    # every example given, one batch) with their own loss and optimizer; each gap is
    # bounded by lockstep_rtol * max|w| + lockstep_atol or lockstep_floor_factor x torch's
    # own drift (from a one-ulp nudged start, and from a float64 copy). 30 is the study's
    # calibration (compare.spec.schema.ParitySpec.lockstep_floor_factor).
    lockstep_steps: int = 10
    lockstep_batch_size: int = 0
    lockstep_rtol: float = 1e-5
    lockstep_atol: float = 1e-5
    lockstep_floor_factor: float = 30.0
    # A Keras activation known only as a callable (a lambda, a layer) is the torch one where
    # the two agree on activation_probe_points values over [-activation_probe_span, +span]
    # to activation_probe_rtol x max(1, |value|): float32 rounding, far below GELU's tanh
    # approximation (4.7e-4 from exact at x = 2.7).
    activation_probe_span: float = 8.0
    activation_probe_points: int = 3201
    activation_probe_rtol: float = 1e-5
    # A failure message lists at most this many differing settings ("and N more"); the
    # report holds them all.
    message_settings: int = 10

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"PairSpec.{field.name} must be a number >= 0, got {value!r}")
