"""What the customer is told around a handoff (filled in by issue 8)."""
