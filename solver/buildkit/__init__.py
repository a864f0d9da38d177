"""The BuildKit backend: a gRPC client of a BuildKit daemon and the client-side session."""
