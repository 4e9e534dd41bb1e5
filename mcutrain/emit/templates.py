"""The Jinja environment of the templates in ``codegen/``."""

from __future__ import annotations

import jinja2

from mcutrain.core.resources import resource_dir
from mcutrain.emit.c_text import c_float


def template_env() -> jinja2.Environment:
    """The Jinja environment of every template in ``codegen/``: strict undefined, C-friendly whitespace."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("codegen")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["c_float"] = c_float
    return env
