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
        s.choice.kernels == (3, 5, 7) and s.choice.expansions == (3.0, 4.0, 6.0) and s.depths == (2, 3, 4)
        and s.choice.se == (False, True) and s.choice.acts == ("relu", "hswish")
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
    assert cfg.stages[1].choice.kernels == (3, 5)
    assert cfg.stages[1].choice.acts == ("relu", "hswish")
    # still the same space
    assert cfg.digest == parse_space(_data()).digest


# -- hostile and sloppy YAML (nas._yaml) -----------------------------------------------------------
def _alias_bomb(levels: int) -> str:
    """A "billion laughs" document: ``levels`` nested aliases, each one 9 times the previous."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nname: *l{levels - 1}\n"


def test_alias_bomb_is_refused_before_it_expands(tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(7))  # 450 bytes that stand for 4.8 million strings
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            load_space_config(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(info.value)
    assert "bomb.yaml" in msg and "aliases expand to more than" in msg
    assert len(msg) < 500
    assert peak < 5_000_000  # the expansion never happened


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(TINY_SPACE.replace("name: tiny", "name: &me [*me]"))
    with pytest.raises(ConfigError, match=r"loop\.yaml(?s:.*)alias \*me is recursive"):
        load_space_config(path)


def test_reasonable_aliases_still_work(tmp_path):
    data = TINY_SPACE.replace("  - {out_channels: 16,", "  - &s {out_channels: 16,").replace(
        "  - {out_channels: 24, stride: 1,", "  - *s\n  - {out_channels: 24, stride: 1,"
    )
    path = tmp_path / "anchors.yaml"
    path.write_text(data)
    cfg = load_space_config(path)
    assert len(cfg.stages) == 4 and cfg.stages[1] == cfg.stages[2]


def test_oversized_file_is_refused_unread(tmp_path):
    from nas._yaml import MAX_YAML_BYTES

    path = tmp_path / "huge.yaml"
    path.write_text(TINY_SPACE + "#" + "x" * MAX_YAML_BYTES + "\n")
    size = path.stat().st_size
    with pytest.raises(ConfigError) as info:
        load_space_config(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and str(size) in msg and str(MAX_YAML_BYTES) in msg


def test_too_many_values_are_refused(tmp_path):
    from nas._yaml import MAX_YAML_NODES

    path = tmp_path / "dense.yaml"
    path.write_text(TINY_SPACE.replace("resolutions: [12, 16]", "resolutions: [" + "1," * MAX_YAML_NODES + "1]"))
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES} values"):
        load_space_config(path)


def test_deep_nesting_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(TINY_SPACE.replace("name: tiny", "name: " + "[" * 2000 + "]" * 2000))
    with pytest.raises(ConfigError, match="nested more than"):
        load_space_config(path)


def test_duplicate_keys_are_refused_at_any_depth(tmp_path):
    text = (
        TINY_SPACE.replace("name: tiny", "name: tiny\nname: other")
        .replace("{final_channels: 32,", "{final_channels: 32, final_channels: 64,")
        .replace("{out_channels: 16, stride: 2,", "{out_channels: 16, stride: 2, kernels: [7],")
    )
    path = tmp_path / "dups.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_space_config(path)
    problems = info.value.problems
    assert str(info.value).startswith(f"{path}: 3 problems")
    assert "(top level): duplicate key 'name' (lines 2 and 3)" in problems
    assert any(p.startswith("stages[1]: duplicate key 'kernels'") for p in problems)
    assert any(p.startswith("head: duplicate key 'final_channels'") for p in problems)


def test_error_messages_stay_short_for_huge_values(tmp_path):
    from nas.space._schema import MAX_PROBLEMS, MAX_SHOWN_CHARS

    path = tmp_path / "long.yaml"
    path.write_text(
        TINY_SPACE.replace("name: tiny", "name: [" + ", ".join(["lololol"] * 5000) + "]").replace(
            "resolutions: [12, 16]", "resolutions: [" + ", ".join(f"r{i}" for i in range(500)) + "]"
        )
    )
    with pytest.raises(ConfigError) as info:
        load_space_config(path)
    problems = info.value.problems
    name = next(p for p in problems if p.startswith("name:"))
    assert name.startswith("name: Input should be a valid string, got ['lololol'")
    assert len(name) <= len("name: Input should be a valid string, got ") + MAX_SHOWN_CHARS
    assert len(problems) == MAX_PROBLEMS and problems[-1].startswith("... and ")
    assert len(str(info.value)) < 100 * MAX_PROBLEMS


def test_yaml_must_be_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(TINY_SPACE.replace("name: tiny", "description: caf\xe9\nname: tiny").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml(?s:.*)not UTF-8"):
        load_space_config(path)
