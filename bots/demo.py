"""The demo inbox's bot: business information and a knowledge base (filled in by issue 8)."""
