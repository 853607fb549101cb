"""Stage 4, bench: `make bench` (`bench`): the headline MLP in every mode, repeated,
against the machine's GEMM bound and its own timing noise (`roofline`)."""
