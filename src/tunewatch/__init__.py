"""tunewatch."""
