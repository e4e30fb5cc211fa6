"""Settings from the environment and the connection string."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from sample.settings import (
    TOKEN_SCOPE,
    Authentication,
    AuthenticationError,
    Settings,
    SettingsError,
    check_credential,
    create_credential,
    load_settings,
)

CONNECTION_STRING = "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"


def test_defaults_match_emulator() -> None:
    settings = load_settings({})
    assert settings.endpoint == "http://localhost:8080"
    assert settings.taskhub == "default"
    assert settings.authentication is Authentication.NONE
    assert settings.secure is False


def test_https_without_client_id_uses_default_azure() -> None:
    settings = load_settings({"ENDPOINT": "https://s.westus.durabletask.io", "TASKHUB": "hub"})
    assert settings.authentication is Authentication.DEFAULT_AZURE
    assert settings.secure is True


def test_https_with_client_id_uses_managed_identity() -> None:
    settings = load_settings(
        {
            "ENDPOINT": "https://s.westus.durabletask.io/",
            "TASKHUB": "hub",
            "AZURE_MANAGED_IDENTITY_CLIENT_ID": "1111-2222",
        }
    )
    assert settings.authentication is Authentication.MANAGED_IDENTITY
    assert settings.client_id == "1111-2222"
    assert settings.endpoint == "https://s.westus.durabletask.io"


def test_http_ignores_client_id_for_auth() -> None:
    settings = load_settings(
        {"ENDPOINT": "http://127.0.0.1:9", "AZURE_MANAGED_IDENTITY_CLIENT_ID": "x"}
    )
    assert settings.authentication is Authentication.NONE


def test_connection_string_replaces_variables() -> None:
    settings = load_settings(
        {
            "ENDPOINT": "http://ignored:1",
            "DURABLE_TASK_SCHEDULER_CONNECTION_STRING": (
                "Endpoint=https://s.durabletask.io;TaskHub=hub1;"
                "Authentication=ManagedIdentity;ClientID=abc"
            ),
        }
    )
    assert settings == Settings(
        "https://s.durabletask.io", "hub1", Authentication.MANAGED_IDENTITY, "abc"
    )


def test_connection_string_keys_are_case_insensitive() -> None:
    settings = load_settings(
        {
            "DURABLE_TASK_SCHEDULER_CONNECTION_STRING": (
                "endpoint=http://localhost:8080; taskhub=default; authentication=none;"
            )
        }
    )
    assert settings == Settings("http://localhost:8080", "default", Authentication.NONE)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"ENDPOINT": "localhost:8080"},
            "ENDPOINT is invalid: 'localhost:8080' has no http:// or https://",
        ),
        ({"ENDPOINT": "grpc://localhost:8080"}, "ENDPOINT is invalid"),
        ({"ENDPOINT": "http://"}, "ENDPOINT is invalid: 'http://' has no valid host name"),
        ({"ENDPOINT": "http://local host:8080"}, "has no valid host name"),
        ({"ENDPOINT": "http://localhost"}, "has no port; a plaintext endpoint needs one"),
        ({"ENDPOINT": "http://localhost:99999"}, "a port that is not a number from 1 to 65535"),
        ({"ENDPOINT": "http://user:pw@localhost:8080"}, "must not contain a user name or password"),
        ({"ENDPOINT": "http://localhost:80a"}, "has a port that is not a number"),
        ({"ENDPOINT": "http://localhost:8080/api"}, "must not have a path"),
        ({"TASKHUB": ""}, "TASKHUB is empty"),
        ({"TASKHUB": "   "}, "TASKHUB is empty"),
        ({"TASKHUB": "my hub"}, "TASKHUB is invalid"),
        ({"TASKHUB": "\u00c4\u00d6"}, "must be printable ASCII with no spaces"),
        ({"TASKHUB": "hub\x07"}, "must be printable ASCII with no spaces"),
        (
            {CONNECTION_STRING: "Endpoint=http://x:1;TaskHub=h"},
            "DURABLE_TASK_SCHEDULER_CONNECTION_STRING is missing Authentication=",
        ),
        (
            {CONNECTION_STRING: "Endpoint=http://x:1;TaskHub;Authentication=None"},
            "'TaskHub' is not a Key=Value pair",
        ),
        (
            {CONNECTION_STRING: "Endpoint=http://x:1;TaskHub=h;Authentication=Magic"},
            "invalid Authentication 'Magic'; use one of: None, ManagedIdentity, DefaultAzure",
        ),
        (
            {CONNECTION_STRING: "Endpoint=http://x:1;TaskHub=h;Authentication=None;Colour=red"},
            "unknown key 'Colour'",
        ),
        (
            {CONNECTION_STRING: "Endpoint=x:1;TaskHub=h;Authentication=None"},
            "Endpoint in DURABLE_TASK_SCHEDULER_CONNECTION_STRING is invalid",
        ),
        (
            {CONNECTION_STRING: "Endpoint=http://x:1;TaskHub=;Authentication=None"},
            "TaskHub in DURABLE_TASK_SCHEDULER_CONNECTION_STRING is empty",
        ),
        (
            {CONNECTION_STRING: "Endpoint=http://x:1;TaskHub=h;TaskHub=g;Authentication=None"},
            "sets TaskHub twice",
        ),
        (
            {CONNECTION_STRING: "Endpoint=http://x:1;TaskHub=h;Authentication=DefaultAzure"},
            "plaintext endpoint",
        ),
    ],
)
def test_invalid_settings_name_the_variable(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert expected in str(raised.value)


def test_no_credential_for_plaintext_endpoint() -> None:
    assert create_credential(load_settings({})) is None


# Azure itself cannot be reached from the test machines, so these two tests use a
# stand-in credential. Getting a real token would need a real identity.
class FailingCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError("ManagedIdentityCredential authentication unavailable")


class RecordingCredential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("token", 2_000_000_000)


def test_auth_failure_is_a_clear_error() -> None:
    settings = Settings(
        "https://s.durabletask.io", "hub", Authentication.MANAGED_IDENTITY, "abc-123"
    )
    with pytest.raises(AuthenticationError) as raised:
        check_credential(FailingCredential(), settings)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "https://s.durabletask.io" in message
    assert "abc-123" in message
    assert "authentication unavailable" in message


def test_credential_check_uses_scheduler_scope() -> None:
    credential = RecordingCredential()
    settings = Settings("https://s.durabletask.io", "hub", Authentication.DEFAULT_AZURE)
    check_credential(credential, settings)  # type: ignore[arg-type]
    assert credential.scopes == [TOKEN_SCOPE]
