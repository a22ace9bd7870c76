"""Tests of nbtools/notebook/: the magics and the panel in a real IPython shell and in real kernels."""
