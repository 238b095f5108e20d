"""The reply pipeline's receivers (filled in by issue 8)."""
