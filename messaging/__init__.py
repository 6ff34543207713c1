"""Message templates: rendering ops' ``templates/NAME.j2`` in a bounded sandbox, for a
channel (``render``) or, block by block, for a page (``blocks``)."""

from .blocks import render_blocks
from .render import Rendered, Renderer, TemplateError

__all__ = ["Rendered", "Renderer", "TemplateError", "render_blocks"]
