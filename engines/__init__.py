"""Speech-to-text engines behind one interface (`base.py`), the engine registry (`spec.py`:
what each engine declares, found through the `theo.engines` entry points), model manifests
(`manifest.py`) and the models directory (`registry.py`).

Nothing here imports an engine library at module level: every container image must be able
to import this package, whichever engine it ships.
"""
