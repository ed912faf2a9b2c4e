export { discover, type DiscoveryResult, type PluginCandidate } from './discover.js';
export { checkDirectoryChain, checkFileSafety, type SafeFile, type SafetyOptions } from './file-safety.js';
