"""Git sources of ADD and of build contexts: BuildKit's ``dfgitutil.ParseGitRef``, kept in
``solver.llb.giturl`` (the solver's named contexts read git URLs too)."""

from __future__ import annotations

from solver.llb.giturl import GitRef, GitRefError, parse_git_ref, ssh_keyscan

__all__ = ["GitRef", "GitRefError", "parse_git_ref", "ssh_keyscan"]
