"""Readers and writers of hash lists and reports, one module per format."""
