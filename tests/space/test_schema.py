from __future__ import annotations


import pytest
import yaml

from nas.errors import ConfigError
from nas.space import SPACES_DIR, load_space, load_space_config, parse_space
from tests.conftest import TINY_SPACE


def _data() -> dict:
    return yaml.safe_load(TINY_SPACE)


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
def test_shipped_spaces_load(name):
    space = load_space(name)
    assert space.name == name
    assert space.count() > 1


def test_large_space_matches_the_issue():
    cfg = load_space_config("mobilenetv3_large")
    assert cfg.base_resolution == 224
    assert cfg.resolutions[0] == 160 and cfg.resolutions[-1] == 224
    total_stride = cfg.stem.stride
    for stage in cfg.stages:
        total_stride *= stage.stride
    assert total_stride == 32  # five stride-2 reductions
    searchable = [s for s in cfg.stages if len(s.depths) > 1]
    assert searchable and all(
        s.kernels == (3, 5, 7) and s.expansions == (3.0, 4.0, 6.0) and s.depths == (2, 3, 4)
        and s.se == (False, True) and s.acts == ("relu", "hswish")
        for s in searchable
    )


def test_small_space_has_fewer_reductions():
    cfg = load_space_config("mobilenetv3_small32")
    total_stride = cfg.stem.stride
    for stage in cfg.stages:
        total_stride *= stage.stride
    assert total_stride < 32
    assert max(cfg.resolutions) <= 32


def test_one_error_lists_every_problem_with_its_path():
    data = _data()
    data["stages"][2]["kernels"] = [3, 4]
    data["stages"][1]["stride"] = 3
    data["stages"][1]["expansions"] = []
    data["stages"][0]["colour"] = "red"
    data["head"]["dropout"] = 1.5
    del data["stem"]["out_channels"]
    with pytest.raises(ConfigError) as info:
        parse_space(data, "bad.yaml")
    problems = info.value.problems
    text = str(info.value)
    assert "stages[2].kernels: 4 not in {3, 5, 7}" in problems
    assert "stages[1].stride: 3 not in {1, 2}" in problems
    assert "stages[1].expansions: must list at least one choice" in problems
    assert "stages[0].colour: unknown key" in problems
    assert any(p.startswith("head.dropout:") for p in problems)
    assert "stem.out_channels: required key is missing" in problems
    assert len(problems) == 6
    assert text.startswith("bad.yaml: 6 problems")


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["stages"][1].update(depths="2"), "stages[1].depths"),
        (lambda d: d["stages"][1].update(se=["yes"]), "stages[1].se[0]"),
        (lambda d: d["stages"][1].update(acts=["relu", "gelu"]), "stages[1].acts: 'gelu' not in {relu, hswish}"),
        (lambda d: d["stages"][1].update(kernels=[3, 3]), "stages[1].kernels: has duplicate choices"),
        (lambda d: d["stages"][1].update(depths=[0, 1]), "stages[1].depths: depths must be >= 1"),
        (lambda d: d.update(width_multipliers=[0.0]), "width_multipliers"),
        (lambda d: d.update(resolutions=[2]), "resolutions"),
        (lambda d: d.update(stages=[]), "stages: must list at least one stage"),
        (lambda d: d.update(head={"final_channels": 32, "pool": "max"}), "head.pool: 'max' not in {avg}"),
        (lambda d: d.update(name="my space!"), "name:"),
        (lambda d: d["stem"].update(out_channels=16.5), "stem.out_channels"),
        (lambda d: d["stages"][1].update(expansions=[True]), "stages[1].expansions[0]"),
    ],
)
def test_bad_values_are_named(mutate, expected):
    data = _data()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_space(data)
    assert expected in str(info.value)


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_space_config(path)


def test_invalid_yaml_is_reported(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space_config(path)


def test_unsafe_yaml_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space_config(path)


def test_unknown_space_name_lists_shipped_spaces():
    with pytest.raises(FileNotFoundError, match="mobilenetv3_large"):
        load_space_config("no_such_space")


def test_digest_ignores_name_but_not_shape():
    a = parse_space(_data())
    data = _data()
    data["name"] = "renamed"
    assert parse_space(data).digest == a.digest
    data["stages"][1]["out_channels"] = 32
    assert parse_space(data).digest != a.digest


def test_choices_are_canonicalised(tmp_path):
    data = _data()
    data["stages"][1]["kernels"] = [5, 3]
    data["stages"][1]["acts"] = ["hswish", "relu"]
    cfg = parse_space(data)
    assert cfg.stages[1].kernels == (3, 5)
    assert cfg.stages[1].acts == ("relu", "hswish")
    # still the same space
    assert cfg.digest == parse_space(_data()).digest
