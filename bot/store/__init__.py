"""All SQL of the service lives here, as keyword-only functions grouped by what they touch."""
