"""Differential conformance suite: the same Dockerfiles built by docker build and llbook."""
