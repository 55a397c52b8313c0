"""Assignment and exposure events: building, deduplication and batched delivery."""
