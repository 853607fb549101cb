"""keras-vs-pytorch: train the same models in PyTorch and Keras 3 and report the difference.

Stages, one subpackage each, imports flowing one way: `spec` <- `data` <- `run` <-
`parity` / `report` / `bench` <- `cli`. Under all of them: `errors`, `files`, `network`.

This package holds everything that is framework-neutral: the spec, the shared data
split, the measurement definition, the runner, the result files and the report.
Framework code lives in `pytorch_impl/` and `keras_impl/`, which mirror each other.
"""

__version__ = "0.1.0"
