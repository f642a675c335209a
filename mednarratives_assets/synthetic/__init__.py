"""Generators of synthetic material: slide frames, pointer sprites and motion, cursor training crops,
medical image sources, variable-frame-rate and long test lectures. No pipeline stage imports it
except the two that train models."""
