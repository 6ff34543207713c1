"""Event ingestion: Segment-format messages in, stored once, delivered to journeys."""

import channels  # noqa: F401  registers the channels that redaction and the rules know
