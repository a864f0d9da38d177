"""BuildKit's Dockerfile build checks: rules, options, the checker and its reports."""

from solver.frontend.checks.checker import CheckInputs, CheckResult, check_dockerfile
from solver.frontend.checks.linter import CheckWarning
from solver.frontend.checks.options import CHECK_BUILD_ARG, CheckOptionError, CheckOptions, parse_check_options
from solver.frontend.checks.report import (format_build_warnings, format_check_report, source_excerpt,
                                           warnings_metadata)
from solver.frontend.checks.rules import ALL_RULES, RULES, Rule

__all__ = ["ALL_RULES", "CHECK_BUILD_ARG", "RULES", "CheckInputs", "CheckOptionError", "CheckOptions",
           "CheckResult", "CheckWarning", "Rule", "check_dockerfile", "format_build_warnings",
           "format_check_report", "parse_check_options", "source_excerpt", "warnings_metadata"]
