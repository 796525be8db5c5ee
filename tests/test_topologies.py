"""Topology loaders (native JSON, Zoo GraphML, TSNKit CSV), their errors, and the fntf40 generator."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import warnings
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topologies import emulated, fileio, loaders
from topologies import generate_fntf40 as gen
from topologies.loaders import TopologyWarning, list_builtin, load_topology, load_warnings
from topologies.model import Topology, TopologyError, great_circle_km
from topologies.tsnkit_topo import load_tsnkit_csv
from topologies.zoo import load_graphml

pytestmark = pytest.mark.filterwarnings("ignore::topologies.loaders.TopologyWarning")

DATA = Path(gen.__file__).resolve().parent / "data"
ZOO = DATA / "zoo"


def quiet_load(*args, **kw) -> Topology:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TopologyWarning)
        return load_topology(*args, **kw)


# ----- builtin names --------------------------------------------------------------------------

def test_list_builtin_has_fntf40_first_and_every_zoo_file():
    names = list_builtin()
    assert names[0] == "fntf40"
    assert sorted(names[1:]) == sorted(p.stem for p in ZOO.glob("*.graphml"))


@pytest.mark.parametrize("name", ["fntf40", "FNTF40", "abilene", "ABILENE", "Geant2012"])
def test_builtin_names_are_case_insensitive(name):
    topo = quiet_load(name)
    assert topo.name.lower() == name.lower()


def test_unknown_builtin_name_lists_the_known_ones():
    with pytest.raises(TopologyError, match="unknown topology 'atlantis'.*fntf40"):
        load_topology("atlantis")


# ----- fntf40: the committed file and its generator -------------------------------------------

@pytest.fixture(scope="module")
def fntf40() -> Topology:
    return load_topology("fntf40")


def test_fntf40_invariants(fntf40):
    g = fntf40.undirected()
    assert g.number_of_nodes() == 40
    total = sum(l.km for l in fntf40.links())
    assert abs(total - 55_000) <= 550
    degrees = dict(g.degree())
    assert min(degrees.values()) >= 2
    assert max(degrees.values()) <= 7
    assert nx.is_connected(g)
    assert not nx.has_bridges(g)
    assert 80 <= len(fntf40.links()) <= 100


def test_fntf40_nodes_match_cities_csv(fntf40):
    with open(DATA / "cities40.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert fntf40.nodes == [r["name"] for r in rows]
    for r in rows:
        d = fntf40.graph.nodes[r["name"]]
        assert (d["lat"], d["lon"], d["role"]) == (float(r["lat"]), float(r["lon"]), r["role"])


def test_fntf40_links_are_one_route_factor_over_great_circle(fntf40):
    pos = {n: (d["lat"], d["lon"]) for n, d in fntf40.graph.nodes(data=True)}
    factors = [l.km / great_circle_km(*pos[l.src], *pos[l.dst]) for l in fntf40.links()]
    assert max(factors) - min(factors) < 1e-3
    assert 1.2 <= factors[0] <= 1.5  # fibre routes: 1.2-1.5x great circle (a common rule of thumb for terrestrial fibre; docs/topologies.md)
    for l in fntf40.links():
        assert l.propagation_ns == round(l.km * 5000)


def test_fntf40_capacities_and_trunks(fntf40):
    caps = {l.capacity_bps for l in fntf40.links()}
    assert caps == {100_000_000_000, 1_200_000_000_000}
    trunk = {frozenset((l.src, l.dst)) for l in fntf40.links() if l.capacity_bps == 1_200_000_000_000}
    assert frozenset(("Guangzhou", "Shenzhen")) in trunk
    g = nx.Graph((tuple(t) for t in trunk))
    assert nx.has_path(g, "Beijing", "Shanghai") and nx.has_path(g, "Shanghai", "Guangzhou")


def test_fntf40_avoids_excluded_corridors(fntf40):
    present = {frozenset((l.src, l.dst)) for l in fntf40.links()}
    assert not present & set(gen.EXCLUDED)


def test_fntf40_generator_is_deterministic_and_matches_committed_file(tmp_path):
    out = tmp_path / "fntf40.json"
    assert gen.main(["--out", str(out)]) == 0
    assert out.read_text() == (DATA / "fntf40.json").read_text()
    topo, info = gen.generate()
    assert gen.to_json(topo, info) == out.read_text()
    assert info["route_factor"] == json.loads(out.read_text())["generator"]["route_factor"]


def _segments_cross(p, q, r, s) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (orient(p, q, r) * orient(p, q, s) < 0) and (orient(r, s, p) * orient(r, s, q) < 0)


def test_delaunay_of_square_with_centre():
    xy = {"a": (0.0, 0.0), "b": (10.0, 0.0), "c": (10.0, 10.5), "d": (0.0, 10.0), "m": (5.0, 5.0)}
    edges = gen.delaunay_edges(xy)
    assert len(edges) == 8  # 4 sides + 4 spokes
    assert all(frozenset((x, "m")) in edges for x in "abcd")


def test_delaunay_of_cities_is_a_planar_triangulation():
    xy = gen.project(gen.read_cities())
    edges = [tuple(e) for e in gen.delaunay_edges(xy)]
    # a triangulation of n points with h on the hull has 3n - 3 - h edges
    pts = sorted(xy.values())
    def half(points):
        hull = []
        for p in points:
            while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1])
                                      - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])) <= 0:
                hull.pop()
            hull.append(p)
        return hull
    h = len(half(pts)) + len(half(pts[::-1])) - 2
    assert len(edges) == 3 * len(xy) - 3 - h
    for (a, b), (c, d) in itertools.combinations(edges, 2):
        if len({a, b, c, d}) == 4:
            assert not _segments_cross(xy[a], xy[b], xy[c], xy[d]), (a, b, c, d)


# ----- native JSON ----------------------------------------------------------------------------

def test_native_json_round_trip(tmp_path, fntf40):
    path = tmp_path / "copy.json"
    path.write_text(fntf40.to_json())
    again = load_topology(str(path))
    assert again.to_dict() == fntf40.to_dict()


def _broken_json_cases():
    good_nodes = [{"name": "a"}, {"name": "b"}]
    return {
        "bad_json": "{not json",
        "empty": "",
        "not_object": "[1, 2]",
        "missing_nodes": json.dumps({"links": []}),
        "unknown_node": json.dumps({"nodes": good_nodes, "links": [{"src": "a", "dst": "zz", "km": 1}]}),
        "negative_capacity": json.dumps({"nodes": good_nodes,
                                         "links": [{"src": "a", "dst": "b", "km": 1, "capacity_bps": -5}]}),
        "non_numeric_km": json.dumps({"nodes": good_nodes, "links": [{"src": "a", "dst": "b", "km": "far"}]}),
        "no_nodes": json.dumps({"nodes": [], "links": []}),
        "duplicate_node": json.dumps({"nodes": good_nodes + [{"name": "a"}], "links": []}),
    }


@pytest.mark.parametrize("case", sorted(_broken_json_cases()))
def test_broken_native_json_is_one_line_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.json"
    path.write_text(_broken_json_cases()[case])
    with pytest.raises(TopologyError) as e:
        load_topology(str(path))
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["missing.json", "missing.graphml", "missing.csv"])
def test_missing_file(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(TopologyError, match="no such file") as e:
        load_topology(str(path))
    assert str(path) in str(e.value)


def test_directory_and_unknown_extension(tmp_path):
    d = tmp_path / "dir.json"
    d.mkdir()
    with pytest.raises(TopologyError, match="directory"):
        load_topology(str(d))
    f = tmp_path / "net.yaml"
    f.write_text("nodes: []")
    with pytest.raises(TopologyError, match="unknown topology format '.yaml'"):
        load_topology(str(f))


def test_binary_file_is_one_line(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(TopologyError) as e:
        load_topology(str(path))
    assert str(path) in str(e.value)


def test_the_formats_and_the_loader_share_one_set_of_file_helpers(tmp_path):
    # topologies.loaders.TopologyWarning (the name filters use) is the class the formats warn with
    for name in ("DEFAULT_ROUTE_FACTOR", "TopologyWarning", "load_warnings", "read_text", "warn"):
        assert getattr(loaders, name) is getattr(fileio, name), name
    t = Topology("t")
    t.add_node("A"), t.add_node("B")
    with pytest.warns(loaders.TopologyWarning, match="guessed"):
        fileio.warn(t, "t: guessed a length")
    assert load_warnings(t) == ["t: guessed a length"]
    (tmp_path / "x.csv").write_text("\ufeffa,b\n", encoding="utf-8")
    assert fileio.read_text(tmp_path / "x.csv") == "a,b\n"  # a BOM is not part of the text
    with pytest.raises(TopologyError, match=r"^nowhere\.json: no such file$"):
        fileio.read_text(tmp_path / "nowhere.json", "nowhere.json")


def test_bad_route_factor_is_rejected():
    with pytest.raises(TopologyError, match="route factor"):
        load_topology("abilene", route_factor=0)


# ----- Topology Zoo GraphML -------------------------------------------------------------------

#: nodes and links after the loader's merges (README figures: Cernet loses one Shijiazhuang and one
#: duplicate Beijing-Xi'an edge; Cogentco has two duplicate edges)
ZOO_COUNTS = {"Abilene": (11, 14), "Cernet": (40, 58), "Chinanet": (42, 66), "Cogentco": (197, 243),
              "Geant2012": (40, 61)}
ZOO_MISSING_COORDS = {"Abilene": 0, "Cernet": 4, "Chinanet": 4, "Cogentco": 11, "Geant2012": 3}


@pytest.mark.parametrize("name", sorted(ZOO_COUNTS))
def test_zoo_files_load_with_merged_counts(name):
    topo = quiet_load(name)
    assert (len(topo.nodes), len(topo.links())) == ZOO_COUNTS[name]
    assert len(set(topo.nodes)) == len(topo.nodes)
    assert nx.is_connected(topo.undirected())
    for l in topo.links():
        assert l.km > 0 and l.capacity_bps > 0
        assert topo.graph.edges[l.dst, l.src]["km"] == l.km
    missing = [n for n, d in topo.graph.nodes(data=True) if d["lat"] is None]
    assert len(missing) == ZOO_MISSING_COORDS[name]
    if missing:
        text = " ".join(load_warnings(topo))
        assert all(n in text for n in missing)


def test_zoo_missing_coordinates_warn_and_use_median_length():
    with pytest.warns(TopologyWarning, match="without coordinates kept: Japan, Europe, N.A, Korea"):
        topo = load_topology(str(ZOO / "Cernet.graphml"))
    known = sorted(l.km for l in topo.links()
                   if topo.graph.nodes[l.src]["lat"] is not None and topo.graph.nodes[l.dst]["lat"] is not None)
    guessed = [l.km for l in topo.links() if "Japan" in (l.src, l.dst)]
    assert guessed and all(math.isclose(k, (known[len(known) // 2 - 1] + known[len(known) // 2]) / 2
                                        if len(known) % 2 == 0 else known[len(known) // 2]) for k in guessed)


def test_cernet_duplicates_are_merged():
    topo = quiet_load("cernet")
    assert "Shijiazhuang" in topo.nodes and "Shijiazhuang-2" not in topo.nodes
    assert topo.undirected().degree("Shijiazhuang") == 4  # 3 + 1 links of the two entries
    assert topo.capacity_bps("Beijing", "Xi'an") == 2 * 155_000_000  # two parallel 155M links bundled
    assert any("Shijiazhuang" in w for w in load_warnings(topo))


def test_zoo_route_factor_scales_lengths_and_oc_speeds():
    a = quiet_load("abilene", route_factor=1.0)
    b = quiet_load("abilene", route_factor=1.5)
    for la, lb in zip(a.links(), b.links()):
        assert math.isclose(lb.km, 1.5 * la.km, rel_tol=1e-9)
        assert la.capacity_bps == round(192 * 51.84e6)  # OC-192 from LinkType


def test_zoo_default_capacity_option():
    topo = quiet_load("chinanet", default_capacity_bps=40e9)
    assert {l.capacity_bps for l in topo.links()} == {40_000_000_000}


GRAPHML_HEAD = """<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="label" attr.type="string" for="node" id="l" />
  <key attr.name="Latitude" attr.type="double" for="node" id="la" />
  <key attr.name="Longitude" attr.type="double" for="node" id="lo" />
  <key attr.name="LinkSpeedRaw" attr.type="double" for="edge" id="s" />
  <graph edgedefault="undirected">
"""


def _node(i, label, lat=None, lon=None):
    data = f'<data key="l">{label}</data>'
    if lat is not None:
        data += f'<data key="la">{lat}</data><data key="lo">{lon}</data>'
    return f'<node id="{i}">{data}</node>\n'


def test_zoo_same_label_at_different_places_is_renamed(tmp_path):
    path = tmp_path / "twins.graphml"
    path.write_text(GRAPHML_HEAD + _node(0, "X", 10, 10) + _node(1, "X", 20, 20) + _node(2, "Y", 15, 15)
                    + '<edge source="0" target="2"><data key="s">1e9</data></edge>'
                    + '<edge source="1" target="2"/><edge source="2" target="2"/></graph></graphml>')
    with pytest.warns(TopologyWarning):
        topo = load_topology(str(path))
    assert topo.nodes == ["X", "X-2", "Y"]
    assert topo.capacity_bps("X", "Y") == 1_000_000_000
    assert topo.capacity_bps("X-2", "Y") == 100_000_000_000
    assert any("self-loop" in w for w in load_warnings(topo))


def test_zoo_without_any_coordinates_uses_fallback_length(tmp_path):
    path = tmp_path / "nocoord.graphml"
    path.write_text(GRAPHML_HEAD + _node(0, "A") + _node(1, "B")
                    + '<edge source="0" target="1"/></graph></graphml>')
    with pytest.warns(TopologyWarning, match="no link has coordinates"):
        topo = load_topology(str(path))
    assert topo.links()[0].km == 100.0


@pytest.mark.parametrize("body,problem", [
    ("<graphml><graph><node id='a'>", "not valid XML"),
    ("just text", "not valid XML"),
    (GRAPHML_HEAD + "</graph></graphml>", "no nodes"),
    (GRAPHML_HEAD + _node(0, "A") + "</graph></graphml>", "no links"),
    ("", "not valid XML"),
])
def test_broken_graphml(tmp_path, body, problem):
    path = tmp_path / "bad.graphml"
    path.write_text(body)
    with pytest.raises(TopologyError, match=problem) as e:
        load_topology(str(path))
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


# ----- TSNKit topology CSV --------------------------------------------------------------------

@pytest.mark.parametrize("shape,links", [("ring", 8), ("mesh", 8), ("line", 7)])
def test_tsnkit_generated_topologies(tmp_path, shape, links):
    from tsnkit.data import dataset_spec

    getattr(dataset_spec, shape)(4, 8, 1, str(tmp_path / shape))  # 4 switches, 8 queues, 1 bit/ns
    path = tmp_path / f"{shape}.csv"
    topo = load_topology(str(path))
    assert topo.nodes == [str(i) for i in range(8)]
    assert len(topo.links()) == links
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(topo.directed_links()) == len(rows)
    for u, v, d in topo.graph.edges(data=True):
        assert d["capacity_bps"] == 1_000_000_000
        assert d["processing_ns"] == 2000 and d["queues"] == 8
    roles = [topo.graph.nodes[n]["role"] for n in topo.nodes]
    assert roles == ["switch"] * 4 + ["end_station"] * 4


def test_tsnkit_directions_keep_their_own_values(tmp_path):
    path = tmp_path / "asym.csv"
    path.write_text('link,q_num,rate,t_proc,t_prop\n"(0, 1)",8,10,1000,50000\n"(1, 0)",4,1,500,50000\n'
                    '"(1, 2)",8,0.5,0,5000\n')
    with pytest.warns(TopologyWarning, match=r"one direction only.*\(1, 2\)"):
        topo = load_tsnkit_csv(path)
    e01, e10 = topo.graph.edges["0", "1"], topo.graph.edges["1", "0"]
    assert (e01["capacity_bps"], e01["processing_ns"], e01["queues"]) == (10_000_000_000, 1000, 8)
    assert (e10["capacity_bps"], e10["processing_ns"], e10["queues"]) == (1_000_000_000, 500, 4)
    assert e01["propagation_ns"] == 50_000 and e01["km"] == 10.0
    assert topo.graph.edges["2", "1"]["capacity_bps"] == 500_000_000


@pytest.mark.parametrize("body,problem", [
    ("", "empty"),
    ("a,b,c\n1,2,3\n", "missing column"),
    ("link,q_num,rate,t_proc,t_prop\n", "no links"),
    ('link,q_num,rate,t_proc,t_prop\n"(0; 1)",8,1,0,0\n', "line 2: link"),
    ('link,q_num,rate,t_proc,t_prop\n"(0, 1)",8,fast,0,0\n', "rate 'fast' is not a number"),
    ('link,q_num,rate,t_proc,t_prop\n"(0, 1)",8,1,-3,0\n', "t_proc cannot be negative"),
    ('link,q_num,rate,t_proc,t_prop\n"(0, 1)",8,0,0,0\n', "rate must be positive"),
    ('link,q_num,rate,t_proc,t_prop\n"(0, 1)",8,1,0,0\n"(0, 1)",8,1,0,0\n', "appears twice"),
    ('link,q_num,rate,t_proc,t_prop\n"(0, 0)",8,1,0,0\n', "self-loop"),
    ('link,q_num,rate,t_proc,t_prop\n"(0, 1)",8,1\n', "expected 5 fields"),
])
def test_broken_tsnkit_csv(tmp_path, body, problem):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(TopologyError, match=problem) as e:
        load_topology(str(path))
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


# ----- any file: a Topology or one TopologyError line, never another exception ----------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ext=st.sampled_from([".json", ".graphml", ".csv"]),
       body=st.one_of(st.binary(max_size=200),
                      st.text(alphabet='(),0123456789 \n"-.linkq_numratetprocprop{}[]:<>/=', max_size=200).map(str.encode),
                      st.sampled_from([b'link,q_num,rate,t_proc,t_prop\n', b'{"nodes": [], "links": []}',
                                       b'<?xml version="1.0"?><graphml>']).flatmap(
                          lambda head: st.binary(max_size=80).map(lambda tail: head + tail))))
def test_any_bytes_load_or_raise_one_line(tmp_path, ext, body):
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(body)
    try:
        topo = load_topology(str(path))
    except TopologyError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
    else:
        assert isinstance(topo, Topology) and topo.nodes


# ----- the emulated network's names and shaping (topologies/emulated.py, no Mininet) ----------

def test_emulated_names_link_parameters_and_default_plan(fntf40):
    plan = emulated.default_plan(fntf40, tenants=2, cities=["Beijing", "Shanghai"])
    assert len(plan.hosts) == 4
    h = plan.hosts[0]
    assert emulated.host_intf_name(h) == f"{h.name}-eth0"
    # over IFNAMSIZ (15) with "-eth0": the host's own namespace name
    assert emulated.host_intf_name(dataclasses.replace(h, name="t128h123456")) == "eth0"
    assert emulated.switch_intf_name("s3", 2) == "s3-eth2"
    assert emulated.link_params(100_000_000_000, 2_500_000) == {"bw": 100.0}
    assert emulated.link_params(1_200_000_000_000, 2_500_000, delay=True, max_bw_mbps=1000) == {
        "bw": 1000, "delay": "2500us"}
    assert emulated.link_params(10, 10, link_scale=None) == {}
    assert emulated.tc_batch(fntf40, plan, link_scale=None) == ""

