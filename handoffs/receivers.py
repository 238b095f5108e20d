"""Receivers of conversations' signals for handoffs (filled in by issue 8)."""
