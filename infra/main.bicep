// stackhook on Azure: a Python function app on the Flex Consumption plan, its storage account,
// Key Vault, Application Insights and App Service Authentication with Microsoft Entra ID.
//
// Deploy into an existing resource group:
//   az deployment group create --resource-group <group> --template-file infra/main.bicep \
//     --parameters @infra/main.parameters.example.json
//
// No parameter is a secret. The app reaches storage and Key Vault with its system-assigned
// identity, and Azure DevOps authenticates webhook deliveries with secrets that the app keeps in
// Key Vault.
//
// Child resources are declared at the top level with `parent:` so that checkov, whose Bicep parser
// keeps only the last of several nested children, checks each of them.

targetScope = 'resourceGroup'

@description('Short prefix of every resource name: 2 to 10 lowercase letters, digits or hyphens, starting with a letter.')
@minLength(2)
@maxLength(10)
param namePrefix string = 'stackhook'

@description('Azure region of every resource. The region must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Application (client) id of the Microsoft Entra app registration that signs users in to the management API.')
param entraClientId string

@description('Directory (tenant) id that issues the sign-in tokens.')
param entraTenantId string = subscription().tenantId

@description('Base URL that Azure DevOps uses to reach the service, without a trailing slash, such as https://stackhook.example.com. Leave empty to use https://<app default host name>.')
param publicBaseUrl string = ''

@description('Comma-separated subjects (object ids, user principal names, group ids) that are admins of the root space.')
param bootstrapAdmins string

@description('Whether the Key Vault accepts traffic from public networks. Flex Consumption apps without virtual network integration reach the vault over public networks, so Disabled needs a private endpoint.')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Key Vault firewall action for traffic that matches no rule. Deny blocks a Flex Consumption app that has no virtual network integration.')
@allowed([
  'Allow'
  'Deny'
])
param keyVaultDefaultAction string = 'Allow'

@description('Largest number of instances the Flex Consumption plan scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance, in MB.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

var suffix = uniqueString(resourceGroup().id, namePrefix)
var functionAppName = '${namePrefix}-${suffix}'
// Storage account names allow 3 to 24 lowercase letters and digits only.
var storageAccountName = take(toLower('${replace(namePrefix, '-', '')}${suffix}'), 24)
// Key Vault names allow 3 to 24 letters, digits and hyphens: 10 + 1 + 13 characters at most.
var keyVaultName = '${namePrefix}-${suffix}'
var deploymentContainerName = 'app-package'
var webhookPath = '/api/webhooks/azure-devops/'
// Bicep inlines this expression where it is used, so it may read the app's runtime properties.
var baseUrl = empty(publicBaseUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicBaseUrl

// Paths that App Service Authentication leaves to the app (shared/routes.py UNAUTHENTICATED_PATHS):
// Azure DevOps authenticates webhook deliveries with the webhook secret, and health probes carry no identity.
var unauthenticatedPaths = [
  '/api/health'
  '/api/webhooks/*'
]

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-appi-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
  }
}

// ---------------------------------------------------------------------------------------------
// Storage: tables and queues of the app, and the deployment package
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ---------------------------------------------------------------------------------------------
// Key Vault: personal access tokens and webhook secrets
// ---------------------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: keyVaultPublicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: keyVaultDefaultAction
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Function app on the Flex Consumption plan
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${namePrefix}-plan-${suffix}'
  location: location
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
    }
  }
}

// App settings live in their own resource so they can use the app's default host name.
// Every name here is one that shared/settings.py reads, or a platform setting listed in
// tests/test_infra.py. Flex Consumption takes the runtime from functionAppConfig, so
// FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not set.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    STACKHOOK_ENVIRONMENT: 'azure'
    STACKHOOK_PUBLIC_BASE_URL: baseUrl
    STACKHOOK_KEY_VAULT_URL: vault.properties.vaultUri
    STACKHOOK_BOOTSTRAP_ADMINS: bootstrapAdmins
    // Identity-based storage connection, read by the Functions runtime (queue triggers) and the app.
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  }
}

// Deployments authenticate with Microsoft Entra ID, never with FTP or SCM user names and passwords.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication: the management API requires a Microsoft Entra ID token (401 without one).
// With it on, App Service sets WEBSITE_AUTH_ENABLED for the app, and only then does the app trust
// the X-MS-CLIENT-PRINCIPAL identity headers.
// NOTE: The App Service app settings reference documents WEBSITE_AUTH_ENABLED as read-only and
// injected into Windows and Linux apps. It has not been checked on a deployed Flex Consumption app.
resource authentication 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: unauthenticatedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: entraClientId
          openIdIssuer: 'https://login.microsoftonline.com/${entraTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            entraClientId
            'api://${entraClientId}'
          ]
        }
      }
    }
  }
}

module roles 'modules/role-assignments.bicep' = {
  name: 'stackhook-role-assignments'
  params: {
    principalId: functionApp.identity.principalId
    storageAccountName: storage.name
    deploymentContainerName: deploymentContainer.name
    keyVaultName: vault.name
  }
}

output functionAppName string = functionApp.name
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
output webhookBaseUrl string = '${baseUrl}${webhookPath}'
output keyVaultUri string = vault.properties.vaultUri
output appPrincipalId string = functionApp.identity.principalId
