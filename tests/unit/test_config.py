"""Configuration: priority chain, files, profiles, validation."""

import json
import warnings
from pathlib import Path

import pytest

import clustrix
from clustrix import ClusterConfig, ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_match_the_design() -> None:
    config = ClusterConfig()
    assert config.cluster_type == "local"
    assert config.cluster_port == 22
    assert config.remote_work_dir == "~/.clustrix"
    assert config.job_poll_interval == 30
    assert config.max_channels == 8
    assert config.cleanup_remote_files is True
    assert config.accept_new_host_keys is False
    assert config.k8s_job_ttl_seconds == 600


def test_priority_runtime_over_file_over_env_over_default(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLUSTRIX_CLUSTER_HOST", "from-env")
    monkeypatch.setenv("CLUSTRIX_USERNAME", "env-user")
    monkeypatch.setenv("CLUSTRIX_DEFAULT_CORES", "3")
    write(isolated_config / "clustrix.yml", "cluster_host: from-file\nusername: file-user\n")
    config = ClusterConfig(username="runtime-user")
    assert config.username == "runtime-user"  # runtime beats file
    assert config.cluster_host == "from-file"  # file beats env
    assert config.default_cores == 3  # env beats default
    assert config.cluster_port == 22  # default


def test_project_file_beats_user_file_beats_nothing(isolated_config: Path) -> None:
    home = Path.home()
    write(home / ".clustrix" / "config.yml", "cluster_host: user-host\nusername: someone\n")
    write(isolated_config / "clustrix.yml", "cluster_host: project-host\n")
    config = ClusterConfig()
    assert config.cluster_host == "project-host"
    assert config.username == "someone"  # merged from the user file


def test_json_files_are_read(isolated_config: Path) -> None:
    write(isolated_config / "clustrix.json", json.dumps({"cluster_type": "ssh"}))
    assert ClusterConfig().cluster_type == "ssh"


def test_unknown_field_in_file_names_file_and_field(isolated_config: Path) -> None:
    path = write(isolated_config / "clustrix.yml", "cluster_hots: typo\n")
    with pytest.raises(ConfigError) as info:
        ClusterConfig()
    assert str(path) in str(info.value)
    assert "cluster_hots" in str(info.value)


def test_bad_value_in_file_names_the_file(isolated_config: Path) -> None:
    path = write(isolated_config / "clustrix.yml", "default_memory: lots\n")
    with pytest.raises(ConfigError) as info:
        ClusterConfig()
    assert "lots" in str(info.value)
    assert str(path) in str(info.value)


def test_profiles_select_a_named_cluster(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        isolated_config / "clustrix.yml",
        "cluster_type: ssh\ncluster_host: base\nprofiles:\n"
        "  gpu:\n    cluster_type: slurm\n    default_partition: gpu\n",
    )
    assert ClusterConfig().cluster_type == "ssh"
    gpu = ClusterConfig(profile="gpu")
    assert (gpu.cluster_type, gpu.default_partition, gpu.cluster_host) == ("slurm", "gpu", "base")
    monkeypatch.setenv("CLUSTRIX_PROFILE", "gpu")
    assert ClusterConfig().cluster_type == "slurm"


def test_unknown_profile_lists_the_known_ones(isolated_config: Path) -> None:
    write(isolated_config / "clustrix.yml", "profiles:\n  a: {}\n  b: {}\n")
    with pytest.raises(ConfigError, match="a, b"):
        ClusterConfig(profile="c")


def test_unknown_field_in_profile_is_named(isolated_config: Path) -> None:
    write(isolated_config / "clustrix.yml", "profiles:\n  gpu:\n    coers: 4\n")
    with pytest.raises(ConfigError, match=r"profile 'gpu'.*coers"):
        ClusterConfig()


def test_runtime_unknown_field_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown field 'hostname'.*cluster_host"):
        ClusterConfig(hostname="x")


def test_memory_and_time_are_normalised() -> None:
    config = ClusterConfig(default_memory="4GB", default_time="90:00")
    assert config.default_memory == "4G"
    assert config.default_time == "01:30:00"


def test_bad_memory_names_the_value() -> None:
    with pytest.raises(ConfigError, match="'4X'"):
        ClusterConfig(default_memory="4X")


def test_cleanup_on_success_is_an_alias(isolated_config: Path) -> None:
    assert ClusterConfig(cleanup_on_success=False).cleanup_remote_files is False
    write(isolated_config / "clustrix.yml", "cleanup_on_success: false\n")
    assert ClusterConfig().cleanup_remote_files is False


def test_password_is_secret_in_repr_and_errors() -> None:
    config = ClusterConfig(password="hunter2")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.model_dump())
    assert config.password is not None
    assert config.password.get_secret_value() == "hunter2"


def test_env_lists_and_dicts_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTRIX_MODULE_LOADS", '["gcc/12", "python/3.11"]')
    monkeypatch.setenv("CLUSTRIX_ENVIRONMENT_VARIABLES", '{"OMP_NUM_THREADS": "4"}')
    config = ClusterConfig()
    assert config.module_loads == ["gcc/12", "python/3.11"]
    assert config.environment_variables == {"OMP_NUM_THREADS": "4"}


def test_configure_get_config_and_load_config(isolated_config: Path) -> None:
    assert clustrix.get_config().cluster_type == "local"
    clustrix.configure(cluster_host="a", username="u")
    clustrix.configure(cluster_port=2222)
    config = clustrix.get_config()
    assert (config.cluster_host, config.username, config.cluster_port) == ("a", "u", 2222)
    with pytest.raises(ConfigError):
        clustrix.configure(cluster_port="not a port")
    assert clustrix.get_config().cluster_port == 2222  # a failed configure changes nothing
    path = write(isolated_config / "other.yaml", "cluster_type: sge\ncluster_host: b\n")
    loaded = clustrix.load_config(path)
    assert (loaded.cluster_type, loaded.cluster_host, loaded.username) == ("sge", "b", None)
    assert clustrix.get_config() == loaded
    with pytest.raises(ConfigError, match="does not exist"):
        clustrix.load_config(isolated_config / "missing.yml")


def test_config_is_immutable() -> None:
    config = ClusterConfig()
    with pytest.raises(Exception, match="frozen"):
        config.cluster_host = "x"  # type: ignore[misc]


def test_a_misspelt_environment_variable_is_warned_about_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLUSTRIX_CLUSTER_HOTS", "typo")
    with pytest.warns(UserWarning, match="CLUSTRIX_CLUSTER_HOTS") as record:
        config = ClusterConfig()
    assert config.cluster_host is None  # ignored, but no longer silently
    (message,) = [str(w.message) for w in record]
    assert "did you mean CLUSTRIX_CLUSTER_HOST (field 'cluster_host')" in message


def test_an_alias_in_the_environment_points_at_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTRIX_CLEANUP_ON_SUCCESS", "false")
    with pytest.warns(UserWarning, match="CLUSTRIX_CLEANUP_REMOTE_FILES"):
        ClusterConfig()


def test_clustrixs_own_variables_and_fields_are_not_warned_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = {
        "CLUSTRIX_IN_JOB": "1",
        "CLUSTRIX_TASK_INDEX": "3",
        "CLUSTRIX_K8S_PAYLOAD": "/p",
        "CLUSTRIX_K8S_WORK": "/w",
        "CLUSTRIX_K8S_PYTHON": "3.11",
        "CLUSTRIX_K8S_RESULT_LIMIT": "1",
        "CLUSTRIX_K8S_TASK_TIME": "1",
        "CLUSTRIX_LAB_STATUS": "up",
        "CLUSTRIX_LAB_FLAVOR": "pbs",
        "CLUSTRIX_TEST_KUBECONFIG": "/k",
        "CLUSTRIX_TEST_K8S_NAMESPACE": "ns",
        "CLUSTRIX_UPDATE_GOLDEN": "1",
        "CLUSTRIX_DEFAULT_CORES": "2",  # fields, of course
        "clustrix_username": "lower-case works too",
        "CLUSTRIX_K8S_PENDING_GRACE_SECONDS": "5",
    }
    for name, value in own.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = ClusterConfig()
    assert config.default_cores == 2 and config.username == "lower-case works too"


async def test_a_job_sees_no_warning_about_the_variables_clustrix_sets() -> None:
    @clustrix.cluster
    def build_config() -> list[str]:
        import os

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clustrix.ClusterConfig()
        assert os.environ["CLUSTRIX_IN_JOB"] == "1"
        return [str(w.message) for w in caught]

    assert await build_config() == []
