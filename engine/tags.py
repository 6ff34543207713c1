"""What a ``tag`` action does to the customer, in the interpreter.

The interpreter applies a tag action to the customer's state when it emits the action, so
rules after it, in the same journey or any other, see ``customer.tags`` at once and the
same on every replay; the ``tag_customer`` activity then writes the same change to
PostgreSQL (``store.tags``), where segments, the API and the CLI read it. Removals apply
before additions; a customer holds at most ``MAX_TAGS``: additions past it are dropped
from the action (so PostgreSQL stays the same as the state) and reported as a problem.
"""

from __future__ import annotations

from .actions import MAX_TAGS, TagCustomer
from .model import Customer


def apply_tags(customer: Customer, spec: TagCustomer) -> tuple[Customer, TagCustomer, str]:
    """The customer after ``spec``, the action as applied (without refused additions) and
    a problem sentence (empty when every tag fit)."""
    tags = set(customer.tags) - set(spec.remove)
    refused = []
    for tag in spec.add:
        if tag in tags or len(tags) < MAX_TAGS:
            tags.add(tag)
        else:
            refused.append(tag)
    problem = ""
    if refused:
        problem = (
            f"tag: a customer holds at most {MAX_TAGS} tags; not added: {', '.join(refused)} "
            "(remove tags that are no longer needed with tag: {remove: [...]})"
        )
        spec = spec.model_copy(update={"add": [t for t in spec.add if t not in refused]})
    return customer.model_copy(update={"tags": sorted(tags)}), spec, problem
