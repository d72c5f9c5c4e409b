"""Torch-free runtime: FFNRuntime, inference backends, frame sources, budget scheduler, ffn-run."""
