"""Tests of nbtools/_views/: the text, HTML and SVG a result shows."""
