"""Engine deployments: one Serve deployment per served model, chosen by manifest engine."""
