// Everything inside the resource group: identity, logs, registry, scheduler, task hub,
// role assignments, and the worker and client container apps.
// NOTE: this file is parsed in the tests but has not been compiled by the Bicep compiler
// or deployed, so a property of the wrong type or name would first show at `azd up`.

param location string
param tags object
@description('Suffix that makes the global names (registry, scheduler) unique.')
param resourceToken string
param principalId string
param principalType string
param schedulerSku string
param schedulerCapacity int
param taskHubName string
param workerMinReplicas int
param workerMaxReplicas int
param workerImageName string
param clientImageName string
param orchestrationInterval int

// Built-in role definition IDs, the same in every Azure tenant.
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
var durableTaskDataContributorRoleId = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

// Container apps need an image before azd has pushed ours; azd replaces it on deploy.
var placeholderImage = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${resourceToken}'
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'cr${resourceToken}'
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    // The apps pull with the managed identity, so no admin password exists.
    adminUserEnabled: false
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Consumption bills per work item; Dedicated bills per capacity unit, whether used or not.
var consumptionSku = {
  name: 'Consumption'
}
var dedicatedSku = {
  name: 'Dedicated'
  capacity: schedulerCapacity
}

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: 'dts-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: (schedulerSku == 'Dedicated') ? dedicatedSku : consumptionSku
    // The list is required and an empty one denies all traffic. Every caller still
    // needs a Microsoft Entra token and a Durable Task role on this scheduler.
    ipAllowlist: [
      '0.0.0.0/0'
    ]
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

var dataContributorRoleDefinition = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributorRoleId)

// Scoped to the scheduler, not the resource group: the identity reaches no other resource.
resource identityDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scheduler.id, identity.id, durableTaskDataContributorRoleId)
  scope: scheduler
  properties: {
    roleDefinitionId: dataContributorRoleDefinition
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Lets the deploying user run worker.py and client.py from a laptop and open the dashboard.
resource userDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(scheduler.id, principalId, durableTaskDataContributorRoleId)
  scope: scheduler
  properties: {
    roleDefinitionId: dataContributorRoleDefinition
    principalId: principalId
    principalType: principalType
  }
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: 'cae-${resourceToken}'
  location: location
  tags: tags
  properties: {
    // Container output goes to the Log Analytics workspace, table ContainerAppConsoleLogs_CL.
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

// What worker.py and client.py read from the environment (sample/settings.py).
var schedulerEnv = [
  {
    name: 'ENDPOINT'
    value: scheduler.properties.endpoint
  }
  {
    name: 'TASKHUB'
    value: taskHub.name
  }
  {
    name: 'AZURE_MANAGED_IDENTITY_CLIENT_ID'
    value: identity.properties.clientId
  }
]

var appIdentity = {
  type: 'UserAssigned'
  userAssignedIdentities: {
    '${identity.id}': {}
  }
}

var registries = [
  {
    server: registry.properties.loginServer
    identity: identity.id
  }
]

// One rule per kind of work item this worker runs; the sample has no activities.
var workItemTypes = [
  'Orchestration'
  'Entity'
]

resource workerApp 'Microsoft.App/containerApps@2025-01-01' = {
  name: 'ca-worker-${resourceToken}'
  location: location
  tags: union(tags, {
    'azd-service-name': 'worker'
  })
  identity: appIdentity
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      activeRevisionsMode: 'Single'
      registries: registries
    }
    template: {
      containers: [
        {
          name: 'worker'
          image: empty(workerImageName) ? placeholderImage : workerImageName
          env: schedulerEnv
          resources: {
            cpu: json('0.25')
            memory: '0.5Gi'
          }
        }
      ]
      scale: {
        // A worker has no ingress, so at 0 replicas only the rules below can wake it.
        minReplicas: workerMinReplicas
        maxReplicas: workerMaxReplicas
        rules: [
          for workItemType in workItemTypes: {
            name: 'dts-${toLower(workItemType)}'
            custom: {
              type: 'azure-durabletask-scheduler'
              metadata: {
                endpoint: scheduler.properties.endpoint
                taskhubName: taskHub.name
                workItemType: workItemType
                maxConcurrentWorkItemsCount: '1'
              }
              // NOTE: `identity` on a custom scale rule is taken from the Microsoft.App API
              // reference (2024-10-02-preview onwards); it is untested against a deployment.
              identity: identity.id
            }
          }
        ]
      }
    }
  }
  dependsOn: [
    acrPull
    identityDataContributor
  ]
}

resource clientApp 'Microsoft.App/containerApps@2025-01-01' = {
  name: 'ca-client-${resourceToken}'
  location: location
  tags: union(tags, {
    'azd-service-name': 'client'
  })
  identity: appIdentity
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      activeRevisionsMode: 'Single'
      registries: registries
    }
    template: {
      containers: [
        {
          name: 'client'
          image: empty(clientImageName) ? placeholderImage : clientImageName
          env: concat(schedulerEnv, [
            {
              name: 'ORCHESTRATION_INTERVAL'
              value: string(orchestrationInterval)
            }
          ])
          resources: {
            cpu: json('0.25')
            memory: '0.5Gi'
          }
        }
      ]
      // Exactly one replica: two clients would signal the same entity key at once,
      // and each would wait for a value the other one changed.
      scale: {
        minReplicas: 1
        maxReplicas: 1
      }
    }
  }
  dependsOn: [
    acrPull
    identityDataContributor
  ]
}

output registryLoginServer string = registry.properties.loginServer
output registryName string = registry.name
output identityClientId string = identity.properties.clientId
output schedulerEndpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
output taskHubDashboardUrl string = taskHub.properties.dashboardUrl
