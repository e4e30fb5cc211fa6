"""What the deployment in infra/ is meant to contain, checked by tests/test_deployment.py.

Change a resource's API version here and in the Bicep file together: the test fails
when the two disagree, so a version is never bumped by accident.
"""

from __future__ import annotations

# Every resource type the Bicep files declare, with the one API version used for it.
RESOURCE_API_VERSIONS = {
    "Microsoft.Resources/resourceGroups": "2024-03-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.ContainerRegistry/registries": "2023-07-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.DurableTask/schedulers": "2025-11-01",
    "Microsoft.DurableTask/schedulers/taskHubs": "2025-11-01",
    "Microsoft.App/managedEnvironments": "2025-01-01",
    "Microsoft.App/containerApps": "2025-01-01",
}

# Built-in role "Durable Task Data Contributor": read and write orchestrations and entities.
DURABLE_TASK_DATA_CONTRIBUTOR_ROLE_ID = "0ad04412-c4d5-4796-b79c-f76d14c8d402"

# Built-in role "AcrPull": pull images from a container registry.
ACR_PULL_ROLE_ID = "7f951dda-4ed3-4680-a7ca-43fe172d538d"

# The variables worker.py and client.py read in Azure (sample/settings.py); both apps set them.
CLOUD_SETTINGS = ("ENDPOINT", "TASKHUB", "AZURE_MANAGED_IDENTITY_CLIENT_ID")

# KEDA scaler that counts pending work items in a task hub, and the kinds of work item
# this worker runs (the sample has no activities).
SCALER_TYPE = "azure-durabletask-scheduler"
WORKER_WORK_ITEM_TYPES = {"Orchestration", "Entity"}

# Outputs of main.bicep that azd or the README rely on.
REQUIRED_OUTPUTS = (
    "AZURE_CONTAINER_REGISTRY_ENDPOINT",
    "ENDPOINT",
    "TASKHUB",
    "TASKHUB_DASHBOARD_URL",
)

# azd environment values that main.parameters.json passes to main.bicep.
AZD_PARAMETERS = {
    "environmentName": "${AZURE_ENV_NAME}",
    "location": "${AZURE_LOCATION}",
    "principalId": "${AZURE_PRINCIPAL_ID}",
}
