"""Smoke tests of the benchmark scripts (quick mode)."""
