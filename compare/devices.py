"""Which device a run uses: one rule for both frameworks, given what each one sees.

`--device cpu` runs on the CPU. `--device auto` runs on the CPU too and says so in a
notice that the result records and the runner prints, because GPU runs need the
synchronisation and placement work of the GPU issue first. `--device gpu` is a user
error: when the framework sees no GPU, and (for now) when it does.
"""

from __future__ import annotations

from compare.errors import UserError

DEVICES = ("auto", "cpu", "gpu")


def resolve(requested: str, library: str, gpu_visible: bool, hint: str = "") -> tuple[str, str]:
    """(device, notice) for a run of `library`; notice is "" when there is nothing to say.

    `hint` says why the library sees no GPU, e.g. which package is installed.
    """
    if requested not in DEVICES:
        raise UserError(f"unknown device '{requested}' (choose one of: {', '.join(DEVICES)})")
    if requested == "gpu":
        if not gpu_visible:
            raise UserError(
                f"--device gpu: {library} sees no GPU{f' ({hint})' if hint else ''}; "
                "use --device cpu or auto"
            )
        raise UserError("--device gpu is not supported yet: use --device cpu or auto")
    if requested == "auto":
        if gpu_visible:
            return "cpu", (
                f"--device auto: {library} sees a GPU, but GPU runs are not supported yet, "
                "so this run uses the CPU"
            )
        return "cpu", f"--device auto: {library} sees no GPU, so this run uses the CPU"
    return "cpu", ""
