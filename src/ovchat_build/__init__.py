"""The model build: a source model (HF folder, GGUF or the embedded SmolLM2) to an ovchat model folder.

resolve the source -> import a GGUF (its own grid) -> export -> verify -> fidelity gate -> manifest
-> publish. Runs in the build env (torch, optimum, nncf); the runtime (`ovchat`) never imports it.
"""
