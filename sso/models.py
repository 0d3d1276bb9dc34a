"""Populated by its own issue; the app exists so the layout is fixed from day one."""
