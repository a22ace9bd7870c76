"""The thin IPython and ipywidgets layer: ``%%llm_batch`` and the line magics (magics.py, their flags generated from
the option declarations in magic_flags.py), the live display (display.py), the panel (panel.py)."""
