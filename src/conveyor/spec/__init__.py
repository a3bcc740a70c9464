"""Loading and validating the files teams already have into `conveyor.model`.

`load_stack(path)` reads a `compose.yaml`; every problem is a SpecError rendered as
`file:line: field: message`.
"""

from conveyor.spec.compose import load_stack

__all__ = ["load_stack"]
