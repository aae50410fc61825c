"""Small helpers every room may use; each one is defined here once."""
