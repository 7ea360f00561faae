"""Venue wire protocols: pure parsers and builders of each venue's messages (no asyncio, no
I/O), plus per-venue session state where that state is protocol state (request ids, symbol
maps). Feeds do the I/O and hand frames here; imports only the core modules.
"""
