"""Benchmark harness: somtorch against other SOM libraries (see BENCHMARKS.md and ``python benchmarks/run.py -h``)."""
