"""Benchmarks behind `keras-memory bench`: quality evidence, recall reach, training speed."""
