"""Thin Starlette adapters over the OAuth core: the only code that knows HTTP."""
