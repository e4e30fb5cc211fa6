// Entry point for `azd up`: creates the resource group and deploys resources.bicep into it.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it becomes part of every resource name.')
param environmentName string

@minLength(1)
@description('Azure region for every resource, for example swedencentral.')
param location string

@description('Object ID of the user or service principal running azd; it gets the Durable Task Data Contributor role on the scheduler. Empty: no role for the deploying user.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Kind of principal that principalId names.')
param principalType string = 'User'

@allowed([
  'Consumption'
  'Dedicated'
])
@description('Durable Task Scheduler SKU: Consumption bills per work item; Dedicated bills per capacity unit.')
param schedulerSku string = 'Consumption'

@minValue(1)
@description('Capacity units of a Dedicated scheduler; ignored for Consumption.')
param schedulerCapacity int = 1

@minLength(1)
@description('Name of the task hub that the worker and the client share.')
param taskHubName string = 'default'

@minValue(0)
@description('Minimum worker replicas. With 0, only the scaler wakes the worker, after work items arrive.')
param workerMinReplicas int = 1

@minValue(1)
@description('Maximum worker replicas that the scaler may start.')
param workerMaxReplicas int = 3

@description('Image of the worker app; azd sets it after the first deploy. Empty: a public placeholder image until then.')
param workerImageName string = ''

@description('Image of the client app; azd sets it after the first deploy. Empty: a public placeholder image until then.')
param clientImageName string = ''

@description('Seconds between two demo rounds of the client app.')
param orchestrationInterval int = 60

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

resource resourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module resources 'resources.bicep' = {
  name: 'resources'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    principalId: principalId
    principalType: principalType
    schedulerSku: schedulerSku
    schedulerCapacity: schedulerCapacity
    taskHubName: taskHubName
    workerMinReplicas: workerMinReplicas
    workerMaxReplicas: workerMaxReplicas
    workerImageName: workerImageName
    clientImageName: clientImageName
    orchestrationInterval: orchestrationInterval
  }
}

// azd reads these after provisioning and stores them in .azure/<environment>/.env.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = resources.outputs.registryLoginServer
output AZURE_CONTAINER_REGISTRY_NAME string = resources.outputs.registryName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = resources.outputs.identityClientId
output ENDPOINT string = resources.outputs.schedulerEndpoint
output TASKHUB string = resources.outputs.taskHubName
output TASKHUB_DASHBOARD_URL string = resources.outputs.taskHubDashboardUrl
