"""A module a recipe may name by mistake: it lists no FILTERS."""
