"""The pair engine's levels, in the order they run: structure and weights
(`structure`), forward per layer (`forward`), gradients and optimizer (`training`),
lockstep (`lockstep`). Each takes a `compare.pair.session.Session` and returns a
`compare.pair.result.Check`.

Stage: pair.
"""

LEVELS = ("structure", "weights", "forward", "gradients", "optimizer", "lockstep")
