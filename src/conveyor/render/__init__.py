"""Pure renderers of standard files, each paired with the argv of its validator."""
