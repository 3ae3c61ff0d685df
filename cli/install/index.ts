// Install manifests: `meshsync rbac` and `meshsync install` print these.
export { meshSyncCrd } from './crd.ts';
export { installObjects, renderInstall, defaultBrokerUrl, INSTALL_DEFAULTS, DEFAULT_INSTALL_CONFIG } from './manifests.ts';
export type { InstallOptions } from './manifests.ts';
export { labels, toYaml, MESHSYNC_GROUP } from './objects.ts';
export type { KubeObject } from './objects.ts';
export { INSTALL_FLAGS, rbacOptionsFromConfig, runInstallCommand } from './command.ts';
export type { InstallCommandConfig } from './command.ts';
export { rbacObjects, renderRbac, watchRules } from './rbac.ts';
export type { PolicyRule, RbacOptions } from './rbac.ts';
