"""Offline checks of the Azure deployment: Dockerfiles, azure.yaml and the Bicep in infra/.

Nothing here reaches Azure. hadolint lints the Dockerfiles, check-jsonschema validates
azure.yaml against the Azure Developer CLI schema, and pycep-parser parses the Bicep so
the tests can check what it declares. The Bicep compiler is not available offline, so
type errors inside a property would only show at `azd up`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from client import parse_args
from sample.settings import Authentication, load_settings
from tests.bicep import Resolver, parse, reference, resource_body
from tests.deployment_spec import (
    ACR_PULL_ROLE_ID,
    AZD_PARAMETERS,
    CLOUD_SETTINGS,
    DURABLE_TASK_DATA_CONTRIBUTOR_ROLE_ID,
    REQUIRED_OUTPUTS,
    RESOURCE_API_VERSIONS,
    SCALER_TYPE,
    WORKER_WORK_ITEM_TYPES,
)
from tests.processes import ROOT

INFRA = ROOT / "infra"
DOCKERFILES = ("Dockerfile.worker", "Dockerfile.client")
HADOLINT = Path(sys.executable).parent / "hadolint"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
# The Azure Developer CLI's schema for azure.yaml (version 1.0), kept beside the repository.
AZURE_YAML_SCHEMA = ROOT.parent / "shared" / "schemas" / "azure.yaml.schema.json"


def load_azure_yaml() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(ROOT / "azure.yaml")
    return data


def bicep_files() -> list[Path]:
    return sorted(INFRA.glob("*.bicep"))


@pytest.fixture(scope="module")
def main_tree() -> dict[str, Any]:
    return parse(INFRA / "main.bicep")


@pytest.fixture(scope="module")
def resources_tree() -> dict[str, Any]:
    return parse(INFRA / "resources.bicep")


@pytest.fixture(scope="module")
def resolver(resources_tree: dict[str, Any]) -> Resolver:
    return Resolver(resources_tree["variables"])


def resources_of_type(tree: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        symbol: resource
        for symbol, resource in tree["resources"].items()
        if resource["type"] == resource_type
    }


def only_resource_of_type(tree: dict[str, Any], resource_type: str) -> str:
    """Return the symbol of the single resource of this type, failing if there are more."""
    symbols = list(resources_of_type(tree, resource_type))
    assert len(symbols) == 1, f"expected one {resource_type}, found {symbols}"
    return symbols[0]


def container_apps(tree: dict[str, Any], resolver: Resolver) -> Iterator[tuple[str, Any]]:
    """Yield (azd-service-name tag, resolved body) for every container app."""
    for resource in resources_of_type(tree, "Microsoft.App/containerApps").values():
        body = resolver.resolve(resource_body(resource))
        tags = body["tags"]["function"]["parameters"]["arg_2"]
        yield tags.get("'azd-service-name'"), body


def app_for_service(tree: dict[str, Any], resolver: Resolver, service: str) -> Any:
    apps = {name: body for name, body in container_apps(tree, resolver)}
    assert service in apps, f"no container app tagged azd-service-name={service}; tags: {apps}"
    return apps[service]


def container_env(app: Any) -> dict[str, str | None]:
    (container,) = app["properties"]["template"]["containers"]
    return {item["name"]: reference(item["value"]) for item in container["env"]}


class RecordingEnviron(Mapping[str, str]):
    """An environment that records which variables the code looks up."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._values

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self._values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


# --- Dockerfiles ---------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    result = subprocess.run(
        [str(HADOLINT), dockerfile], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_named_user(tmp_path: Path) -> None:
    # Shows that the lint above can fail: a user name instead of a UID is DL3066.
    text = (ROOT / "Dockerfile.worker").read_text().replace("USER 10001", "USER app")
    broken = tmp_path / "Dockerfile"
    broken.write_text(text)
    result = subprocess.run(
        [str(HADOLINT), str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3066" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_layout(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    lines = [line.strip() for line in text.splitlines()]

    base = re.search(r"^ARG PYTHON_IMAGE=python:3\.(\d+)-slim$", text, re.MULTILINE)
    assert base is not None, "the default base image is not python:3.X-slim"
    assert int(base[1]) >= 12
    assert "FROM ${PYTHON_IMAGE}" in lines

    # Dependencies are installed before the code is copied, so code changes reuse the layer.
    install = lines.index("RUN pip install --no-cache-dir -r requirements.txt")
    assert lines.index("COPY requirements.txt .") < install < lines.index("COPY sample/ sample/")

    assert "USER 10001" in lines
    assert re.search(r"^ENV PYTHONUNBUFFERED=1\b", text, re.MULTILINE)
    cmd = [line for line in lines if line.startswith("CMD ")]
    assert len(cmd) == 1
    assert json.loads(cmd[0].removeprefix("CMD "))[0] == "python"


def test_client_image_runs_rounds_until_stopped() -> None:
    cmd = re.search(r"^CMD (.*)$", (ROOT / "Dockerfile.client").read_text(), re.MULTILINE)
    assert cmd is not None
    assert json.loads(cmd[1]) == ["python", "client.py", "--loop"]


def test_dockerignore_lets_in_only_what_images_copy() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines
    assert allowed == {"requirements.txt", "sample", "worker.py", "client.py"}


# --- azure.yaml ----------------------------------------------------------------------


def test_azure_yaml_services() -> None:
    data = load_azure_yaml()

    assert set(data["services"]) == {"worker", "client"}
    for name, service in data["services"].items():
        assert service["host"] == "containerapp", name
        assert service["language"] == "python", name
        project = ROOT / service.get("project", ".")
        dockerfile = (project / service["docker"]["path"]).resolve()
        assert dockerfile == ROOT / f"Dockerfile.{name}"
        assert dockerfile.is_file()
        assert (project / service["docker"].get("context", ".")).resolve() == ROOT


def test_azure_yaml_infra_inside_repository() -> None:
    infra = load_azure_yaml()["infra"]

    assert infra.get("provider", "bicep") == "bicep"
    path = (ROOT / infra["path"]).resolve()
    assert path == INFRA
    assert (path / f"{infra.get('module', 'main')}.bicep").is_file()


def test_azure_yaml_matches_schema() -> None:
    if not AZURE_YAML_SCHEMA.is_file():
        pytest.skip(f"azure.yaml schema not found at {AZURE_YAML_SCHEMA}")
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(AZURE_YAML_SCHEMA), "azure.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Bicep: structure ----------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda path: path.name)
def test_bicep_file_parses(path: Path) -> None:
    tree = parse(path)
    assert tree["resources"] or tree["modules"], f"{path.name} declares nothing"


def test_resource_types_and_api_versions_intended() -> None:
    declared: dict[str, set[str]] = {}
    for path in bicep_files():
        for resource in parse(path)["resources"].values():
            declared.setdefault(resource["type"], set()).add(resource["api_version"])

    for resource_type, versions in declared.items():
        assert resource_type in RESOURCE_API_VERSIONS, f"unexpected type {resource_type}"
        assert versions == {RESOURCE_API_VERSIONS[resource_type]}, resource_type
    assert set(declared) == set(RESOURCE_API_VERSIONS)


def test_main_is_subscription_scoped(main_tree: dict[str, Any]) -> None:
    assert main_tree["globals"]["scope"]["value"] == "subscription"
    (group,) = resources_of_type(main_tree, "Microsoft.Resources/resourceGroups").values()
    assert resource_body(group)["tags"] == "tags"


def test_module_parameters_match(main_tree: dict[str, Any], resources_tree: dict[str, Any]) -> None:
    module = main_tree["modules"]["resources"]
    assert module["detail"]["path"] == "resources.bicep"
    assert set(module["config"]["params"]) == set(resources_tree["parameters"])


def test_parameters_file_maps_azd_variables(main_tree: dict[str, Any]) -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]

    for name, value in AZD_PARAMETERS.items():
        assert parameters[name]["value"] == value
    assert set(parameters) <= set(main_tree["parameters"])


def test_outputs_for_azd_and_readme(main_tree: dict[str, Any]) -> None:
    outputs = main_tree["outputs"]
    assert set(REQUIRED_OUTPUTS) <= set(outputs)
    assert reference(outputs["TASKHUB_DASHBOARD_URL"]["value"]) == (
        "resources.outputs.taskHubDashboardUrl"
    )


def test_module_outputs_point_at_resources(resources_tree: dict[str, Any]) -> None:
    outputs = {
        name: reference(output["value"]) for name, output in resources_tree["outputs"].items()
    }
    registry = only_resource_of_type(resources_tree, "Microsoft.ContainerRegistry/registries")
    scheduler = only_resource_of_type(resources_tree, "Microsoft.DurableTask/schedulers")
    hub = only_resource_of_type(resources_tree, "Microsoft.DurableTask/schedulers/taskHubs")

    assert outputs["registryLoginServer"] == f"{registry}.properties.loginServer"
    assert outputs["schedulerEndpoint"] == f"{scheduler}.properties.endpoint"
    assert outputs["taskHubName"] == f"{hub}.name"
    assert outputs["taskHubDashboardUrl"] == f"{hub}.properties.dashboardUrl"


# --- Bicep: scheduler and roles -------------------------------------------------------


def test_scheduler_sku_consumption_by_default(
    main_tree: dict[str, Any], resources_tree: dict[str, Any], resolver: Resolver
) -> None:
    parameter = main_tree["parameters"]["schedulerSku"]
    allowed = [d["argument"] for d in parameter["decorators"] if d["type"] == "allowed"]
    assert parameter["default"] == "Consumption"
    assert allowed == [["Consumption", "Dedicated"]]

    scheduler = resources_of_type(resources_tree, "Microsoft.DurableTask/schedulers")
    (body,) = (resolver.resolve(resource_body(r)) for r in scheduler.values())
    choice = body["properties"]["sku"]["operator"]["operands"]
    assert choice["true_value"] == {"name": "Dedicated", "capacity": "schedulerCapacity"}
    assert choice["false_value"] == {"name": "Consumption"}
    # An empty allow list denies all traffic.
    assert body["properties"]["ipAllowlist"]


def test_role_assignments_scoped_and_named(
    resources_tree: dict[str, Any], resolver: Resolver
) -> None:
    scheduler = only_resource_of_type(resources_tree, "Microsoft.DurableTask/schedulers")
    registry = only_resource_of_type(resources_tree, "Microsoft.ContainerRegistry/registries")
    identity = only_resource_of_type(
        resources_tree, "Microsoft.ManagedIdentity/userAssignedIdentities"
    )
    assignments = resources_of_type(resources_tree, "Microsoft.Authorization/roleAssignments")

    granted: dict[tuple[str, str | None], str] = {}
    for resource in assignments.values():
        body = resolver.resolve(resource_body(resource))
        role = body["properties"]["roleDefinitionId"]["function"]
        assert role["type"] == "subscription_resource_id"
        assert role["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        principal = reference(body["properties"]["principalId"])
        granted[(str(reference(body["scope"])), principal)] = role["parameters"]["resource_name_1"]

    contributor = DURABLE_TASK_DATA_CONTRIBUTOR_ROLE_ID
    assert granted == {
        (registry, f"{identity}.properties.principalId"): ACR_PULL_ROLE_ID,
        (scheduler, f"{identity}.properties.principalId"): contributor,
        (scheduler, "principalId"): contributor,
    }


def test_user_role_only_with_principal_id(resources_tree: dict[str, Any]) -> None:
    for resource in resources_of_type(
        resources_tree, "Microsoft.Authorization/roleAssignments"
    ).values():
        if resource_body(resource)["properties"]["principalId"] != "principalId":
            continue
        condition = resource["config"]["condition"]["operator"]
        assert condition["type"] == "not"
        emptiness = condition["operands"]["bool_value"]["function"]
        assert emptiness == {"type": "empty", "parameters": {"item_to_test": "principalId"}}


# --- Bicep: container apps ------------------------------------------------------------


def test_every_service_has_tagged_app(resources_tree: dict[str, Any], resolver: Resolver) -> None:
    tagged = [name for name, _ in container_apps(resources_tree, resolver)]
    assert sorted(tagged) == sorted(load_azure_yaml()["services"])


@pytest.mark.parametrize("service", ["worker", "client"])
def test_app_sets_cloud_settings(
    resources_tree: dict[str, Any], resolver: Resolver, service: str
) -> None:
    env = container_env(app_for_service(resources_tree, resolver, service))
    scheduler = only_resource_of_type(resources_tree, "Microsoft.DurableTask/schedulers")
    hub = only_resource_of_type(resources_tree, "Microsoft.DurableTask/schedulers/taskHubs")
    identity = only_resource_of_type(
        resources_tree, "Microsoft.ManagedIdentity/userAssignedIdentities"
    )

    assert env["ENDPOINT"] == f"{scheduler}.properties.endpoint"
    assert env["TASKHUB"] == f"{hub}.name"
    assert env["AZURE_MANAGED_IDENTITY_CLIENT_ID"] == f"{identity}.properties.clientId"


def test_cloud_settings_are_what_code_reads(
    resources_tree: dict[str, Any], resolver: Resolver
) -> None:
    environ = RecordingEnviron(
        {
            "ENDPOINT": "https://example.westeurope.durabletask.io",
            "TASKHUB": "default",
            "AZURE_MANAGED_IDENTITY_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
        }
    )
    settings = load_settings(environ)
    # The connection string would replace the three variables, and the apps do not set it.
    read = environ.read - {"DURABLE_TASK_SCHEDULER_CONNECTION_STRING"}

    assert settings.authentication is Authentication.MANAGED_IDENTITY
    assert read == set(CLOUD_SETTINGS)
    for service in ("worker", "client"):
        env = container_env(app_for_service(resources_tree, resolver, service))
        assert read <= set(env), service


def test_client_app_sets_round_interval(resources_tree: dict[str, Any], resolver: Resolver) -> None:
    environ = RecordingEnviron({"ORCHESTRATION_INTERVAL": "60"})
    parse_args(["--loop"], environ=environ)  # type: ignore[arg-type]
    env = container_env(app_for_service(resources_tree, resolver, "client"))

    assert environ.read == {"ORCHESTRATION_INTERVAL"}
    assert "ORCHESTRATION_INTERVAL" in env


@pytest.mark.parametrize("service", ["worker", "client"])
def test_app_pulls_with_identity(
    resources_tree: dict[str, Any], resolver: Resolver, service: str
) -> None:
    app = app_for_service(resources_tree, resolver, service)
    identity = only_resource_of_type(
        resources_tree, "Microsoft.ManagedIdentity/userAssignedIdentities"
    )
    registry = only_resource_of_type(resources_tree, "Microsoft.ContainerRegistry/registries")

    assert app["identity"]["type"] == "UserAssigned"
    assert list(app["identity"]["userAssignedIdentities"]) == [f"'${{{identity}.id}}'"]
    (pull,) = app["properties"]["configuration"]["registries"]
    assert reference(pull["server"]) == f"{registry}.properties.loginServer"
    assert reference(pull["identity"]) == f"{identity}.id"
    assert "ingress" not in app["properties"]["configuration"]


def test_worker_scales_on_scheduler(
    main_tree: dict[str, Any], resources_tree: dict[str, Any], resolver: Resolver
) -> None:
    scale = app_for_service(resources_tree, resolver, "worker")["properties"]["template"]["scale"]
    identity = only_resource_of_type(
        resources_tree, "Microsoft.ManagedIdentity/userAssignedIdentities"
    )
    scheduler = only_resource_of_type(resources_tree, "Microsoft.DurableTask/schedulers")
    hub = only_resource_of_type(resources_tree, "Microsoft.DurableTask/schedulers/taskHubs")

    # Replica bounds are parameters, with at least one replica by default, because a
    # worker without ingress is woken from zero only by the scaler.
    assert scale["minReplicas"] == "workerMinReplicas"
    assert scale["maxReplicas"] == "workerMaxReplicas"
    assert main_tree["parameters"]["workerMinReplicas"]["default"] >= 1
    assert main_tree["parameters"]["workerMaxReplicas"]["default"] >= 1

    work_item_types = set()
    for rule in scale["rules"]:
        custom = rule["custom"]
        metadata = custom["metadata"]
        assert custom["type"] == SCALER_TYPE
        assert reference(custom["identity"]) == f"{identity}.id"
        assert reference(metadata["endpoint"]) == f"{scheduler}.properties.endpoint"
        assert reference(metadata["taskhubName"]) == f"{hub}.name"
        work_item_types.add(metadata["workItemType"])
    assert work_item_types == WORKER_WORK_ITEM_TYPES


def test_environment_sends_logs_to_workspace(
    resources_tree: dict[str, Any], resolver: Resolver
) -> None:
    workspace = only_resource_of_type(resources_tree, "Microsoft.OperationalInsights/workspaces")
    (environment,) = resources_of_type(resources_tree, "Microsoft.App/managedEnvironments").values()
    logs = resolver.resolve(resource_body(environment))["properties"]["appLogsConfiguration"]

    assert logs["destination"] == "log-analytics"
    customer = reference(logs["logAnalyticsConfiguration"]["customerId"])
    assert customer == f"{workspace}.properties.customerId"


def test_deployment_needs_no_secrets_in_environment() -> None:
    # The apps authenticate with the managed identity: no key or password is passed in.
    text = "\n".join(path.read_text() for path in bicep_files())
    assert "secretRef" not in text
    assert "adminUserEnabled: false" in text


# --- README ----------------------------------------------------------------------------


def readme_deployment_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Deploy to Azure Container Apps")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize(
    ("parameter", "default"),
    [
        ("schedulerSku", "Consumption"),
        ("taskHubName", "default"),
        ("workerMinReplicas", 1),
        ("workerMaxReplicas", 3),
        ("orchestrationInterval", 60),
    ],
)
def test_readme_parameter_defaults(
    main_tree: dict[str, Any], parameter: str, default: str | int
) -> None:
    assert f"`{parameter}`" in readme_deployment_section()
    assert main_tree["parameters"][parameter]["default"] == default


def test_readme_resource_sizes(resources_tree: dict[str, Any], resolver: Resolver) -> None:
    section = readme_deployment_section()
    registry = resources_of_type(resources_tree, "Microsoft.ContainerRegistry/registries")
    workspace = resources_of_type(resources_tree, "Microsoft.OperationalInsights/workspaces")

    assert "0.25 vCPU and 0.5 GiB each" in section
    for _, app in container_apps(resources_tree, resolver):
        (container,) = app["properties"]["template"]["containers"]
        assert container["resources"]["cpu"]["function"]["parameters"]["arg_1"] == "0.25"
        assert container["resources"]["memory"] == "0.5Gi"
    assert "container registry (Basic)" in section
    assert [resource_body(r)["sku"]["name"] for r in registry.values()] == ["Basic"]
    assert "(30 days retention)" in section
    assert [resource_body(r)["properties"]["retentionInDays"] for r in workspace.values()] == [30]


def test_readme_outputs_exist(main_tree: dict[str, Any]) -> None:
    names = re.findall(r"azd env get-value (\w+)", readme_deployment_section())
    assert names
    assert set(names) <= set(main_tree["outputs"])
