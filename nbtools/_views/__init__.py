"""All text, HTML and SVG output: untrusted text escaped and clipped in ``escaping``, the look in ``style``, the
words for outcomes in ``labels``, and one module per thing rendered (``report`` for a BatchResult and its Summary,
``timeline``, ``comparison``, ``sweep_chart``, ``cost_estimate``, ``job_table``, ``live_view``, ``panel_status``).

Result objects keep one-line ``_repr_html_`` / ``__repr__`` methods that call these functions."""
