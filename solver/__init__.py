"""llbook's build engine: LLB, the Dockerfile frontend, the embedded solver and exporters.

Nothing here imports Jupyter or kernel_ext; tests drive it as plain Python.
"""

from solver.errors import BuildError, DockerfileError, LLBookError

__all__ = ["BuildError", "DockerfileError", "LLBookError"]
