import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnattn.sweeps import SweepSpec, run_id_for
from rnnattn.sweeps.spec import canonical_json, resolve_function

FN = "tests_fn:f"


def test_runs_cartesian_order_and_params():
    spec = SweepSpec(name="s", fn=FN, grid={"a": (1, 2), "b": ("x", "y", "z")}, seeds=(0, 5), base={"steps": 3})
    runs = spec.runs()
    assert len(runs) == len(spec) == 12
    assert [r.index for r in runs] == list(range(12))
    assert runs[0].params == {"steps": 3, "a": 1, "b": "x", "seed": 0}
    assert runs[1].params["seed"] == 5 and runs[2].params["b"] == "y"  # seeds innermost, last axis next
    assert runs[-1].params == {"steps": 3, "a": 2, "b": "z", "seed": 5}
    assert runs[0].run_id.startswith("a=1,b=x,seed=0#")
    assert len({r.run_id for r in runs}) == 12


def test_ids_do_not_depend_on_grid_position_or_extension():
    small = SweepSpec(name="s", fn=FN, grid={"n": (8, 16)}, seeds=(0,))
    big = SweepSpec(name="other", fn=FN, grid={"n": (4, 16, 8, 32)}, seeds=(1, 0))
    ids_small = {r.params["n"]: r.run_id for r in small.runs()}
    ids_big = {(r.params["n"], r.params["seed"]): r.run_id for r in big.runs()}
    assert ids_small[8] == ids_big[(8, 0)] and ids_small[16] == ids_big[(16, 0)]


def test_base_parameters_change_the_id():
    a = SweepSpec(name="s", fn=FN, grid={"n": (8,)}, base={"lr": 1e-3}).runs()[0]
    b = SweepSpec(name="s", fn=FN, grid={"n": (8,)}, base={"lr": 1e-2}).runs()[0]
    assert a.run_id.split("#")[0] == b.run_id.split("#")[0] and a.run_id != b.run_id


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)),
        max_size=5,
    )
)
def test_run_id_independent_of_key_order(params):
    reordered = dict(reversed(list(params.items())))
    assert run_id_for(params) == run_id_for(reordered)
    assert canonical_json(params) == canonical_json(reordered)


def test_dict_axis_values_use_their_name():
    spec = SweepSpec(name="s", fn=FN, grid={"arch": ({"name": "lstm", "class": "LSTM"}, {"class": "GRU"})})
    ids = [r.run_id for r in spec.runs()]
    assert ids[0].startswith("arch=lstm,seed=0#") and not ids[1].startswith("arch={")


def test_json_round_trip(tmp_path):
    spec = SweepSpec(
        name="s",
        fn=FN,
        grid={"n": [8, 16], "arch": [{"name": "a", "layers": [1, 2]}]},
        seeds=[0, 1],
        base={"steps": 10, "sizes": [1, 2]},
    )
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    back = SweepSpec.from_json(path)
    assert back == spec and hash(back) == hash(spec)
    assert [r.run_id for r in back.runs()] == [r.run_id for r in spec.runs()]
    assert json.loads(path.read_text())["grid"]["n"] == [8, 16]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": ""}, "name"),
        ({"name": "a/b"}, "name"),
        ({"fn": "nocolon"}, "fn must look like"),
        ({"grid": {"n": []}}, "non-empty list"),
        ({"grid": {"n": 3}}, "non-empty list"),
        ({"grid": {"seed": (1,)}}, "not a grid axis"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": (0, 0)}, "repeat"),
        ({"seeds": (-1,)}, "seeds"),
        ({"base": {"seed": 1}}, "seeds="),
        ({"base": {"x": float("nan")}}, "finite"),
        ({"base": {"x": object()}}, "must be JSON"),
    ],
)
def test_bad_specs_raise_one_line_errors(kwargs, match):
    args = {"name": "s", "fn": FN, **kwargs}
    with pytest.raises(ValueError, match=match):
        SweepSpec(**args)


def test_repeated_grid_point_is_rejected():
    with pytest.raises(ValueError, match="repeats a point"):
        SweepSpec(name="s", fn=FN, grid={"n": (8, 8)}).runs()


def test_from_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        SweepSpec.from_json(bad)
    bad.write_text(json.dumps({"name": "s", "fn": FN, "gird": {}}))
    with pytest.raises(ValueError, match="unknown config field"):
        SweepSpec.from_json(bad)


def test_resolve_function():
    assert resolve_function("json:dumps", trusted_modules=("json",)) is json.dumps
    with pytest.raises(ValueError, match="not a registered"):
        resolve_function("json:dumps")  # not trusted: a spec file must not name arbitrary code
    with pytest.raises(ValueError, match="not a registered"):
        resolve_function("subprocess:run", trusted_modules=("sub",))  # trust is by module path, not prefix
    with pytest.raises(ValueError, match="not a registered"):
        resolve_function("rnnattn.no_such_module_xyz:f")
    with pytest.raises(ValueError, match="cannot import"):
        resolve_function("no_such_module_xyz:f", trusted_modules=("no_such_module_xyz",))
    with pytest.raises(ValueError, match="has no"):
        resolve_function("json:nope", trusted_modules=("json",))
    assert resolve_function("rnnattn.sweeps.runs:train_run").__name__ == "train_run"
