"""Plain JSON with the official client: the one place that bridges its generated models.

The operator and its tools work on the API's JSON (dicts), as the pure core
expects; ``raw`` is how calls of the generated client get there. Request bodies
are plain dicts too: the client serialises them as they are, and ``untyped``
tells the type checker so where a signature names a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a method of the generated client and decode the JSON answer, not a model."""
    response = call(*args, _preload_content=False, **kwargs)
    return json.loads(response.data)


def untyped(body: Any) -> Any:
    """A JSON body where the generated client's signature names a model: it accepts both."""
    return body
