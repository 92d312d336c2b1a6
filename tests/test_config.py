"""Experiment params: every file validates; typos and bad values are errors naming file and field."""
import pytest

from boundary import config


def all_experiments():
    return sorted(str(p.relative_to(config.PARAMS))[:-5] for p in config.PARAMS.rglob("*.yaml"))


@pytest.mark.parametrize("name", all_experiments())
def test_every_params_file_validates(name):
    cfg = config.load(name)
    assert cfg.name == name


@pytest.fixture
def params_dir(tmp_path, monkeypatch):
    """A private params/ folder, so tests can write broken experiments."""
    monkeypatch.setattr(config, "PARAMS", tmp_path)
    return tmp_path


GOOD = "replay:\n  path: x.csv\n  models: {base: b, rl: r}\n"


@pytest.mark.parametrize("text,message", [
    (GOOD + "seeed: 3\n", "unknown field 'seeed'"),  # top-level typo
    (GOOD + "passk:\n  bootstrapp: 10\n", "unknown field 'passk.bootstrapp'"),  # nested typo
    (GOOD + "passk:\n  bootstrap: many\n", "field 'passk.bootstrap'"),  # wrong type
    (GOOD + "passk:\n  ci: 1.5\n", "field 'passk.ci'"),  # out of range
    ("seed: 1\n", "needs a source of samples"),  # nothing to analyse
    ("- a\n- b\n", "top level must be a mapping"),
    ("replay: [unclosed\n", "not valid YAML"),
    (GOOD + "name: other\n", "set from the file name"),
])
def test_errors_name_file_and_field(params_dir, text, message):
    (params_dir / "broken.yaml").write_text(text)
    with pytest.raises(config.ConfigError, match=message) as e:
        config.load("broken")
    assert "broken.yaml" in str(e.value)


def test_unknown_experiment_lists_known_ones(params_dir):
    (params_dir / "good.yaml").write_text(GOOD)
    with pytest.raises(config.ConfigError, match="no such experiment 'gdoo'; known: good"):
        config.load("gdoo")


def test_overrides_apply_and_none_keeps_the_file_value(params_dir):
    (params_dir / "good.yaml").write_text(GOOD + "passk:\n  bootstrap: 300\n")
    assert config.load("good", {"passk.bootstrap": None}).passk.bootstrap == 300
    assert config.load("good", {"passk.bootstrap": 50, "seed": 7}).passk.bootstrap == 50
    with pytest.raises(config.ConfigError, match="unknown field 'passk.bootstrp'"):
        config.load("good", {"passk.bootstrp": 50})


def test_experiments_are_frozen():
    cfg = config.load("smoke")
    with pytest.raises(Exception):
        cfg.seed = 3


def test_paths_are_anchored_at_the_repository_root():
    cfg = config.load("smoke")
    assert cfg.figures_dir == config.ROOT / "figures" / "smoke"
    assert cfg.resolve("params/smoke.yaml") == config.PARAMS / "smoke.yaml"
