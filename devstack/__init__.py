"""``make run``: the whole system on embedded defaults (Temporal dev server, PostgreSQL,
the worker, the API and a mail catcher)."""

import channels  # noqa: F401  registers the channels the rules are validated against
