from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from shared.config import ConfigError, Settings, load_settings, load_settings_without_dev_stack

ENV_VARS = [
    "TEMPORAL_CLOUD_NAMESPACE",
    "TEMPORAL_CLOUD_ADDRESS",
    "TEMPORAL_CLOUD_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
    "JWT_SECRET",
    "ENVIRONMENT",
    "TEMPERATURE",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the working tree


def test_defaults_match_the_original_design() -> None:
    s = load_settings()
    assert s.inactivity_timeout_minutes == 5
    assert s.max_tokens == 512
    assert s.temperature == 0.1
    assert s.top_p == 0.2
    assert s.max_concurrent_activities == 20
    assert s.max_concurrent_workflow_tasks == 10
    assert s.max_concurrent_activity_tasks == 20
    assert s.db_pool_size == 20
    assert s.db_max_overflow == 30
    assert s.openai_chat_model == "gpt-4o-mini"
    assert s.openai_search_model == "gpt-4o-search-preview"
    assert s.database_url is None and s.redis_url is None and s.jwt_secret is None


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TEMPERATURE", "5", "TEMPERATURE: Input should be less than or equal to 2"),
        ("TOP_P", "0", "TOP_P: Input should be greater than 0"),
        ("MAX_TOKENS", "lots", "MAX_TOKENS: Input should be a valid integer"),
        ("DB_POOL_SIZE", "0", "DB_POOL_SIZE: Input should be greater than or equal to 1"),
        ("TEMPORAL_ADDRESS", "localhost", "TEMPORAL_ADDRESS: expected host:port"),
        ("OPENAI_BASE_URL", "api.openai.com", "OPENAI_BASE_URL: expected an http(s) URL"),
        ("REDIS_URL", "http://x", "REDIS_URL: expected a redis:// or rediss:// URL"),
        ("ENVIRONMENT", "staging", "ENVIRONMENT: Input should be 'development' or 'production'"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert expected in str(info.value)


def test_secret_values_never_appear_in_errors_or_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "postgres://u:hunter2-very-secret@h/db"
    monkeypatch.setenv("DATABASE_URL", secret.replace("postgres://", "mysql://"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "DATABASE_URL: expected a postgresql:// URL" in str(info.value)
    assert "hunter2" not in str(info.value)

    monkeypatch.setenv("DATABASE_URL", secret)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef")
    s = load_settings()
    assert "hunter2" not in repr(s) and "sk-live-abcdef" not in repr(s)
    assert "hunter2" not in str(s.model_dump())
    assert s.openai_api_key is not None
    assert s.openai_api_key.get_secret_value() == "sk-live-abcdef"


def test_cloud_key_requires_namespace_and_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_CLOUD_API_KEY", "key")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TEMPORAL_CLOUD_NAMESPACE and TEMPORAL_CLOUD_ADDRESS must be set" in str(info.value)
    monkeypatch.setenv("TEMPORAL_CLOUD_NAMESPACE", "ns.acct")
    monkeypatch.setenv("TEMPORAL_CLOUD_ADDRESS", "us-east-1.aws.api.temporal.io:7233")
    assert load_settings().temporal_cloud_enabled


def test_partial_databricks_config_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "DATABRICKS_TOKEN" in str(info.value) and "DATABRICKS_INDEX_NAME" in str(info.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OIDC_ISSUER": "https://id.example.com"}, "OIDC_AUDIENCE must be too"),
        ({"OIDC_ISSUER": "http://id.example.com", "OIDC_AUDIENCE": "a"}, "must be an https URL"),
        ({"OIDC_ISSUER": "id.example.com", "OIDC_AUDIENCE": "a"}, "must be an https URL"),
        ({"OIDC_ROLE_MAP": '{"ops": "root"}'}, "OIDC_ROLE_MAP"),
    ],
)
def test_the_oidc_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_production_may_sign_in_with_oidc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("OIDC_ISSUER", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab")
    monkeypatch.setenv("OIDC_AUDIENCE", "client-123")
    monkeypatch.setenv("OIDC_ROLE_MAP", '{"support": "agent"}')
    settings = load_settings()
    assert settings.jwt_secret is None and settings.oidc_role_map == {"support": "agent"}
    monkeypatch.setenv("OIDC_ISSUER", "http://localhost:8080/realms/dev")  # http on localhost
    assert load_settings().oidc_issuer == "http://localhost:8080/realms/dev"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ARTIFACT_STORE": "s3"}, "ARTIFACT_STORE=s3 needs ARTIFACT_S3_BUCKET"),
        ({"ARTIFACT_STORE": "disk"}, "ARTIFACT_STORE"),
        ({"ARTIFACT_STORE": "s3", "ARTIFACT_S3_BUCKET": "x"}, "ARTIFACT_S3_BUCKET"),  # too short
        (
            {
                "ARTIFACT_STORE": "s3",
                "ARTIFACT_S3_BUCKET": "b1",
                "ARTIFACT_S3_ENDPOINT_URL": "nope",
            },
            "ARTIFACT_S3_ENDPOINT_URL",
        ),
    ],
)
def test_the_artifact_store_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (None, "JWT_SECRET or OIDC_ISSUER must be set"),
        ("changeme", "JWT_SECRET is a placeholder"),
        ("short-but-real", "at least 32 characters"),
    ],
)
def test_production_refuses_weak_jwt_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None, expected: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    if secret is not None:
        monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_reads_env_files_with_environment_taking_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("MAX_TOKENS=100\nTEMPERATURE=0.5\n")
    (tmp_path / ".env.cloud").write_text("MAX_TOKENS=200\nOPENAI_CHAT_MODEL=gpt-4.1-mini\n")
    monkeypatch.setenv("TEMPERATURE", "0.7")
    s = Settings()
    assert s.max_tokens == 200  # .env.cloud overrides .env
    assert s.openai_chat_model == "gpt-4.1-mini"
    assert s.temperature == 0.7  # the environment overrides both files


def test_example_file_documents_every_variable() -> None:
    example = Path(__file__).parents[2] / ".env.cloud.example"
    text = example.read_text()
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in text.splitlines()
        if "=" in line and not line.startswith("# ")
    }
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f"undocumented in .env.cloud.example: {sorted(missing)}"
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert "sk-" not in line, "no real-looking secrets in the example"


def test_a_running_dev_stack_is_found_and_a_dead_one_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 16: other commands find `chatbot dev`'s stack through its dev.env, in
    CHATBOT_HOME when set, but only while that dev runs (holds dev.lock): a SIGKILLed dev
    leaves the file, and its dead URLs are no configuration."""
    home = tmp_path / "elsewhere"
    home.mkdir()
    (home / "dev.env").write_text("OPENAI_CHAT_MODEL=from-dev-env\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATBOT_HOME", str(home))
    assert load_settings().openai_chat_model == "gpt-4o-mini"  # no lock file: not running
    with (home / "dev.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running dev holds
        assert load_settings().openai_chat_model == "from-dev-env"
        assert load_settings_without_dev_stack().openai_chat_model == "gpt-4o-mini"
    assert load_settings().openai_chat_model == "gpt-4o-mini"  # released: a dead stack
