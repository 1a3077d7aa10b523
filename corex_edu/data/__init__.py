"""Data sets: download, verification, loading and status reports."""
