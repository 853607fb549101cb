"""Stage 1, spec: what a study is, before anything runs.

`schema` (the dataclasses and the names every stage shares), `identity` (frameworks,
Keras backends, modes, devices and the one spelling of an implementation), `parse`
(user input and result files into specs), `validate`, `catalog` (the built-in models
and studies), `published` (the tutorials' figures) and `studies` (study files,
profiles, `--models`). It imports no other stage.
"""
