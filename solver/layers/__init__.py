"""Image layers as dive analyses them, for the CLI (``llbook layers``) and the notebook's
layers view: the layer list and file trees (``tree``, sortable by size), dive's efficiency
and wasted bytes (``efficiency``) and CI gates (``ci``), file previews (``preview``), the
difference between two images or results (``compare``) and tree exports (``export``).

The layers come from an image's blobs (``image``: registry, docker-archive, oci-layout) or
from a built result's snapshots (``snapshots``); both give a ``model.Layers``.
"""
