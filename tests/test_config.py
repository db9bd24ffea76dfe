"""Run config: validation messages name the key, overrides, run-id stability, shipped YAMLs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, RunConfig, build_config, load_config

from conftest import REPO_ROOT

BASE = {"benchmark": {"name": "chair", "root": "data/coco"}}


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"unknown key 'method\.alhpa'"):
        build_config({**BASE, "method": {"name": "sgrs", "alhpa": 0.3}})


def test_unknown_top_level_section_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown key 'modle'"):
        build_config({**BASE, "modle": {"name": "llava15"}})


def test_unknown_model_suggests_close_match():
    with pytest.raises(ConfigError, match=r"unknown model 'lava15'; did you mean 'llava15'"):
        build_config({**BASE, "model": {"name": "lava15"}})


def test_unknown_method_and_benchmark_are_named():
    with pytest.raises(ConfigError, match=r"'method\.name': unknown method 'sgr'"):
        build_config({**BASE, "method": {"name": "sgr"}})
    with pytest.raises(ConfigError, match=r"unknown benchmark 'chiar'; did you mean 'chair'"):
        build_config({"benchmark": {"name": "chiar", "root": "x"}})


def test_wrong_type_and_bad_range_name_the_key():
    with pytest.raises(ConfigError, match=r"'generation\.max_new_tokens'"):
        build_config({**BASE, "generation": {"max_new_tokens": "many"}})
    with pytest.raises(ConfigError, match=r"'method\.top_k'.*greater than or equal to 1"):
        build_config({**BASE, "method": {"name": "sgrs", "top_k": -5}})


def test_missing_benchmark_root_is_named():
    with pytest.raises(ConfigError, match=r"missing required key 'benchmark\.root'"):
        build_config({"benchmark": {"name": "chair"}})


def test_overrides_parse_yaml_values_and_reject_malformed():
    config = build_config(BASE, ["method.name=sgrs", "method.alpha=0.3", "method.target_layers=[4, 5]"])
    assert config.method.name == "sgrs"
    assert config.method.alpha == 0.3
    assert config.method.target_layers == (4, 5)
    with pytest.raises(ConfigError, match="expected key=value"):
        build_config(BASE, ["method.alpha"])
    with pytest.raises(ConfigError, match=r"unknown key 'method\.gamma'"):
        build_config(BASE, ["method.gamma=2"])


def test_run_id_is_stable_and_tracks_only_what_changes_outputs():
    config = build_config(BASE)
    assert config.run_id == build_config(BASE).run_id
    assert config.run_id.startswith("chair-llava15-greedy-")
    # Key order in the file does not matter.
    reordered = build_config({"seed": 0, "benchmark": {"root": "data/coco", "name": "chair"}})
    assert reordered.run_id == config.run_id
    # Resources, batch size and output folder do not change what is generated.
    same = build_config(
        BASE, ["resources.num_actors=4", "generation.batch_size=1", "output_dir=/elsewhere", "scoring.judge=exact"]
    )
    assert same.run_id == config.run_id
    for override in ("method.name=sample", "seed=1", "generation.max_new_tokens=10", "benchmark.limit=5"):
        assert build_config(BASE, [override]).run_id != config.run_id, override


def test_run_id_is_pinned_for_a_fixed_config():
    # A change to the hashing (or a default) silently orphans users' finished runs; pin it.
    config = build_config(BASE)
    assert config.config_hash == build_config(config.model_dump(mode="json")).config_hash
    assert len(config.config_hash) == 64


def test_load_config_errors_name_the_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listed)


@pytest.mark.parametrize(
    "path", sorted(p for p in (REPO_ROOT / "configs").rglob("*.yaml") if "grids" not in p.parts and "suites" not in p.parts),
    ids=lambda p: str(p.relative_to(REPO_ROOT)),
)
def test_every_shipped_run_config_loads(path: Path):
    config = load_config(path)
    assert isinstance(config, RunConfig)
    assert yaml.safe_load(path.read_text())["model"]["name"] == config.model.name


def test_scoring_settings_are_validated_but_do_not_change_the_run_id():
    config = build_config(BASE, ["scoring.judge=openai:gpt-3.5-turbo", "scoring.tagger=aptagger"])
    assert config.run_id == build_config(BASE).run_id  # re-scoring reuses the generations
    with pytest.raises(ConfigError, match=r"'scoring\.tagger'"):
        build_config(BASE, ["scoring.tagger=spacy"])


def test_each_method_has_its_own_parameters_and_only_they_enter_the_run_id():
    from pipeline.config import METHOD_CONFIGS, MethodConfig, SgrsConfig
    from pipeline.methods import METHODS

    assert set(METHOD_CONFIGS) == set(METHODS.names())  # every registered method has parameters
    assert isinstance(MethodConfig(name="sgrs", alpha=0.3), SgrsConfig)
    greedy = build_config(BASE)
    assert greedy.identity()["method"] == {"name": "greedy", "key_span": "post_image", "target_layers": None,
                                           "record_saliency": False}
    with pytest.raises(ConfigError, match=r"unknown key 'method\.alpha'; method 'greedy' takes: key_span"):
        build_config(BASE, ["method.alpha=0.3"])  # greedy has no alpha: an error, not a new run id
    sgrs = build_config(BASE, ["method.name=sgrs"])
    assert sgrs.run_id != build_config(BASE, ["method.name=sgrs", "method.alpha=0.3"]).run_id
    assert "num_beams" not in sgrs.identity()["method"]
    beam = build_config(BASE, ["method.name=beam", "method.num_beams=3"])
    assert (beam.method.num_beams, beam.method.length_penalty) == (3, 1.0)
    assert build_config(BASE, ["method.name=opera"]).method.scale_factor == 50.0


def test_unknown_method_key_gets_did_you_mean_and_sgrs_checks_r_against_k():
    with pytest.raises(ConfigError, match=r"unknown key 'method\.alhpa'; did you mean 'method\.alpha'\?"):
        build_config({**BASE, "method": {"name": "sgrs", "alhpa": 0.3}})
    with pytest.raises(ConfigError, match=r"unknown key 'method\.cd_alhpa'; did you mean 'method\.cd_alpha'\?"):
        build_config(BASE, ["method.name=vcd", "method.cd_alhpa=1"])
    with pytest.raises(ConfigError, match=r"method\.max_rejections \(4\) exceeds method\.top_k \(3\)"):
        build_config(BASE, ["method.name=sgrs", "method.top_k=3", "method.max_rejections=4"])
    with pytest.raises(ConfigError, match=r"unknown method 'bema'; did you mean 'beam'"):
        build_config(BASE, ["method.name=bema"])
