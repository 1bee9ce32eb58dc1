"""What a dependency-graph picture shows, independent of how it is drawn.

A ``GraphView`` is the drawable summary of a search space: a few hundred boxes instead of the
thousands of ATen nodes, each box knowing which groups it belongs to and how to look. The DOT
writer, the fallback SVG layout and the HTML explorer all read this one model, so the picture
and the explorer can never disagree about what a group is.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

FROZEN = "#c8c8c8"  # groups that cannot be pruned
NEUTRAL = "#ffffff"  # ops whose parameters belong to no group (or have none)
JOINT = "#ffe08a"
INPUT = "#9ecbff"


def group_colour(group_id: int) -> str:
    """A pastel colour per group id, the same in every picture and run.

    Hues step by the golden ratio so that neighbouring ids (usually neighbouring layers) get
    clearly different colours however many groups there are.
    """
    hue = (group_id * 0.6180339887) % 1.0
    lightness = 0.78 if group_id % 2 == 0 else 0.70  # alternate to separate near-equal hues
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, 0.65)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


@dataclass
class ViewNode:
    """One box: an op that owns parameters, a joint, a model input or output."""

    id: str  # "n12": the id of the element in every SVG, so the explorer's script can find it
    kind: str  # "op", "joint", "input" or "output"
    title: str  # module path (or input name)
    lines: list[str]  # further label lines: op, shape, MAC share, groups
    colours: list[str]  # fill; several colours are drawn as stripes
    frozen: bool = False  # every group it produces is unprunable: drawn grey and hatched
    tooltip: str = ""
    groups: list[int] = field(default_factory=list)  # groups it belongs to (produces their channels)
    # groups whose removal changes it too: it reads their channels (erasing: it dies with them)
    affected: list[int] = field(default_factory=list)
    search: str = ""  # extra text the explorer's search matches (tensor names, op)


@dataclass
class ViewGroup:
    """One group (a node group, or an erasable segment) with the facts the explorer lists."""

    id: int
    label: str  # short name used in labels and search: "g3" (node group), "s3" (segment)
    colour: str
    prunable: bool
    title: str
    facts: list[tuple[str, str]]
    tensors: list[str]


@dataclass
class GraphView:
    title: str
    headline: list[str]  # one-line totals under the title
    nodes: list[ViewNode]
    edges: list[tuple[str, str]]
    groups: list[ViewGroup]
    legend: list[tuple[str, str]]  # (colour, text) rows: what the colours mean
