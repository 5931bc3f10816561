"""GGUF files: the architectures and tokenizers the build takes, a file checked, imported as a
checkpoint, and its own grid carried into the exported IR."""
