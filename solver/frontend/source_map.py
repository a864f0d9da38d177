"""Source map of a Definition: which Dockerfile lines produced which vertex.

BuildKit attaches one (``llb.SourceMap``, ``Definition.Source``) so that errors and
progress point at Dockerfile lines. Vertices are matched to instructions through the
``llb.customname`` each instruction gave its vertices.
"""

from __future__ import annotations

from typing import Iterable

from solver.frontend.dispatch_state import InstructionRecord
from solver.llb import pb

CUSTOM_NAME = "llb.customname"


def records_by_name(records: Iterable[InstructionRecord]) -> dict[str, InstructionRecord]:
    out: dict[str, InstructionRecord] = {}
    for record in records:
        for name in record.vertex_names:
            out.setdefault(name, record)
    return out


def attach_source_map(definition: pb.Definition, records: Iterable[InstructionRecord],
                      sources: dict[str, str]) -> pb.Definition:
    """Set ``definition.source`` from the records' lines; returns the same definition."""
    by_name = records_by_name(records)
    files: list[str] = []
    source = pb.Source()
    for digest, metadata in definition.metadata.items():
        record = by_name.get(metadata.description.get(CUSTOM_NAME, ""))
        if record is None:
            continue
        if record.filename not in files:
            files.append(record.filename)
        span = pb.Range(start=pb.Position(line=record.instruction.line),
                        end=pb.Position(line=record.instruction.end_line))
        location = pb.Location(source_index=files.index(record.filename), ranges=[span])
        source.locations.setdefault(digest, pb.Locations()).locations.append(location)
    source.infos = [pb.SourceInfo(filename=name, data=sources.get(name, "").encode("utf-8", "surrogateescape"),
                                  language="Dockerfile") for name in files]
    if source.locations:
        definition.source = source
    return definition
