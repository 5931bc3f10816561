"""The export step: the plan (profile and flags) for a source, optimum-cli's export, one export
measured by the fidelity gate, and --profile auto's search for the smallest that passes."""
