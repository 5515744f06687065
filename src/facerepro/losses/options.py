"""Fields of the options dataclass each loss keeps next to its formula.

A method's ``loss_options`` in the config are that dataclass's fields: the config schema
(:func:`facerepro.config.load_schema`) is generated from their types, defaults and the JSON-schema
keywords given here, and the loss's constructor takes its defaults from the same dataclass.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def option(default: Any, description: str = "", *, paper_value: bool = True,
           **schema: Any) -> Any:
    """A dataclass field: ``default`` and the JSON-schema keywords a config value must meet
    (``minimum=0``, ``enum=[...]``). ``paper_value=False`` marks a default of ours where the
    paper gives none: the report then does not call another value a deviation."""
    if description:
        schema["description"] = description
    if not paper_value:
        schema["x-no-paper-value"] = True
    return dataclasses.field(default=default, metadata=schema)
