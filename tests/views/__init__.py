"""Tests of nbtools/views/: the text, HTML and SVG a result shows."""
