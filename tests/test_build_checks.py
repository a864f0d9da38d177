"""Build checks: one trigger and one clean Dockerfile per rule (cases, messages and lines from
BuildKit's dockerfile_check_test.go), the check options, and the reports."""

from __future__ import annotations

import pytest

from solver.errors import DockerfileError
from solver.frontend.checks import (ALL_RULES, RULES, CheckInputs, CheckOptionError, check_dockerfile,
                                    format_build_warnings, format_check_report, parse_check_options,
                                    source_excerpt, warnings_metadata)
from solver.llb.platform import Platform


def found(text: str, **inputs) -> list[tuple[str, str, int]]:
    result = check_dockerfile(text, CheckInputs(**inputs))
    assert result.error is None, result.error
    return [(w.rule, w.message, w.start_line) for w in result.warnings]


# (rule, triggering Dockerfile, expected (message, line) list, clean Dockerfile, inputs)
CASES = [
    ("StageNameCasing", "\n# warning: stage name should be lowercase\n#\nFROM scratch AS BadStageName\n",
     [("Stage name 'BadStageName' should be lowercase", 4)], "\nFROM scratch AS base3\n", {}),
    ("FromAsCasing", "\nFROM scratch as base2\n",
     [("'as' and 'FROM' keywords' casing do not match", 2)], "\nFROM scratch AS base3\n", {}),
    ("FromAsCasing", "\n# warning\n#\nfrom scratch AS base\n\nfrom scratch as base2\n",
     [("'AS' and 'from' keywords' casing do not match", 4)], "\nfrom scratch as base\n", {}),
    ("NoEmptyContinuation", "\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\n"
     "COPY Dockerfile \\\n.\n", [("Empty continuation line", 6)],
     "\nFROM scratch\nCOPY Dockerfile \\\n# a comment is fine\n.\n", {}),
    ("ConsistentInstructionCasing", "\n# warning\n#\nFrom scratch as base\nFROM scratch AS base2\n",
     [("Command 'From' should match the case of the command majority (uppercase)", 4)],
     "\nFROM scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\n", {}),
    ("ConsistentInstructionCasing", "\nFROM scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\ncopy Dockerfile /baz\n",
     [("Command 'FROM' should match the case of the command majority (lowercase)", 2)],
     "\nfrom scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\n", {}),
    ("DuplicateStageName", "\nFROM scratch AS b\nFROM scratch AS b\n",
     [('Duplicate stage name "b", stage names should be unique', 3)], "\nFROM scratch AS b1\nFROM scratch AS b2\n",
     {}),
    ("ReservedStageName", "\nFROM scratch AS scratch\nFROM scratch AS context\n",
     [('Stage name should not use the same name as reserved stage "scratch"', 2),
      ('Stage name should not use the same name as reserved stage "context"', 3)],
     "\nFROM scratch\nFROM scratch AS a\n", {}),
    ("JSONArgsRecommended", "\nFROM scratch\nCMD mycommand\n",
     [("JSON arguments recommended for CMD to prevent unintended behavior related to OS signals", 3)],
     "\nFROM scratch AS base\nSHELL [\"/usr/bin/customshell\"]\n\nFROM base\nCMD mycommand\n", {}),
    ("JSONArgsRecommended", "\nFROM scratch\nENTRYPOINT mycommand\n",
     [("JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals", 3)],
     "\nFROM scratch\nENTRYPOINT [\"mycommand\"]\n", {}),
    ("MaintainerDeprecated", "\nFROM scratch\nMAINTAINER me@example.org\n",
     [("Maintainer instruction is deprecated in favor of using label", 3)],
     '\nFROM scratch\nLABEL org.opencontainers.image.authors="me@example.org"\n', {}),
    ("UndefinedArgInFrom", "\nFROM --platform=$BULIDPLATFORM scratch\nCOPY Dockerfile .\n",
     [("FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)", 2)],
     "\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n", {}),
    ("UndefinedArgInFrom", "\nARG tag=latest\nFROM busybox:${tag}${version} AS b\nCOPY Dockerfile .\n",
     [("FROM argument 'version' is not declared", 3)],
     "\nARG DEBUG\nFROM scra${DEBUG:-tch}\nCOPY Dockerfile .\n", {}),
    ("WorkdirRelativePath", "\nFROM scratch\nWORKDIR app/\n",
     [('Relative workdir "app/" can have unexpected results if the base image changes', 3)],
     "\nFROM scratch AS a\nWORKDIR /app\n\nFROM a AS b\nWORKDIR subdir/\n", {}),
    ("UndefinedVar", "\nFROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n",
     [("Usage of undefined variable '$foo'", 3)], "\nFROM alpine AS base\nARG foo=Dockerfile\n\nFROM base\nCOPY $foo .\n",
     {}),
    ("UndefinedVar", "\nFROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\n"
     "COPY $DIR_ASSET .\n", [("Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)", 6)],
     "\nFROM alpine\nRUN echo $PATH\n", {}),
    ("UndefinedVar", "\nFROM alpine\nENV PATH=$PAHT:/tmp/bin\n",
     [("Usage of undefined variable '$PAHT' (did you mean $PATH?)", 3)],
     "\nFROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n", {}),
    ("MultipleInstructionsDisallowed",
     '\nFROM scratch\nENTRYPOINT ["/myapp"]\nCMD ["/myapp"]\nHEALTHCHECK CMD ["/myapp"]\nCOPY <<EOF /a.txt\n'
     'Hello, World!\nEOF\nENTRYPOINT ["/myotherapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n',
     [("Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be "
       "used", 3),
      ("Multiple CMD instructions should not be used in the same stage because only the last one will be used", 4),
      ("Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be "
       "used", 5)],
     '\nFROM scratch AS a\nENTRYPOINT ["/myapp"]\nCMD ["/myapp"]\nHEALTHCHECK CMD ["/myapp"]\n\nFROM a AS b\n'
     'ENTRYPOINT ["/myotherapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n', {}),
    ("LegacyKeyValueFormat", "\nFROM scratch\nENV testkey value\nLABEL key value\n",
     [('"ENV key=value" should be used instead of legacy "ENV key value" format', 3),
      ('"LABEL key=value" should be used instead of legacy "LABEL key value" format', 4)],
     "\nFROM scratch\nENV testkey=value\nLABEL key=value\n", {}),
    ("RedundantTargetPlatform", "\nFROM --platform=${TARGETPLATFORM} scratch\n",
     [("Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior",
       2)], "\n# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n", {}),
    ("SecretsUsedInArgOrEnv",
     "# check=skip=InvalidDefinitionDescription\n\nFROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\n"
     "ENV password=bar secret=baz\nARG super_duper_secret_token=foo auth=bar\nENV apikey=bar sunflower=foo\n"
     "ENV git_key=\nENV PUBLIC_KEY=\nARG public_token\nARG SECRET_PASSPHRASE_FILE\n"
     "ENV password_file=bar secret_File=baz\nARG AUTH_MODULE_VERSION\n"
     "# check=skip=SecretsUsedInArgOrEnv // allow secret in environment\nENV password=bar\n"
     "# check=skip=SecretsUsedInArgOrEnv // allow secret in arg\nARG password\n"
     "# check=skip=all // is local to only this instruction\nENV alternate_password=bar\n",
     [('Do not use ARG or ENV instructions for sensitive data (ARG "SECRET_PASSPHRASE")', 4),
      ('Do not use ARG or ENV instructions for sensitive data (ENV "SUPER_Secret")', 5),
      ('Do not use ARG or ENV instructions for sensitive data (ENV "password")', 6),
      ('Do not use ARG or ENV instructions for sensitive data (ENV "secret")', 6),
      ('Do not use ARG or ENV instructions for sensitive data (ARG "auth")', 7),
      ('Do not use ARG or ENV instructions for sensitive data (ARG "super_duper_secret_token")', 7),
      ('Do not use ARG or ENV instructions for sensitive data (ENV "apikey")', 8),
      ('Do not use ARG or ENV instructions for sensitive data (ENV "git_key")', 9)],
     "\nFROM scratch\nENV PUBLIC_KEY=\nARG AUTH_MODULE_VERSION\n", {}),
    ("InvalidDefaultArgInFrom", "\nARG VERSION\nFROM busybox:$VERSION\n",
     [("Default value for ARG busybox:$VERSION results in empty or invalid base image name", 3)],
     '\nARG VERSION="latest"\nFROM busybox:${VERSION}\n', {"build_args": {"VERSION": "latest"}}),
    ("InvalidDefaultArgInFrom", "\nARG IMAGE\nFROM $IMAGE\n",
     [("Default value for ARG $IMAGE results in empty or invalid base image name", 3)],
     "\nARG BUSYBOX_VARIANT\nFROM busybox:stable${BUSYBOX_VARIANT}\n",
     {"build_args": {"IMAGE": "busybox:latest", "BUSYBOX_VARIANT": "-musl"}}),
    ("FromPlatformFlagConstDisallowed", "\nFROM --platform=linux/amd64 scratch\n",
     [('FROM --platform flag should not use constant value "linux/amd64"', 2)],
     "\nFROM --platform=linux/amd64 scratch AS my_amd64_stage\n", {}),
    ("CopyIgnoredFile", "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\n",
     [('Attempting to Copy file "Dockerfile" that is excluded by .dockerignore', 3),
      ('Attempting to Add file "Dockerfile" that is excluded by .dockerignore', 4)],
     "\nFROM scratch AS base\nCOPY . /foobar\n\nFROM base\nCOPY --from=base /foobar/Dockerfile /Dockerfile\n",
     {"ignore_patterns": ["Dockerfile"]}),
    ("CopyIgnoredFile", "\nFROM scratch\nCOPY . .\n",
     [('Attempting to Copy file "." that is excluded by .dockerignore', 3)],
     "\nFROM scratch\nCOPY . .\n", {"ignore_patterns": ["*"], "clean": {"ignore_patterns": [".*"]}}),
    ("ExposeProtoCasing", "\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n",
     [("Defined protocol '80/TcP' in EXPOSE instruction should be lowercase", 3),
      ("Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase", 3)],
     "\nFROM scratch\nEXPOSE 80/tcp 8080/udp 9000\n", {}),
    ("ExposeInvalidFormat", "\nFROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n",
     [("EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'", 3),
      ("EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'", 3),
      ("EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'", 3)],
     "\nFROM scratch\nEXPOSE 8000 8001/udp\n", {}),
    ("InvalidDefinitionDescription",
     "# check=experimental=InvalidDefinitionDescription\n# bar this is the bar\nARG foo=bar\n"
     "# BasE this is the BasE image\nFROM scratch AS base\n# definitely a bad comment\nARG version=latest\n"
     "# definitely a bad comment\nARG foo=baz bar=qux baz=quux\n",
     [("Comment for ARG should follow the format: `# foo <description>`", 3),
      ("Comment for FROM should follow the format: `# base <description>`", 5),
      ("Comment for ARG should follow the format: `# version <description>`", 7),
      ("Comment for ARG should follow the format: `# <arg_key> <description>`", 9)],
     "# check=experimental=InvalidDefinitionDescription\n# foo this is the foo\nARG foo=bar\n\n"
     "# base this is the base image\nFROM scratch AS base\n#\nARG bit=bat\n", {}),
]


@pytest.mark.parametrize("rule,text,expected,clean,inputs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_triggers_and_clean_file_does_not(rule, text, expected, clean, inputs):
    inputs = dict(inputs)
    clean_inputs = inputs.pop("clean", inputs)
    warnings = found(text, **inputs)
    assert sorted((m, line) for r, m, line in warnings if r == rule) == sorted(expected)
    assert [w for w in found(clean, **clean_inputs) if w[0] == rule] == []


def test_every_rule_in_the_registry_has_a_case():
    covered = {case[0] for case in CASES} | {"InvalidBaseImagePlatform"}  # that one: test_base_image_platform
    assert covered == set(RULES)
    assert all(rule.url.startswith("https://docs.docker.com/go/dockerfile/rule/") for rule in ALL_RULES
               if rule.name != "InvalidBaseImagePlatform")


def test_experimental_rule_is_off_unless_asked_for():
    text = "# foo is not the name\nARG bar=1\nFROM scratch\n"
    assert found(text) == []
    assert found("# check=experimental=all\n" + text)[0][0] == "InvalidDefinitionDescription"


def test_warnings_before_a_parse_error_are_kept():
    result = check_dockerfile("\nFROM scratch AS BadStageName\nMAINTAINER me@example.org\nBADCMD\n")
    assert [(w.rule, w.start_line) for w in result.warnings] == [("StageNameCasing", 2),
                                                                 ("MaintainerDeprecated", 3)]
    assert isinstance(result.error, DockerfileError) and result.error.line == 4
    assert "unknown instruction" in result.error.message


def test_build_checks_only_reachable_stages_but_check_mode_all():
    text = "\nFROM scratch AS first\nCOPY $foo .\n\nFROM scratch AS second\nCOPY $bar .\n"
    assert [(m, line) for _, m, line in found(text, all_stages=False)] == [("Usage of undefined variable '$bar'", 6)]
    assert [line for _, _, line in found(text)] == [3, 6]
    assert [line for _, _, line in found(text, all_stages=False, target="first")] == [3]


# -- options ----------------------------------------------------------------------------

CASING = "FROM scratch as base\ncopy Dockerfile .\n"


@pytest.mark.parametrize("directive,rules_found,error", [
    ("#check=skip=all\n", [], False),
    ("#check=skip=all;error=true\n", [], False),
    ("#check=skip=ConsistentInstructionCasing,FromAsCasing\n", [], False),
    ("#check=skip=ConsistentInstructionCasing,FromAsCasing;error=true\n", [], False),
    ("#check=skip=ConsistentInstructionCasing\n", ["FromAsCasing"], False),
    ("#check=skip=ConsistentInstructionCasing;error=true\n", ["FromAsCasing"], True),
    ("", ["FromAsCasing", "ConsistentInstructionCasing"], False),
])
def test_check_directive_skip_and_error(directive, rules_found, error):
    result = check_dockerfile(directive + CASING)
    assert [w.rule for w in result.warnings] == rules_found
    if error:
        assert result.error is not None and result.error.message == "lint violation found for rules: FromAsCasing"
        assert result.error.line == 2
    else:
        assert result.error is None


def test_build_arg_replaces_the_directive():
    inputs = CheckInputs(build_args={"BUILDKIT_DOCKERFILE_CHECK": "skip=ConsistentInstructionCasing;error=true"})
    result = check_dockerfile("#check=skip=all\n" + CASING, inputs)
    assert [w.rule for w in result.warnings] == ["FromAsCasing"]
    assert result.error is not None and "lint violation found for rules: FromAsCasing" in str(result.error)
    quiet = check_dockerfile("#check=error=true\n" + CASING,
                             CheckInputs(build_args={"BUILDKIT_DOCKERFILE_CHECK": "skip=all"}))
    assert quiet.warnings == [] and quiet.error is None


def test_check_comment_applies_to_one_instruction_only():
    text = "FROM scratch\n# check=skip=JSONArgsRecommended\nCMD one\nENTRYPOINT two\n"
    assert [(r, line) for r, _, line in found(text)] == [("JSONArgsRecommended", 4)]


def test_bad_check_values_are_dockerfile_errors():
    with pytest.raises(CheckOptionError, match='invalid check option "bogus"'):
        parse_check_options("bogus=1")
    with pytest.raises(CheckOptionError, match='invalid check option "skip"'):
        parse_check_options("skip")
    with pytest.raises(CheckOptionError, match='strconv.ParseBool: parsing "maybe"'):
        parse_check_options("error=maybe")
    result = check_dockerfile("# check=error=maybe\nFROM scratch\n")
    assert result.error is not None and result.error.message.startswith("failed to parse check options:")
    assert parse_check_options(" skip = A, B ; error = 1").skip == frozenset({"A", "B"})


# -- base images through a real registry --------------------------------------------------

def test_base_image_env_and_platform(image_source, registry_with_busybox):
    def resolver(ref, platform):
        resolved = image_source.resolve(ref, platform)
        return resolved.pinned, dict(resolved.config)

    image = f"{registry_with_busybox.host}/library/busybox:docker"
    native = Platform.host()
    other = "linux/arm64" if native.architecture != "arm64" else "linux/amd64"
    text = f"\nFROM {image}\nENV foo=bar\n"
    result = check_dockerfile(text, CheckInputs(resolver=resolver, platform=other))
    assert [(w.rule, w.start_line) for w in result.warnings] == [("InvalidBaseImagePlatform", 2)]
    assert result.warnings[0].message == (f'Base image {image} was pulled with platform '
                                          f'"linux/{native.architecture}", expected "{other}" for current build')
    assert check_dockerfile(text, CheckInputs(resolver=resolver)).warnings == []


# -- reports ----------------------------------------------------------------------------

def test_source_excerpt_marks_the_line_as_buildkit_prints_it():
    text = "\nFROM scratch as base\ncopy Dockerfile .\n"
    assert source_excerpt(text, "Dockerfile", 2, 2) == (
        "Dockerfile:2\n--------------------\n"
        "   1 |     \n   2 | >>> FROM scratch as base\n   3 |     copy Dockerfile .\n   4 |     \n"
        "--------------------\n")


def test_reports_count_and_metadata():
    result = check_dockerfile("FROM scratch\nCMD a\n")
    report = format_check_report(result)
    assert report.startswith("Check complete, 1 warning has been found!\n\nWARNING: JSONArgsRecommended - "
                             "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/\n")
    assert "   2 | >>> CMD a" in report
    assert format_check_report(check_dockerfile("FROM scratch\n")) == "Check complete, no warnings found.\n"
    text = format_build_warnings(result.warnings, result.source)
    assert text.startswith("\n 1 warning found:\n - JSONArgsRecommended: JSON arguments recommended for CMD")
    assert "(line 2)" in text and ">>> CMD a" in text
    meta = warnings_metadata(result.warnings, result.source)
    assert meta[0]["level"] == 1 and meta[0]["range"] == [{"start": {"line": 2}, "end": {"line": 2}}]


@pytest.mark.parametrize("text", [
    "\nFROM alpine\nRUN <<'EOT'\nenv\nEOT\n",
    "\nARG base=scratch\nFROM $base\nCOPY Dockerfile .\n",
    "\nARG BUILDPLATFORM=linux/amd64\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
    "\nARG DEBUG\nFROM scratch${DEBUG}\nCOPY Dockerfile .\n",
    '\nARG DEBUG=""\nFROM scratch${DEBUG-@bogus}\nCOPY Dockerfile .\n',
    "\nFROM --platform=linux/amd64 scratch AS linux\n",
    "\nFROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER me@example.org\n",
    "\nFROM scratch\n# check=skip=LegacyKeyValueFormat\nENV testkey value\n# check=skip=LegacyKeyValueFormat\nLABEL key value\n",
])
def test_buildkit_cases_without_warnings(text):
    assert found(text) == []


def test_buildkit_cases_with_warnings():
    text = "\nARG MY_OS=linux\nARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox\nCOPY Dockerfile .\n\t"
    assert found(text) == [("UndefinedArgInFrom", "FROM argument 'MYARCH' is not declared (did you mean MY_ARCH?)",
                            4)]
    assert found('\nARG SFX="box:"\nFROM busy${SFX}\n', build_args={"SFX": "box:latest"}) == [
        ("InvalidDefaultArgInFrom", "Default value for ARG busy${SFX} results in empty or invalid base image name",
         3)]
    assert found("\nFROM --platform=$TARGETPLATFORM scratch\n") == [
        ("RedundantTargetPlatform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this "
         "is the default behavior", 2)]
    mounts = "\nFROM scratch\nRUN --mount=type=cache,target=$CACHE_DIR echo $NOT_CHECKED\nVOLUME $VOL\nUSER $U\n"
    assert [(m, line) for _, m, line in found(mounts)] == [("Usage of undefined variable '$CACHE_DIR'", 3),
                                                           ("Usage of undefined variable '$VOL'", 4),
                                                           ("Usage of undefined variable '$U'", 5)]


def test_unreachable_stage_is_checked_by_check_only():
    text = "\nFROM scratch AS a\n\nFROM a AS b\nENV testkey value\nLABEL key value\n\nFROM a AS c\n"
    assert [line for _, _, line in found(text)] == [5, 6]
    assert found(text, all_stages=False) == []
