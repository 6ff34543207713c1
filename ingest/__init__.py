"""Event ingestion: Segment-format messages in, stored once, delivered to journeys."""
