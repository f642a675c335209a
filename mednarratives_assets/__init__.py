"""MedNarratives: medical lecture videos to a grounded image-text dataset, as Dagster assets.

`stages/` holds the pipeline logic as plain functions, one module per asset; `defs/` wires
them into Dagster; `definitions.py` is the code location that workspace.yaml loads.
"""
