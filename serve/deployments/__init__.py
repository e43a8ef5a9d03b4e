"""Engine deployments: one Serve deployment per served model, the one its engine's spec names
(`engine.EngineDeployment` unless the engine brings a subclass, as Whisper does)."""
