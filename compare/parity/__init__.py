"""Stage 4, parity: the proof that both implementations are the same model. `suite`
runs the levels (`levels`: no training; `training`: optimizer and lockstep) per model
and Keras backend; `defaults` is the table of framework defaults that differ. Importing
`levels` imports both frameworks."""
