"""The source a build starts from: what SOURCE names, checked whole, its input files hashed, and the
checkpoint the export reads (a GGUF converted once)."""
