"""Message templates: rendering ops' ``templates/NAME.j2`` in a bounded sandbox."""

from .render import PART_LIMITS, Rendered, Renderer, TemplateError

__all__ = ["PART_LIMITS", "Rendered", "Renderer", "TemplateError"]
