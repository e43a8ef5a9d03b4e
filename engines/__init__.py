"""Speech-to-text engines behind one interface, plus model manifests and the registry.

Nothing here imports an engine library at module level: every container image must be able
to import this package, whichever engine it ships.
"""
