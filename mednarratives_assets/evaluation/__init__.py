"""Pipeline output scored against ground truth, and the corpus runner and report every benchmark uses."""
