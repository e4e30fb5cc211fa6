"""Connection settings shared by the worker and the client.

Every setting comes from the environment and is validated once, at start-up,
so that a typo fails with the variable's name instead of as a gRPC error later.

| variable | default | meaning |
| --- | --- | --- |
| ENDPOINT | http://localhost:8080 | scheduler gRPC endpoint; the scheme decides TLS |
| TASKHUB | default | task hub name |
| AZURE_MANAGED_IDENTITY_CLIENT_ID | (unset) | client ID of a user-assigned managed identity |
| DURABLE_TASK_SCHEDULER_CONNECTION_STRING | (unset) | replaces the three above when set |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

DEFAULT_ENDPOINT = "http://localhost:8080"
DEFAULT_TASKHUB = "default"

# The scope the Durable Task Scheduler accepts tokens for (durabletask-azuremanaged 1.12.0
# requests the same one).
TOKEN_SCOPE = "https://durabletask.io/.default"

CONNECTION_STRING_VARIABLE = "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"


class SettingsError(ValueError):
    """An environment variable is missing or invalid."""


class AuthenticationError(RuntimeError):
    """No token could be obtained for the scheduler."""


class Authentication(Enum):
    NONE = "None"
    MANAGED_IDENTITY = "ManagedIdentity"
    DEFAULT_AZURE = "DefaultAzure"


@dataclass(frozen=True)
class Settings:
    endpoint: str
    taskhub: str
    authentication: Authentication
    client_id: str | None = None

    @property
    def secure(self) -> bool:
        return self.endpoint.startswith("https://")

    def describe(self) -> str:
        """Return a one-line summary for logs; it contains no secret."""
        text = (
            f"endpoint {self.endpoint}, task hub '{self.taskhub}', auth {self.authentication.value}"
        )
        if self.client_id:
            text += f" (client ID {self.client_id})"
        return text


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment, raising SettingsError on bad values."""
    env = os.environ if environ is None else environ
    connection_string = env.get(CONNECTION_STRING_VARIABLE)
    if connection_string is not None:
        return parse_connection_string(connection_string)

    endpoint = validate_endpoint(env.get("ENDPOINT", DEFAULT_ENDPOINT), "ENDPOINT")
    taskhub = validate_taskhub(env.get("TASKHUB", DEFAULT_TASKHUB), "TASKHUB")
    client_id = env.get("AZURE_MANAGED_IDENTITY_CLIENT_ID", "").strip() or None

    if endpoint.startswith("http://"):
        # A plaintext endpoint is the emulator or the local scheduler, which take no token.
        authentication = Authentication.NONE
    elif client_id:
        authentication = Authentication.MANAGED_IDENTITY
    else:
        authentication = Authentication.DEFAULT_AZURE
    return Settings(endpoint, taskhub, authentication, client_id)


def parse_connection_string(text: str) -> Settings:
    """Parse `Endpoint=...;TaskHub=...;Authentication=...;ClientID=...`.

    Keys are case-insensitive, as in the .NET, Java and JavaScript SDKs.
    """
    name = CONNECTION_STRING_VARIABLE
    fields: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, equals, value = part.partition("=")
        key = key.strip().lower()
        if not equals or not key:
            raise SettingsError(
                f"{name} is malformed: '{part.strip()}' is not a Key=Value pair. "
                "Expected Endpoint=...;TaskHub=...;Authentication=..."
            )
        if key not in _CONNECTION_STRING_KEYS:
            allowed = ", ".join(_CONNECTION_STRING_KEYS.values())
            raise SettingsError(
                f"{name} has an unknown key '{part.partition('=')[0].strip()}'; "
                f"allowed keys: {allowed}."
            )
        if key in fields:
            raise SettingsError(f"{name} sets {_CONNECTION_STRING_KEYS[key]} twice.")
        fields[key] = value.strip()

    for key in ("endpoint", "taskhub", "authentication"):
        if key not in fields:
            raise SettingsError(f"{name} is missing {_CONNECTION_STRING_KEYS[key]}=.")

    endpoint = validate_endpoint(fields["endpoint"], f"Endpoint in {name}")
    taskhub = validate_taskhub(fields["taskhub"], f"TaskHub in {name}")
    authentication = _parse_authentication(fields["authentication"])
    client_id = fields.get("clientid") or None

    if authentication is not Authentication.NONE and not endpoint.startswith("https://"):
        # A bearer token sent over plaintext could be read by anyone on the path.
        raise SettingsError(
            f"{name} asks for Authentication={authentication.value} with the plaintext endpoint "
            f"{endpoint}; use an https:// endpoint or Authentication=None."
        )
    return Settings(endpoint, taskhub, authentication, client_id)


_CONNECTION_STRING_KEYS = {
    "endpoint": "Endpoint",
    "taskhub": "TaskHub",
    "authentication": "Authentication",
    "clientid": "ClientID",
}


def _parse_authentication(value: str) -> Authentication:
    for option in Authentication:
        if value.lower() == option.value.lower():
            return option
    allowed = ", ".join(option.value for option in Authentication)
    raise SettingsError(
        f"{CONNECTION_STRING_VARIABLE} has an invalid Authentication '{value}'; "
        f"use one of: {allowed}."
    )


def validate_endpoint(value: str, name: str) -> str:
    """Return the endpoint without a trailing slash, or raise naming the variable."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or "://" not in value:
        raise SettingsError(
            f"{name} is invalid: '{value}' has no http:// or https:// scheme. "
            "Use for example http://localhost:8080 or https://<scheduler>.durabletask.io."
        )
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(
            f"{name} is invalid: '{value}' has a port that is not a number from 1 to 65535."
        ) from None
    if not parts.hostname or any(character.isspace() for character in parts.netloc):
        raise SettingsError(f"{name} is invalid: '{value}' has no valid host name.")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would be logged with it; the scheduler takes tokens instead.
        raise SettingsError(f"{name} is invalid: it must not contain a user name or password.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SettingsError(f"{name} is invalid: '{value}' must not have a path or query.")
    if parts.scheme == "http" and port is None:
        # gRPC would dial port 443 for a bare host name, never the port 80 that http implies.
        raise SettingsError(
            f"{name} is invalid: '{value}' has no port; a plaintext endpoint needs one, "
            "such as http://localhost:8080."
        )
    return f"{parts.scheme}://{parts.netloc}"


def validate_taskhub(value: str, name: str) -> str:
    """Return the task hub name, or raise naming the variable when it is empty."""
    value = value.strip()
    if not value:
        raise SettingsError(
            f"{name} is empty; set it to the task hub name (the emulator's is 'default')."
        )
    # The name travels in gRPC metadata, which allows printable ASCII only.
    if not all("!" <= character <= "~" for character in value):
        raise SettingsError(f"{name} is invalid: {value!r} must be printable ASCII with no spaces.")
    return value


def create_credential(settings: Settings) -> TokenCredential | None:
    """Create the Azure credential the settings call for, or None for plaintext endpoints."""
    if settings.authentication is Authentication.NONE:
        return None

    # Imported here so that local runs never load azure-identity's credential chain.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.authentication is Authentication.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=settings.client_id)
    return DefaultAzureCredential()


def check_credential(credential: TokenCredential | None, settings: Settings) -> None:
    """Get one token up front, so that a bad identity fails at start-up with a clear message.

    The SDK would otherwise request the token on the first call and, in the worker,
    retry the failing connection forever with a terse warning.
    """
    if credential is None:
        return

    from azure.core.exceptions import AzureError

    try:
        credential.get_token(TOKEN_SCOPE)
    except AzureError as error:
        if settings.authentication is Authentication.MANAGED_IDENTITY:
            hint = (
                "check that the managed identity with client ID "
                f"{settings.client_id} is assigned to this app and has the "
                "Durable Task Data Contributor role"
            )
        else:
            hint = "run `az login` on a laptop, or set AZURE_MANAGED_IDENTITY_CLIENT_ID in Azure"
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise AuthenticationError(
            f"Authentication to {settings.endpoint} failed with {type(credential).__name__}: "
            f"{first_line}. To fix it, {hint}."
        ) from error
