export { discover, type DiscoverOptions, type DiscoveryResult, type PluginCandidate } from './discover.js';
export { checkFileSafety, type SafeFile, type SafetyOptions } from './file-safety.js';
