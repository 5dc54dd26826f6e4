"""Whistle benchmarks: ``python bench/run.py`` (``make bench``); see bench/RESULTS.md."""
