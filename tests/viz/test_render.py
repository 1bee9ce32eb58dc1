"""Dependency-graph pictures: DOT/SVG with groups coloured, and the self-contained HTML explorer."""

from __future__ import annotations

import html
import json
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import trainonce
from trainonce.errors import TrainonceError
from trainonce.groups.search_space import SearchSpace
from trainonce.viz.graph import search_space_view
from trainonce.viz.layout import layered_svg
from trainonce.viz.view import FROZEN, GraphView, ViewNode, group_colour
from zoo import build

HAS_DOT = shutil.which("dot") is not None
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def resnet() -> SearchSpace:
    model, x = build("resnet18_cifar")
    return trainonce.analyze(model, x, probe=False)


@pytest.fixture(scope="module")
def bert() -> SearchSpace:
    model, inputs = build("hf_bert")  # tiny random BertConfig, never downloads
    return trainonce.analyze(model, inputs, probe=False)


def no_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "dot" else real(name, *a, **k))


def page_json(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="view-data">(.*?)</script>', page, re.DOTALL)
    assert match, "the page embeds its data as JSON"
    return json.loads(match[1])


def box_of(space: SearchSpace, module: str) -> ViewNode:
    return next(n for n in search_space_view(space).nodes if n.title == module and n.kind == "op")


# -- the view model -----------------------------------------------------------------------------

def test_view_keeps_parameter_ops_and_joints_and_collapses_the_rest(resnet: SearchSpace) -> None:
    view = search_space_view(resnet)
    kinds = [n.kind for n in view.nodes]
    # 20 convs + 20 BNs + fc own parameters; 8 residual adds are joints; relu/pool/flatten collapse
    assert kinds.count("op") == 41 and kinds.count("joint") == 8
    assert kinds.count("input") == 1 and kinds.count("output") == 1
    assert len(view.nodes) < len(resnet.graph.nodes)
    ids = {n.id for n in view.nodes}
    assert all(a in ids and b in ids for a, b in view.edges)
    bn1 = box_of(resnet, "bn1")
    assert "relu_" in bn1.lines[0]  # the collapsed ReLU is named on the box that feeds it
    # the downsample shortcut and the block both reach the residual add of layer2.0
    add = next(n for n in view.nodes if n.kind == "joint" and n.title == "layer2.0")
    into_add = {a for a, b in view.edges if b == add.id}
    assert {box_of(resnet, "layer2.0.bn2").id, box_of(resnet, "layer2.0.downsample.1").id} == into_add
    # every group is drawn: each prunable group colours at least one box, with its own colour
    coloured = {g for n in view.nodes for g in n.groups}
    assert {g.id for g in resnet.node_groups} <= coloured
    conv1 = box_of(resnet, "layer1.0.conv1")
    group = next(g for g in resnet.node_groups if g.id == conv1.groups[0])
    assert conv1.colours == [group_colour(group.id)] and f"g{group.id}: 64 channels" in conv1.lines
    assert any("MACs" in line for line in conv1.lines)
    fc = box_of(resnet, "fc")
    assert fc.frozen and fc.colours == [FROZEN] and "reaches a model output" in " ".join(fc.lines)


def test_palette_is_deterministic_and_distinct() -> None:
    colours = [group_colour(i) for i in range(200)]
    assert colours == [group_colour(i) for i in range(200)]
    assert len(set(colours)) == 200 and FROZEN not in colours
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)


def test_bert_heads_are_striped_with_their_frozen_head_dim(bert: SearchSpace) -> None:
    view = search_space_view(bert)
    query = box_of(bert, "bert.encoder.layer.0.attention.self.query")
    heads = next(g for g in bert.node_groups if g.id in query.groups and g.prunable)
    assert heads.size == 4 and len(query.colours) == 2 and FROZEN in query.colours and not query.frozen
    assert f"g{heads.id}: 4 heads" in query.lines
    card = next(g for g in view.groups if g.id == heads.id)
    assert ("heads", "4") in card.facts
    assert any(t.startswith("bert.encoder.layer.0.attention.self.query.weight [dim 0]") for t in card.tensors)
    sdpa = [n for n in view.nodes if n.kind == "joint" and "scaled_dot_product_attention" in n.lines[0]]
    assert len(sdpa) == 2 and all(any("MACs" in line for line in n.lines) for n in sdpa)


# -- DOT and graphviz ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet", "bert"])
def test_dot_and_svg_show_every_group_and_every_reason(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    space: SearchSpace = request.getfixturevalue(name)
    outputs = [Path(space.render(tmp_path / "graph.dot"))]
    if HAS_DOT:
        outputs.append(Path(space.render(tmp_path / "graph.svg")))
    for path in outputs:
        text = html.unescape(path.read_text())
        for group in space.prunable_groups:
            unit = "heads" if group.atom.id in space.head_atoms else "channels"
            assert group_colour(group.id) in text and f"g{group.id}: {group.size} {unit}" in text, (path, group.id)
        for group in space.node_groups:
            if not group.prunable:
                assert group.reason and group.reason in text, (path, group.reason)
        assert "legend" in text and space.graph.model_name in text
    if HAS_DOT:
        svg = outputs[1].read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        assert f'id="{box_of(space, space.prunable_groups[0].name.split(", ")[0]).id}"' in svg


def test_without_graphviz_svg_explains_the_install_and_dot_html_still_work(
        resnet: SearchSpace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_graphviz(monkeypatch)
    with pytest.raises(TrainonceError, match="apt-get install graphviz"):
        resnet.render(tmp_path / "graph.svg")
    assert not (tmp_path / "graph.svg").exists()
    assert "digraph" in Path(resnet.render(tmp_path / "graph.dot")).read_text()
    page = Path(resnet.render(tmp_path / "graph.html")).read_text()
    assert 'class="node node-op' in page and 'class="edge"' in page  # the built-in layered layout
    assert len(page_json(page)["groups"]) == len(resnet.node_groups)
    with pytest.raises(TrainonceError, match=r"\.html"):
        resnet.render(tmp_path / "graph.txt")


# -- the HTML explorer --------------------------------------------------------------------------

@pytest.mark.parametrize("graphviz", [True, False], ids=["graphviz-layout", "built-in-layout"])
def test_html_is_self_contained_and_carries_the_groups(
        graphviz: bool, bert: SearchSpace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if graphviz and not HAS_DOT:
        pytest.skip("graphviz 'dot' is not installed")
    if not graphviz:
        no_graphviz(monkeypatch)
    page = Path(bert.render(tmp_path / "graph.html")).read_text()
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert not re.search(r"<script[^>]+src=|<link\b|@import|<iframe|<img", page)
    assert page.count("<svg") == 2  # the hatch pattern definitions and the graph
    data = page_json(page)
    assert len(data["groups"]) == len(bert.node_groups)
    element_ids = set(re.findall(r'<g id="([a-z]+\d+)" class="node', page))
    assert {n["id"] for n in data["nodes"]} == element_ids  # the script finds every box it knows
    for group in bert.node_groups:
        card = next(g for g in data["groups"] if g["id"] == group.id)
        assert card["members"] and set(card["members"]) <= element_ids
        assert card["prunable"] == group.prunable
        assert ["prunable", "yes" if group.prunable else f"no: {group.reason}"] in card["facts"]


def test_erasing_space_renders_an_html_explorer_too(tmp_path: Path) -> None:
    model, x = build("deep_plain_residual")
    space = trainonce.analyze(model, x, mode="erase", probe=False)
    page = Path(space.render(tmp_path / "segments.html")).read_text()
    data = page_json(page)
    with_parameters = [s for s in space.erasing.segments if s.parameters and s.kind.name == "CHAIN"]
    assert {g["id"] for g in data["groups"]} == {s.id for s in with_parameters}
    assert sum(g["prunable"] for g in data["groups"]) == len(space.erasing.candidates)
    assert "http://" not in page and "https://" not in page


def test_built_in_layout_is_fast_on_a_2000_box_graph() -> None:
    rng = random.Random(0)
    nodes = [ViewNode(f"n{i}", "op" if i % 7 else "joint", f"block{i // 7}.layer{i % 7}", ["conv2d (Conv2d)", "out 1x64x8x8"],
                      [group_colour(i % 50)]) for i in range(2000)]
    edges = [(f"n{i - 1}", f"n{i}") for i in range(1, 2000)]
    edges += [(f"n{i - rng.randint(2, 6)}", f"n{i}") for i in range(7, 2000, 7)]  # skip connections
    start = time.perf_counter()
    svg = layered_svg(GraphView("big", [], nodes, edges, [], []))
    assert time.perf_counter() - start < 5.0
    assert svg.count('class="node') == 2000 and svg.count('class="edge"') == len(edges)
    assert "NaN" not in svg and "inf" not in svg


# -- the page in a real browser -----------------------------------------------------------------

def run_chromium(args: list[str], page: Path, fragment: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, page.as_uri() + fragment]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed (apt-get install chromium)")
@pytest.mark.parametrize("graphviz", [True, False], ids=["graphviz-layout", "built-in-layout"])
def test_page_searches_and_highlights_in_headless_chromium(
        graphviz: bool, resnet: SearchSpace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if graphviz and not HAS_DOT:
        pytest.skip("graphviz 'dot' is not installed")
    with monkeypatch.context() as patch:
        if not graphviz:
            no_graphviz(patch)
        page = Path(resnet.render(tmp_path / "resnet.html"))
    conv = box_of(resnet, "layer1.0.conv1")
    group = conv.groups[0]
    members = [n.id for n in search_space_view(resnet).nodes if group in n.groups]

    result = run_chromium(["--dump-dom"], page, "#search=layer1.0.conv1", tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    body = re.search(r"<body([^>]*)>", result.stdout)
    assert body, result.stdout[:2000]
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body[1]))
    assert attributes["data-ready"] == "1" and attributes["data-errors"] == ""
    assert attributes["data-groups"] == str(len(resnet.node_groups))
    assert attributes["data-matches"] == "1"
    assert attributes["data-selected-node"] == conv.id and attributes["data-selected-groups"] == str(group)
    assert attributes["data-highlighted"] == str(len(members)) == "2"  # layer1.0.conv1 and layer1.0.bn1
    for member in members:
        assert re.search(rf'<g id="{member}" class="[^"]*\bhl\b', result.stdout), member
    assert f'data-group="{group}"' in result.stdout and "group g" in result.stdout  # the side panel card

    shot = tmp_path / "explorer.png"
    result = run_chromium([f"--screenshot={shot}", "--window-size=1400,900"], page, "#search=layer1.0.conv1",
                          tmp_path / "profile")
    print(f"explorer screenshot ({'graphviz' if graphviz else 'built-in'} layout): {shot}")
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 30_000  # a drawn page, not a blank one
