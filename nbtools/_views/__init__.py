"""All text, HTML and SVG output: untrusted text escaped and clipped in ``escaping``, the look in ``style``, the
words for outcomes in ``labels``, and one module per thing rendered (``report`` for one endpoint's batch and its
figures, ``grid`` for several side by side, ``timeline`` for both, ``comparison``, ``sweep_chart``,
``cost_estimate``, ``run_table``, ``live_view``, ``panel_status``).

Every result type renders through ``rich.Shown`` (its ``_view()``); views take engine state and small protocols,
never the types users get back."""
