"""How PyTorch realises each execution mode (mirrors keras_impl.execution).

The modes and what they mean are `compare.spec.identity`; this module owns only how
native PyTorch is driven in each: the optimizer kernels and whether the train step is
compiled. They change the execution, never the updates.
"""

from __future__ import annotations


def options(mode: str) -> dict:
    """{"fused_optimizer": bool, "compile": bool} for a run in `mode`.

    Tuned and compiled: one fused optimizer kernel per step for all parameters (same
    update, fewer launches). Compiled: the model and loss (so their backward too)
    through torch.compile; the optimizer step stays the fused eager kernel.
    """
    if mode == "idiomatic":
        return {"fused_optimizer": False, "compile": False}
    return {"fused_optimizer": True, "compile": mode == "compiled"}
