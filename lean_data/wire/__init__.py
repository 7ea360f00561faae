"""Pure parsers of venue messages (no asyncio)."""
