"""Tests of nbtools/_notebook/: the magics and the panel in a real IPython shell and in real kernels."""
