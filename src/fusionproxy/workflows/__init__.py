"""Workflows that chain the package's stages: the whole pipeline (`pipeline`) and the paper's ablations
(`ablation`).

Each step is a library call (`steps`); running one out of process is the caller's business (the CLI hands in a
runner), so nothing here imports `fusionproxy.cli`. Layers: cli -> workflows -> stage packages -> shared
utilities, never upwards (tests/test_imports.py).
"""
