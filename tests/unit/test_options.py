"""`@cluster` options are validated at decoration time."""

import datetime

import pytest

from clustrix import ClusterConfig, ConfigError, cluster
from clustrix._options import (
    OPTION_NAMES,
    Conda,
    Inherit,
    Replicate,
    Venv,
    parse_environment,
)


def f(x: int) -> int:
    return x


def test_bare_and_called_forms() -> None:
    assert cluster(f).__wrapped__ is f
    assert cluster()(f).__wrapped__ is f
    assert cluster(cores=2)(f).cluster_options.cores == 2
    assert cluster(f).__name__ == "f"


def test_unknown_option_is_type_error_naming_valid_ones() -> None:
    with pytest.raises(TypeError) as info:
        cluster(coers=4)
    assert "coers" in str(info.value)
    for name in OPTION_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"memory": "4X"}, "'4X'"),
        ({"time": "10"}, "ambiguous"),
        ({"time": 600}, "ambiguous"),
        ({"cores": 0}, "cores=0"),
        ({"cores": "2"}, "cores='2'"),
        ({"gpus": -1}, "gpus=-1"),
        ({"environment": "conda"}, None),
        ({"environment": "weird thing!"}, "environment="),
        ({"partition": "a\nb"}, "partition="),
        ({"extra": ["qos"]}, "extra="),
        ({"max_concurrent": 0}, "max_concurrent=0"),
        ({"config": {"cluster_type": "slurm"}}, "ClusterConfig"),
    ],
)
def test_bad_values_raise_config_error(options: dict[str, object], fragment: str | None) -> None:
    if fragment is None:  # a bare conda environment name is valid
        cluster(**options)(f)
        return
    with pytest.raises(ConfigError, match=fragment):
        cluster(**options)


def test_memory_and_time_are_parsed() -> None:
    options = cluster(memory="4GB", time="01:00:00")(f).cluster_options
    assert options.memory == 4 * 1024**3
    assert options.time == 3600
    assert cluster(time=datetime.timedelta(minutes=2))(f).cluster_options.time == 120


def test_queue_and_partition_are_synonyms() -> None:
    assert cluster(queue="gpu")(f).cluster_options.partition == "gpu"
    assert cluster(queue="gpu", partition="gpu")(f).cluster_options.partition == "gpu"
    with pytest.raises(ConfigError, match="synonyms"):
        cluster(queue="a", partition="b")


def test_options_returns_a_new_function_with_overrides() -> None:
    base = cluster(cores=2, memory="1G")(f)
    changed = base.options(cores=8, partition="gpu")
    assert changed is not base
    assert (changed.cluster_options.cores, changed.cluster_options.partition) == (8, "gpu")
    assert changed.cluster_options.memory == 1024**3
    assert base.cluster_options.cores == 2
    with pytest.raises(TypeError, match="valid options"):
        base.options(bogus=1)


def test_options_resolve_against_config_defaults() -> None:
    config = ClusterConfig(
        default_cores=4, default_memory="2G", default_time="00:30:00", default_queue="q"
    )
    resources = cluster(f).cluster_options.resolve(config)
    assert (resources.cores, resources.memory, resources.time) == (4, 2 * 1024**3, 1800)
    assert resources.partition == "q"
    resources = cluster(cores=1, partition="p")(f).cluster_options.resolve(config)
    assert (resources.cores, resources.partition) == (1, "p")


def test_conda_env_name_means_a_conda_environment() -> None:
    resources = cluster(f).cluster_options.resolve(ClusterConfig(conda_env_name="ml"))
    assert resources.environment == Conda("ml")


@pytest.mark.parametrize(
    ("text", "choice"),
    [("inherit", Inherit()), ("replicate", Replicate()), ("conda:ml", Conda("ml")),
     ("ml-2.1", Conda("ml-2.1")), ("venv:~/v", Venv("~/v")), ("/opt/v", Venv("/opt/v")),
     ("~/v", Venv("~/v"))],
)  # fmt: skip
def test_environment_is_parsed_once_into_a_typed_choice(text: str, choice: object) -> None:
    assert parse_environment(text) == choice
    assert cluster(environment=text)(f).cluster_options.environment == choice
    config = ClusterConfig(environment=text)
    assert cluster(f).cluster_options.resolve(config).environment == choice


def test_an_unknown_environment_in_the_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="environment='weird thing!'"):
        cluster(f).cluster_options.resolve(ClusterConfig(environment="weird thing!"))


def test_profile_binds_a_config(isolated_config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (isolated_config / "clustrix.yml").write_text("profiles:\n  big:\n    default_cores: 9\n")
    bound = cluster(profile="big")(f).cluster_options.config
    assert bound is not None and bound.default_cores == 9
    with pytest.raises(ConfigError, match="unknown profile"):
        cluster(profile="nope")
    with pytest.raises(ConfigError, match="either"):
        cluster(profile="big", config=ClusterConfig())


def test_decorating_a_non_callable_fails() -> None:
    with pytest.raises(TypeError):
        cluster(cores=1)(42)  # type: ignore[arg-type]
