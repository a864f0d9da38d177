"""The build-check rules: names, descriptions, documentation URLs and messages (BuildKit's ``linter/ruleset.go``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

_DOCS = "https://docs.docker.com/go/dockerfile/rule/"


@dataclass(frozen=True)
class Rule:
    """One check: what it is called, what it says, and how a finding is worded."""

    name: str
    description: str
    slug: str  # the page under docs.docker.com/go/dockerfile/rule/; "" when the rule has none
    message: Callable[..., str]
    experimental: bool = False
    deprecated: bool = False

    @property
    def url(self) -> str:
        return f"{_DOCS}{self.slug}/" if self.slug else ""


def _did_you_mean(text: str, suggestion: str, prefix: str = "") -> str:
    return f"{text} (did you mean {prefix}{suggestion}?)" if suggestion else text


STAGE_NAME_CASING = Rule(
    "StageNameCasing", "Stage names should be lowercase", "stage-name-casing",
    lambda name: f"Stage name '{name}' should be lowercase")
FROM_AS_CASING = Rule(
    "FromAsCasing", "The 'as' keyword should match the case of the 'from' keyword", "from-as-casing",
    lambda from_, as_: f"'{as_}' and '{from_}' keywords' casing do not match")
NO_EMPTY_CONTINUATION = Rule(
    "NoEmptyContinuation", "Empty continuation lines will become errors in a future release",
    "no-empty-continuation", lambda: "Empty continuation line")
CONSISTENT_INSTRUCTION_CASING = Rule(
    "ConsistentInstructionCasing",
    "All commands within the Dockerfile should use the same casing (either upper or lower)",
    "consistent-instruction-casing",
    lambda command, casing: f"Command '{command}' should match the case of the command majority ({casing})")
DUPLICATE_STAGE_NAME = Rule(
    "DuplicateStageName", "Stage names should be unique", "duplicate-stage-name",
    lambda name: f'Duplicate stage name "{name}", stage names should be unique')
RESERVED_STAGE_NAME = Rule(
    "ReservedStageName", "Reserved words should not be used as stage names", "reserved-stage-name",
    lambda name: f'Stage name should not use the same name as reserved stage "{name}"')
JSON_ARGS_RECOMMENDED = Rule(
    "JSONArgsRecommended",
    "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    "json-args-recommended",
    lambda instruction: f"JSON arguments recommended for {instruction} to prevent unintended behavior related "
                        "to OS signals")
MAINTAINER_DEPRECATED = Rule(
    "MaintainerDeprecated",
    "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    "maintainer-deprecated", lambda: "Maintainer instruction is deprecated in favor of using label")
UNDEFINED_ARG_IN_FROM = Rule(
    "UndefinedArgInFrom", "FROM command must use declared ARGs", "undefined-arg-in-from",
    lambda arg, suggestion: _did_you_mean(f"FROM argument '{arg}' is not declared", suggestion))
WORKDIR_RELATIVE_PATH = Rule(
    "WorkdirRelativePath",
    "Relative workdir without an absolute workdir declared within the build can have unexpected results if the "
    "base image changes", "workdir-relative-path",
    lambda workdir: f'Relative workdir "{workdir}" can have unexpected results if the base image changes')
UNDEFINED_VAR = Rule(
    "UndefinedVar", "Variables should be defined before their use", "undefined-var",
    lambda name, suggestion: _did_you_mean(f"Usage of undefined variable '${name}'", suggestion, "$"))
MULTIPLE_INSTRUCTIONS_DISALLOWED = Rule(
    "MultipleInstructionsDisallowed",
    "Multiple instructions of the same type should not be used in the same stage",
    "multiple-instructions-disallowed",
    lambda instruction: f"Multiple {instruction} instructions should not be used in the same stage because only "
                        "the last one will be used")
LEGACY_KEY_VALUE_FORMAT = Rule(
    "LegacyKeyValueFormat", "Legacy key/value format with whitespace separator should not be used",
    "legacy-key-value-format",
    lambda command: f'"{command} key=value" should be used instead of legacy "{command} key value" format')
INVALID_BASE_IMAGE_PLATFORM = Rule(
    "InvalidBaseImagePlatform", "Base image platform does not match expected target platform", "",
    lambda image, expected, actual: f'Base image {image} was pulled with platform "{actual}", expected '
                                    f'"{expected}" for current build')
REDUNDANT_TARGET_PLATFORM = Rule(
    "RedundantTargetPlatform",
    "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    "redundant-target-platform",
    lambda value: f"Setting platform to predefined {value} in FROM is redundant as this is the default behavior")
SECRETS_USED_IN_ARG_OR_ENV = Rule(
    "SecretsUsedInArgOrEnv", "Sensitive data should not be used in the ARG or ENV commands",
    "secrets-used-in-arg-or-env",
    lambda instruction, key: f'Do not use ARG or ENV instructions for sensitive data ({instruction} "{key}")')
INVALID_DEFAULT_ARG_IN_FROM = Rule(
    "InvalidDefaultArgInFrom", "Default value for global ARG results in an empty or invalid base image name",
    "invalid-default-arg-in-from",
    lambda base: f"Default value for ARG {base} results in empty or invalid base image name")
FROM_PLATFORM_FLAG_CONST_DISALLOWED = Rule(
    "FromPlatformFlagConstDisallowed", "FROM --platform flag should not use a constant value",
    "from-platform-flag-const-disallowed",
    lambda platform: f'FROM --platform flag should not use constant value "{platform}"')
COPY_IGNORED_FILE = Rule(
    "CopyIgnoredFile", "Attempting to Copy file that is excluded by .dockerignore", "copy-ignored-file",
    lambda command, path: f'Attempting to {command} file "{path}" that is excluded by .dockerignore')
INVALID_DEFINITION_DESCRIPTION = Rule(
    "InvalidDefinitionDescription",
    "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is "
    "not intended to be a description comment, add an empty line or comment between the instruction and the "
    "comment.", "invalid-definition-description",
    lambda instruction, name: f"Comment for {instruction} should follow the format: `# {name} <description>`",
    experimental=True)
EXPOSE_PROTO_CASING = Rule(
    "ExposeProtoCasing", "Protocol in EXPOSE instruction should be lowercase", "expose-proto-casing",
    lambda port: f"Defined protocol '{port}' in EXPOSE instruction should be lowercase")
EXPOSE_INVALID_FORMAT = Rule(
    "ExposeInvalidFormat",
    "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a "
    "future release", "expose-invalid-format",
    lambda port: f"EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'")

ALL_RULES: tuple[Rule, ...] = (
    STAGE_NAME_CASING, FROM_AS_CASING, NO_EMPTY_CONTINUATION, CONSISTENT_INSTRUCTION_CASING, DUPLICATE_STAGE_NAME,
    RESERVED_STAGE_NAME, JSON_ARGS_RECOMMENDED, MAINTAINER_DEPRECATED, UNDEFINED_ARG_IN_FROM, WORKDIR_RELATIVE_PATH,
    UNDEFINED_VAR, MULTIPLE_INSTRUCTIONS_DISALLOWED, LEGACY_KEY_VALUE_FORMAT, INVALID_BASE_IMAGE_PLATFORM,
    REDUNDANT_TARGET_PLATFORM, SECRETS_USED_IN_ARG_OR_ENV, INVALID_DEFAULT_ARG_IN_FROM,
    FROM_PLATFORM_FLAG_CONST_DISALLOWED, COPY_IGNORED_FILE, INVALID_DEFINITION_DESCRIPTION, EXPOSE_PROTO_CASING,
    EXPOSE_INVALID_FORMAT,
)
RULES: dict[str, Rule] = {rule.name: rule for rule in ALL_RULES}
