"""The model folder a build publishes: its fingerprint, its manifest, the checks it must pass, and
its appearing whole or not at all."""
