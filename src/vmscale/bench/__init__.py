"""Support for the benchmarks in benchmarks/: run a real group under a scripted load and measure.

Benchmarks measure; tests assert behaviour. Nothing here asserts a speed.
"""
