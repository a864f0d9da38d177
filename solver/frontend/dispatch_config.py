"""Instructions that change the image config (and WORKDIR, which also makes a directory).

Each follows its ``dispatch*`` function in BuildKit's ``convert.go``: config change plus
an ``empty_layer`` history entry, ``# buildkit``-less.
"""

from __future__ import annotations

import signal

from solver.frontend.dispatch_run import process_cmd_env, uppercase_cmd, with_shell
from solver.frontend.dispatch_state import ArgValue, BuildState, StageState
from solver.frontend.gofmt import go_list, go_quote_list
from solver.frontend.image_config import Healthcheck
from solver.frontend.instructions import (ArgInstruction, CmdInstruction, EntrypointInstruction, EnvInstruction,
                                          ExposeInstruction, HealthcheckInstruction, LabelInstruction,
                                          MaintainerInstruction, OnbuildInstruction, ShellInstruction,
                                          StopSignalInstruction, UserInstruction, VolumeInstruction,
                                          WorkdirInstruction)
from solver.frontend.paths import docker_workdir
from solver.llb.fileop import mkdir

NON_ENV_ARGS = frozenset({"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"})


def dispatch_env(build: BuildState, stage: StageState, ins: EnvInstruction) -> None:
    # Every word expands against the env before the instruction (BuildKit expands the
    # whole command before dispatchEnv adds any of its pairs).
    pairs = [(stage.expand(pair.key, ins, build.lexer), stage.expand(pair.value, ins, build.lexer))
             for pair in ins.pairs]
    parts = ["ENV"]
    for key, value in pairs:
        parts.append(f"{key}={value}")
        stage.add_env(key, value)
        stage.image.config.set_env(key, value)
    stage.history(build, " ".join(parts), layer=False)


def dispatch_arg(build: BuildState, stage: StageState, ins: ArgInstruction) -> None:
    commits = []
    build_args = build.options.build_args
    # Every default expands against the env before the instruction, as docker build does
    # (dockerd 20.10's BuildKit expands the whole ARG command first; BuildKit 47a52a17,
    # 2024, moved to one-by-one expansion, which this project does not follow).
    before = dict(stage.env) if len(ins.args) > 1 else stage.env  # one arg: nothing changes before it
    for arg in ins.args:
        value = arg.value
        if value is None and arg.key not in build_args and arg.key in build.global_args:
            value = build.global_args[arg.key]
        if arg.key in build_args:
            value = build_args[arg.key]
        elif arg.value is not None:
            value = stage.expand(arg.value, ins, build.lexer, before)
        if value is not None and arg.key not in NON_ENV_ARGS:
            stage.add_env(arg.key, value)
        stage.build_args.append(ArgValue(arg.key, value))
        commits.append(arg.key if value is None else f"{arg.key}={value}")
    stage.history(build, "ARG " + " ".join(commits), layer=False)


def dispatch_label(build: BuildState, stage: StageState, ins: LabelInstruction) -> None:
    parts = ["LABEL"]
    for pair in ins.pairs:
        key = stage.expand(pair.key, ins, build.lexer)
        value = stage.expand(pair.value, ins, build.lexer)
        stage.image.config.put("labels", key, value)
        parts.append(f"{key}={value}")
    stage.history(build, " ".join(parts), layer=False)


def dispatch_maintainer(build: BuildState, stage: StageState, ins: MaintainerInstruction) -> None:
    stage.image.author = ins.maintainer
    stage.history(build, f"MAINTAINER {ins.maintainer}", layer=False)


def dispatch_user(build: BuildState, stage: StageState, ins: UserInstruction) -> None:
    user = stage.expand(ins.user, ins, build.lexer)
    stage.set_user(user)
    stage.image.config.user = user
    stage.history(build, f"USER {user}", layer=False)


def dispatch_workdir(build: BuildState, stage: StageState, ins: WorkdirInstruction) -> list[str]:
    path = stage.expand(ins.path, ins, build.lexer)
    try:
        workdir = docker_workdir(stage.image.config.working_dir, path)
    except ValueError as err:
        raise ins.error(f"normalizing workdir: {err}") from None
    stage.image.config.working_dir = workdir
    stage.set_cwd(workdir)
    names: list[str] = []
    layer = workdir != "/"  # v0.8 compares the path as written: WORKDIR // makes a layer
    if layer:
        name = stage.prefix(uppercase_cmd(process_cmd_env(build.lexer, ins.code, stage.env)))
        action = mkdir(workdir, 0o755, make_parents=True, owner=stage.image.config.user or None,
                       created=build.timestamp if build.epoch is not None else None)
        stage.state = stage.state.file(action, custom_name=name)
        names.append(name)
    stage.history(build, "WORKDIR " + workdir, layer=layer)
    return names


def dispatch_cmd(build: BuildState, stage: StageState, ins: CmdInstruction) -> None:
    args = list(ins.cmd.args)
    if ins.cmd.prepend_shell:
        args = with_shell(stage, args)
    stage.image.config.cmd = args
    stage.image.config.args_escaped = True
    stage.cmd_set = True
    stage.history(build, "CMD " + go_quote_list(args), layer=False)


def dispatch_entrypoint(build: BuildState, stage: StageState, ins: EntrypointInstruction) -> None:
    args = list(ins.cmd.args)
    if ins.cmd.prepend_shell:
        args = with_shell(stage, args)
    stage.image.config.entrypoint = args
    if not stage.cmd_set:
        stage.image.config.cmd = None
    stage.history(build, "ENTRYPOINT " + go_quote_list(args), layer=False)


def dispatch_healthcheck(build: BuildState, stage: StageState, ins: HealthcheckInstruction) -> None:
    health = Healthcheck(list(ins.test), ins.interval, ins.timeout, ins.start_period, ins.start_interval,
                         ins.retries)
    stage.image.config.healthcheck = health
    stage.history(build, "HEALTHCHECK " + health.go_string(), layer=False)


def _parse_ports(raw: str) -> list[str]:
    """One EXPOSE word → ``port/proto`` entries (``parsePort``)."""
    parts = raw.split(":")
    container = parts[-1] if len(parts) <= 3 else ""
    port, _, proto = container.partition("/")
    if not port:
        raise ValueError(f'invalid port: "{raw}": no port specified')
    if proto.lower() not in ("", "tcp", "udp", "sctp"):
        raise ValueError(f'invalid port: "{raw}": invalid proto: {proto}')
    proto = (proto or "tcp").lower()
    start_text, dash, end_text = port.partition("-")
    start = _port_number(start_text, port)
    end = start if not dash or start_text == end_text else _port_number(end_text, port)
    if end < start:
        raise ValueError(f"invalid containerPort: {port}")
    return [f"{number}/{proto}" for number in range(start, end + 1)]


def _port_number(text: str, port: str) -> int:
    if not text.isascii() or not text.lstrip("+-").isdigit():
        raise ValueError(f"invalid containerPort: {port}")
    number = int(text)
    if number < 0 or number > 65535:
        raise ValueError(f"invalid containerPort: {port}")
    return number


def dispatch_expose(build: BuildState, stage: StageState, ins: ExposeInstruction) -> None:
    ports: list[str] = []
    for word in ins.ports:
        ports.extend(stage.expand_words(word, ins, build.lexer))
    specs: list[str] = []
    for port in ports:
        try:
            specs.extend(_parse_ports(port))
        except ValueError as err:
            raise ins.error(str(err)) from None
    for spec in specs:
        stage.image.config.put("exposed_ports", spec, {})
    stage.history(build, "EXPOSE " + go_list(specs), layer=False)


def dispatch_volume(build: BuildState, stage: StageState, ins: VolumeInstruction) -> None:
    volumes = [stage.expand(v, ins, build.lexer) for v in ins.volumes]
    for volume in volumes:
        if not volume:
            raise ins.error("VOLUME specified can not be an empty string")
        stage.image.config.put("volumes", volume, {})
    stage.history(build, "VOLUME " + go_list(volumes), layer=False)


def _valid_signal(sig: str) -> bool:
    if sig.isdigit():
        return 0 < int(sig) < 256
    name = sig.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    return hasattr(signal.Signals, name) or name.startswith("SIGRTM")


def dispatch_stopsignal(build: BuildState, stage: StageState, ins: StopSignalInstruction) -> None:
    sig = stage.expand(ins.signal, ins, build.lexer)
    if not _valid_signal(sig):
        raise ins.error(f'Invalid signal: {sig}')
    stage.image.config.stop_signal = sig
    stage.history(build, f"STOPSIGNAL {sig}", layer=False)


def dispatch_shell(build: BuildState, stage: StageState, ins: ShellInstruction) -> None:
    stage.image.config.shell = list(ins.shell)
    stage.history(build, "SHELL " + go_list(ins.shell), layer=False)


def dispatch_onbuild(build: BuildState, stage: StageState, ins: OnbuildInstruction) -> None:
    stage.image.config.on_build.append(ins.expression)
    stage.onbuild_expressions.append(ins.expression)
