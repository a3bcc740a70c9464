"""Helpers shared by Conveyor's tests and benchmarks (load generation on loopback)."""
