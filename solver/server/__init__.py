"""The resident build server: a per-user process on a unix socket that keeps a warm engine.

Light on purpose: `paths`, `protocol` and `client` import only the standard library's
built-in modules, so that a thin `llbook build` client starts fast; `daemon` is the server
loop, given its request handler by the front end that starts it (`solver.cli.serve`).
"""
