"""Process plumbing shared by the worker, the CLI and the dev stack: Temporal connections."""
