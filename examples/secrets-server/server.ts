// The secrets server: opens a home made by initHome, restores its mounts and serves the API on loopback.
import { existsSync } from 'node:fs';
import { readFile, rmdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  FileRollbackState,
  GatehouseError,
  isGatehouseError,
  loadTrustedKeys,
  openAuditLog,
  prepareSealRoot,
  removeOwnSealedCopies,
  type Logger,
  type SupervisorEvent,
} from 'gatehouse-plugins';
import { AuditHasher } from './audit-hmac.js';
import { homePaths, loadConfig, REQUEST_TIMEOUT_MS } from './config.js';
import { apiHandler } from './http.js';
import { Mounts, mountScope, reloadAdvice } from './mounts.js';
import { ServerError } from './errors.js';
import { LogStore } from './store.js';

export interface RunningServer {
  url: string;
  mounts: Mounts;
  /** Stops accepting requests, stops every engine, and closes the store and the audit log. */
  close(): Promise<void>;
}

export interface StartOptions {
  home: string;
  /** Overrides the config's port (0: any free port). */
  port?: number;
  /** One plain line per notable fact (isolation, engine events); stdout by default. */
  say?: (line: string) => void;
  logger?: Logger;
}

/** Where bubblewrap is looked for: fixed system paths, never a PATH search an attacker could steer. */
const BWRAP_PATHS = ['/usr/bin/bwrap', '/bin/bwrap'];

export async function startServer(options: StartOptions): Promise<RunningServer> {
  const say = options.say ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const config = await loadConfig(options.home);
  const paths = homePaths(options.home);
  const trustedKeys = await loadTrustedKeys(config.release.trustedKeysDir);
  const threshold = config.release.threshold ?? 1;
  // Said at start, not at the first mount: a threshold no set of these keys can meet would refuse every engine later.
  if (threshold > trustedKeys.length) {
    throw new ServerError(
      500,
      'invalid_config',
      `${options.home}/config.json: release.threshold is ${threshold} but ${config.release.trustedKeysDir} holds ${trustedKeys.length} trusted key${trustedKeys.length === 1 ? '' : 's'}; add the other signers' .pub files there, or lower the threshold`,
    );
  }
  const hasher = new AuditHasher(await readFile(paths.auditKey));
  const logger = options.logger ?? silentish(say);
  let auditFailure: GatehouseError | undefined;
  const audit = await openAuditLog(paths.audit, {
    logger,
    // Unaudited service: a full disk once stopped the log while the server went on answering; now it refuses instead.
    onError: (error) => {
      if (auditFailure !== undefined) return;
      auditFailure = error;
      say(
        `the audit log cannot record, so the server now answers every request, health included, with 503 audit_failed: ${error.message}. ` +
          'Make room on its disk (or fix the cause), then restart the server.',
      );
    },
  }).catch((error: unknown) => {
    throw withRecovery(error);
  });
  // Revisions per mount: an engine learns nothing of another mount's writes from its own (X4).
  const store = await LogStore.open(paths.store, { revisionScope: mountScope });
  // Made if missing and checked: the server's seal directory and every directory above it are the host's.
  // The copies a killed server left there go at the first seal (the library's own sweep of dead hosts' copies).
  const sealDir = await prepareSealRoot({ parentDir: config.sealDir, ...(config.pluginUser ? { group: config.pluginUser.gid } : {}) });

  // Shown at every start: whether one stolen release key is enough to run code here is the operator's first question.
  say(`releases need ${threshold} signature${threshold === 1 ? '' : 's'} of the ${trustedKeys.length} trusted key${trustedKeys.length === 1 ? '' : 's'} in ${config.release.trustedKeysDir} (release.threshold)`);
  const bwrap = config.sandbox !== 'off' && BWRAP_PATHS.some((path) => existsSync(path));
  if (config.sandbox === 'required' && !bwrap) throw new Error('sandbox "required" but bubblewrap (bwrap) is not installed');
  if (bwrap) say('engines run in a bubblewrap sandbox (no network, no view of the host\'s files or processes)');
  if (!bwrap) say(config.sandbox === 'off' ? 'engines run WITHOUT a sandbox (config sandbox: "off")' : 'bubblewrap (bwrap) not found: engines run WITHOUT a sandbox; install the bubblewrap package');
  const runningAsRoot = process.getuid?.() === 0;
  if (config.pluginUser) say(`engines run as uid ${config.pluginUser.uid}, gid ${config.pluginUser.gid} (pluginUser), never as the server's user`);
  if (runningAsRoot && !config.pluginUser) say('the server runs as root and no pluginUser is set: engines run as root too (set pluginUser in config.json)');

  const mounts = new Mounts({
    manifestPath: config.release.manifest,
    trustedKeys,
    threshold,
    rollback: new FileRollbackState(paths.rollback),
    store,
    audit,
    logger,
    sealDir,
    // launchVerified lets the sandbox read the engine's own sealed copy, and nothing of the server's home.
    sandbox: bwrap ? {} : false,
    pluginUser: config.pluginUser,
    callTimeoutMs: config.limits.callTimeoutMs,
    maxConcurrentCalls: config.limits.maxConcurrentCalls,
    idleTimeoutMs: config.limits.idleTimeoutMs,
    quota: { bytes: config.limits.maxStorageBytesPerMount, keys: config.limits.maxStorageKeysPerMount },
    onEvent: (mount: string, event: SupervisorEvent) => say(describeEvent(mount, event)),
  });
  await mounts.restore();

  const { headersTimeoutMs } = config.limits;
  const server: Server = createServer(
    {
      // Slot holding: a connection that sends nothing, or its header a byte at a time, is closed at this deadline; a
      // client on loopback sends its header at once. A token holder's body gets requestTimeout.
      headersTimeout: headersTimeoutMs,
      // Node enforces both timeouts only when it checks its connections (every 30 s by default), so idle connections
      // held their slots 30 to 40 s whatever headersTimeout said: checked four times per deadline, they hold it at most
      // about 2.5 times it (the deadline starts again at a connection's first byte).
      connectionsCheckingInterval: Math.max(1, Math.floor(headersTimeoutMs / 4)),
      requestTimeout: REQUEST_TIMEOUT_MS,
      maxHeaderSize: 16 * 1024,
    },
    apiHandler({
      mounts,
      audit,
      hasher,
      rootTokenSha256: config.rootTokenSha256,
      maxBodyBytes: config.limits.maxBodyBytes,
      auditFailure: () => auditFailure,
      onInternalError: (error) => say(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`),
    }),
  );
  // Connection flood: past the cap new connections are closed unanswered, so no number of clients pins unbounded sockets.
  server.maxConnections = config.limits.maxConnections;
  // Loopback only: the API carries the root token in clear (no TLS), so it must not leave the machine.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? config.port, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    mounts,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await mounts.stopAll();
        // Only this server's copies: another live server sealing here (a restored copy of this home run beside it)
        // keeps the copies its engines were started from. The library removes a copy only after its plugin's exit is
        // seen, which a stopping server may not wait for.
        await removeOwnSealedCopies(sealDir);
        // Made again at the next start (a default one would otherwise pile up under the seal root); left if not empty.
        await rmdir(sealDir).catch(() => {});
        await store.close();
        await audit.close();
      })()),
  };
}

/**
 * An audit log the library will not append to (a last line torn by a full disk or a crash, say) as an error
 * that says what the operator does: the library leaves the broken log for a person to look at, never repairs it.
 */
function withRecovery(error: unknown): unknown {
  if (!isGatehouseError(error) || error.code !== 'AUDIT_INVALID') return error;
  return new GatehouseError(
    'AUDIT_INVALID',
    // The library's message says what to do with the log; the server adds only what is its own.
    `${error.message}; the server records every request there: started again once it is moved aside, it begins a new audit log`,
    { cause: error },
  );
}

function describeEvent(mount: string, event: SupervisorEvent): string {
  switch (event.type) {
    case 'crashed':
      return `engine at ${mount}/ crashed (pid ${event.pid}); restarting it`;
    case 'restarted':
      return `engine at ${mount}/ restarted (pid ${event.pid}, attempt ${event.attempt})`;
    case 'refused':
      return `engine at ${mount}/ refused during ${event.during}: ${event.code}: ${event.message}`;
    case 'down':
      return `engine at ${mount}/ is DOWN after ${event.attempts} attempts: ${event.message}. ${reloadAdvice(mount)}`;
    case 'reloaded':
      return `engine at ${mount}/ reloaded (pid ${event.previousPid ?? '-'} -> ${event.pid})`;
    case 'stopped':
      return `engine at ${mount}/ stopped (pid ${event.pid}, ${event.reason})`;
    case 'started':
      return `engine at ${mount}/ started (pid ${event.pid})`;
  }
}

/** Warnings and errors of the library (plugin stderr at warn/error included) as plain lines; the rest dropped. */
function silentish(say: (line: string) => void): Logger {
  const ignore = () => {};
  return { trace: ignore, debug: ignore, info: ignore, warn: (_f, message) => say(`warn: ${message}`), error: (_f, message) => say(`error: ${message}`) };
}
