"""Generators of synthetic material: slide frames, pointer sprites and motion, cursor training crops,
medical image sources. No pipeline stage imports it except the two that train models."""
