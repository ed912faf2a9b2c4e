/**
 * A plugin supervisor: the lifecycle go-plugin leaves to each host (Vault wrote its own). It starts a
 * plugin on first use, health-checks it, restarts it with backoff after a crash (bounded, then "down"
 * until the host resets it), reloads it to a new version without failing calls, stops it when idle,
 * caps its concurrent calls, and reports every step as an event and in the audit log.
 *
 * The supervisor does not know how to start the plugin: `start` does (typically launchVerified, so each
 * start, restarts included, verifies the signed release again).
 */
import { EventEmitter } from 'node:events';
import type { AuditLog } from '../audit/index.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import type { Plugin } from './plugin.js';
import { said } from './plugin-output.js';
import { describeExit } from './plugin-process.js';
import type { ExitStatus } from '../transport/exit-status.js';
import { MAX_TIMER_MS } from '../transport/grpc-call-protocol.js';
import type { CallOptions } from '../transport/service-client.js';

export type SupervisorState = 'idle' | 'starting' | 'running' | 'restarting' | 'down' | 'stopped';

export type SupervisorEvent =
  | { type: 'started'; plugin: string; pid: number }
  | { type: 'crashed'; plugin: string; pid: number; reason: string; stderrTail: readonly string[] }
  | { type: 'restarted'; plugin: string; pid: number; attempt: number }
  | { type: 'reloaded'; plugin: string; pid: number; previousPid: number | undefined }
  | { type: 'stopped'; plugin: string; pid: number; reason: 'idle' | 'reload' | 'stop' }
  | { type: 'refused'; plugin: string; during: 'start' | 'restart' | 'reload'; code: string; message: string }
  | { type: 'down'; plugin: string; attempts: number; code: string; message: string };

export interface StartContext {
  reason: 'first-use' | 'restart' | 'reload';
}

export interface RestartPolicy {
  /** Failed restarts in a row (a crash, or a start that fails) before the plugin is down (default 5); see stableMs. */
  maxAttempts?: number;
  /** Delay before the first restart, doubled each attempt (default 100 ms). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** An instance that has run this long refills the budget: its crash counts as the first (default 60 s). */
  stableMs?: number;
}

export interface SupervisorOptions {
  /** Names the plugin in events, errors and the audit log. */
  name: string;
  /** Starts one instance; called lazily, again on each restart, and with reload()'s starter after a reload. */
  start: (context: StartContext) => Promise<Plugin>;
  restart?: RestartPolicy;
  /** Stop the plugin after this long without calls (default: never). It starts again on the next call. */
  idleTimeoutMs?: number;
  /** Calls running at once on the plugin (default 64); more wait in a queue. */
  maxConcurrentCalls?: number;
  /** Calls waiting for a slot (default 1024); beyond it calls fail at once with PLUGIN_BUSY. */
  maxQueuedCalls?: number;
  /** Handed to each call as `timeoutMs` (default 30 s): a hanging plugin cannot hold a slot forever. */
  callTimeoutMs?: number;
  /** How often a running plugin is health-checked (default 10 s; 0 turns it off). A failed check restarts it. */
  healthIntervalMs?: number;
  /** How long a reload waits for the old instance's calls before stopping it anyway (default 30 s). */
  drainTimeoutMs?: number;
  logger?: Logger;
  audit?: AuditLog;
}

export interface SupervisorStatus {
  name: string;
  state: SupervisorState;
  pid: number | undefined;
  inFlight: number;
  queued: number;
  restarts: number;
  /** Why the plugin is down, or why the last start failed. */
  lastError: { code: string; message: string } | undefined;
}

/** How long a failed call waits for the plugin's exit (and its last stderr) before reporting the crash. */
const CRASH_SETTLE_MS = 500;
const MAX_BUFFERED_EVENTS = 1000;

/** One running plugin process and the calls on it. */
interface Instance {
  plugin: Plugin;
  inFlight: number;
  idle: (() => void)[];
  /** Set when the supervisor stops it on purpose, so its exit is not a crash. */
  retiring: boolean;
  /** How it exited, once it has exited without being asked to. */
  crashed: ExitStatus | undefined;
  /** When its start returned (ms since the epoch): how long it stayed up decides whether its crash refills the budget. */
  startedAt: number;
  /**
   * Set once a failed health check has it killed, to that kill (settled once it exited or was written off): the next
   * checks do not kill it again, and calls wait for it to be replaced.
   */
  killing?: Promise<void>;
}

/** Supervises one plugin. See the module comment and docs/supervisor.md. */
export class PluginSupervisor {
  private readonly emitter = new EventEmitter();
  private readonly settings: Required<Omit<SupervisorOptions, 'audit' | 'restart' | 'start' | 'idleTimeoutMs'>> & { restart: Required<RestartPolicy> };
  private starter: SupervisorOptions['start'];
  private current: Instance | undefined;
  private pending: Promise<Instance> | undefined;
  private stateValue: SupervisorState = 'idle';
  private failures = 0;
  private restarts = 0;
  private lastError: { code: string; message: string } | undefined;
  private running = 0;
  private readonly queue: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  /** The restart's backoff while it runs: it keeps the process alive only while calls wait for it. */
  private backoffTimer: NodeJS.Timeout | undefined;
  /** Calls waiting for the start or restart under way. */
  private waitingCalls = 0;
  private reloading: Promise<void> | undefined;

  constructor(private readonly options: SupervisorOptions) {
    const positive = (value: number | undefined, fallback: number, what: string, allowZero = false): number => {
      const result = value ?? fallback;
      // A timer past 2^31 - 1 ms fires at once: an idleTimeoutMs of 3e9 retired the plugin 1 ms after every call.
      const max = what.endsWith('Ms') ? MAX_TIMER_MS : Number.MAX_SAFE_INTEGER;
      if (!Number.isSafeInteger(result) || result < (allowZero ? 0 : 1) || result > max) {
        throw new GatehouseError('INVALID_OPTIONS', `supervisor ${what} must be a whole number${allowZero ? '' : ' above 0'}${max === MAX_TIMER_MS ? ` of at most ${MAX_TIMER_MS} (ms, a timer's limit)` : ''}, got ${String(value)}`);
      }
      return result;
    };
    this.starter = options.start;
    this.settings = {
      name: options.name,
      logger: options.logger ?? silentLogger,
      maxConcurrentCalls: positive(options.maxConcurrentCalls, 64, 'maxConcurrentCalls'),
      maxQueuedCalls: positive(options.maxQueuedCalls, 1024, 'maxQueuedCalls', true),
      callTimeoutMs: positive(options.callTimeoutMs, 30_000, 'callTimeoutMs'),
      healthIntervalMs: positive(options.healthIntervalMs, 10_000, 'healthIntervalMs', true),
      drainTimeoutMs: positive(options.drainTimeoutMs, 30_000, 'drainTimeoutMs', true),
      restart: {
        maxAttempts: positive(options.restart?.maxAttempts, 5, 'restart.maxAttempts'),
        initialDelayMs: positive(options.restart?.initialDelayMs, 100, 'restart.initialDelayMs', true),
        maxDelayMs: positive(options.restart?.maxDelayMs, 5_000, 'restart.maxDelayMs', true),
        stableMs: positive(options.restart?.stableMs, 60_000, 'restart.stableMs', true),
      },
    };
    if (options.idleTimeoutMs !== undefined) positive(options.idleTimeoutMs, 0, 'idleTimeoutMs');
  }

  get name(): string {
    return this.settings.name;
  }

  get state(): SupervisorState {
    return this.stateValue;
  }

  status(): SupervisorStatus {
    return {
      name: this.name,
      state: this.stateValue,
      pid: this.current?.plugin.pid,
      inFlight: this.running,
      queued: this.queue.length,
      restarts: this.restarts,
      lastError: this.lastError,
    };
  }

  /** Listens to every event; returns a function that stops listening. */
  onEvent(listener: (event: SupervisorEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  /**
   * The events from now on, until stop(). A consumer that falls more than 1000 events behind loses the
   * oldest: a slow reader cannot grow the host's memory.
   */
  async *events(): AsyncGenerator<SupervisorEvent> {
    const buffered: SupervisorEvent[] = [];
    let wake: (() => void) | undefined;
    const off = this.onEvent((event) => {
      if (buffered.length >= MAX_BUFFERED_EVENTS) buffered.shift();
      buffered.push(event);
      wake?.();
    });
    // Ends once stop() is done, not when its state changes: the stopped events of its retirements come after that.
    let done = this.stateValue === 'stopped';
    const onStop = () => {
      done = true;
      wake?.();
    };
    this.emitter.on('stop', onStop);
    try {
      for (;;) {
        const next = buffered.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (done) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      off();
      this.emitter.off('stop', onStop);
    }
  }

  /**
   * Runs `fn` on the plugin, starting it first if needed. `options.timeoutMs` is the call deadline to pass
   * on. A crash during the call fails it with PLUGIN_CRASHED carrying the plugin's last stderr lines;
   * PLUGIN_DOWN when restarts ran out (until reset()); PLUGIN_BUSY when the queue is full.
   */
  async call<T>(fn: (plugin: Plugin, options: CallOptions) => Promise<T>): Promise<T> {
    this.checkUsable();
    await this.acquireSlot();
    let instance: Instance | undefined;
    try {
      this.clearIdleTimer();
      instance = await this.instance();
      instance.inFlight++;
      return await fn(instance.plugin, { timeoutMs: this.settings.callTimeoutMs });
    } catch (error) {
      if (instance !== undefined && (instance.crashed !== undefined || isGatehouseError(error, 'PLUGIN_EXITED'))) throw await this.crashError(instance, error);
      throw error;
    } finally {
      this.releaseSlot();
      if (instance !== undefined) this.callDone(instance);
    }
  }

  /**
   * Switches to the plugin `start` gives (a new verified version, or a new pin): it is started first;
   * if that fails (verification included) the running instance stays and the error says why. Otherwise
   * new calls go to the new instance at once, and the old one is stopped once its calls are done.
   */
  async reload(start: SupervisorOptions['start'] = this.starter): Promise<void> {
    // Not checkUsable(): a down plugin may be reloaded. Once its cause is fixed (a release reinstalled, say), a reload
    // is the host's one way back: a start that works makes it running with a full budget, one that fails leaves it down.
    if (this.stateValue === 'stopped') throw this.stoppedError();
    // One reload at a time: two overlapping ones could leave the older version running.
    while (this.reloading) await this.reloading.catch(() => {});
    const reloading = this.doReload(start);
    this.reloading = reloading;
    try {
      await reloading;
    } finally {
      this.reloading = undefined;
    }
  }

  /** Leaves the down state: the next call starts the plugin again with a full restart budget (reload() also leaves it, at once). */
  reset(): void {
    if (this.stateValue !== 'down') return;
    this.failures = 0;
    this.lastError = undefined;
    this.stateValue = 'idle';
  }

  /** Stops the plugin and fails queued and future calls with SUPERVISOR_STOPPED. */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopped') return;
    this.stateValue = 'stopped';
    this.clearIdleTimer();
    this.clearHealthTimer();
    for (const waiter of this.queue.splice(0)) waiter.reject(this.stoppedError());
    const starting = this.pending;
    const instances = [this.current, await starting?.catch(() => undefined)].filter((i): i is Instance => i !== undefined);
    this.current = undefined;
    await Promise.all([...new Set(instances)].map((instance) => this.retire(instance, 'stop')));
    this.emitter.emit('stop');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async doReload(start: SupervisorOptions['start']): Promise<void> {
    const starting = this.pending;
    if (starting) await starting.catch(() => undefined);
    let next: Instance;
    try {
      next = await this.launch(start, 'reload');
      this.checkAlive(next);
    } catch (error) {
      this.refused('reload', error);
      throw error;
    }
    if (this.stateValue === 'stopped') {
      await this.retire(next, 'stop');
      throw this.stoppedError();
    }
    const previous = this.current;
    this.starter = start;
    this.current = next;
    this.failures = 0;
    this.lastError = undefined;
    this.stateValue = 'running';
    this.startHealthChecks();
    this.emit({ type: 'reloaded', plugin: this.name, pid: next.plugin.pid, previousPid: previous?.plugin.pid });
    if (previous) await this.retire(previous, 'reload');
    this.scheduleIdleStop();
  }

  private checkUsable(): void {
    if (this.stateValue === 'stopped') throw this.stoppedError();
    if (this.stateValue === 'down') {
      throw new GatehouseError(
        'PLUGIN_DOWN',
        `plugin ${this.name} is down after ${this.settings.restart.maxAttempts} failed restarts` +
          `${this.lastError ? ` (last: ${this.lastError.message})` : ''}; fix the cause, then reset() or reload() it`,
      );
    }
  }

  /** A method, not a field read, so that TypeScript does not narrow it across awaits. */
  private isStopped(): boolean {
    return this.stateValue === 'stopped';
  }

  private stoppedError(): GatehouseError {
    return new GatehouseError('SUPERVISOR_STOPPED', `plugin ${this.name}: its supervisor was stopped`);
  }

  private acquireSlot(): Promise<void> {
    if (this.running < this.settings.maxConcurrentCalls) {
      this.running++;
      return Promise.resolve();
    }
    // A bounded queue: a flood of requests gets a clear refusal instead of growing memory without end.
    if (this.queue.length >= this.settings.maxQueuedCalls) {
      return Promise.reject(
        new GatehouseError(
          'PLUGIN_BUSY',
          `plugin ${this.name}: ${this.settings.maxConcurrentCalls} calls running and ${this.queue.length} waiting; try again later`,
        ),
      );
    }
    return new Promise((resolve, reject) => this.queue.push({ resolve, reject }));
  }

  private releaseSlot(): void {
    const next = this.queue.shift();
    // The slot passes straight to the next waiter, so `running` stays the same.
    if (next) next.resolve();
    else this.running--;
  }

  /** The running instance, starting it (or waiting for the start or restart under way). */
  private instance(): Promise<Instance> {
    const current = this.current;
    // One that failed its health check is being killed: a call sent to it would only fail with it. Its exit (handled
    // by exited() first, which was waiting on it before this call came) starts the restart that the call waits for.
    if (current?.killing && current.crashed === undefined) return this.waitFor(current.killing.then(() => this.instance()));
    if (current && current.crashed === undefined) return Promise.resolve(current);
    this.checkUsable();
    return this.waitFor(this.pending ?? this.track(this.startFirst()));
  }

  /**
   * A call's wait for the start under way. A host with nothing else to do must not exit in the middle of
   * it (a pending promise keeps no process alive, and the backoff timer does not while nobody waits).
   */
  private waitFor(starting: Promise<Instance>): Promise<Instance> {
    this.waitingCalls++;
    this.backoffTimer?.ref();
    return starting.finally(() => {
      if (--this.waitingCalls === 0) this.backoffTimer?.unref();
    });
  }

  /** Makes `starting` the start under way, which calls wait for instead of starting another, until it settles. */
  private track(starting: Promise<Instance>): Promise<Instance> {
    const pending: Promise<Instance> = starting.finally(() => {
      // A failed first start hands over to a restart, which is the start under way from then on.
      if (this.pending === pending) this.pending = undefined;
    });
    this.pending = pending;
    return pending;
  }

  private async startFirst(): Promise<Instance> {
    this.stateValue = 'starting';
    try {
      const instance = await this.launch(this.starter, 'first-use');
      if (!this.adopt(instance)) return this.current as Instance;
      this.emit({ type: 'started', plugin: this.name, pid: instance.plugin.pid });
      return instance;
    } catch (error) {
      this.refused('start', error);
      // Counted and backed off as a crash is: a plugin that fails as it starts is not spawned again by every call.
      if (this.current === undefined && !this.isStopped()) {
        this.failures++;
        this.stateValue = 'restarting';
        this.restartInBackground();
      }
      throw error;
    }
  }

  private async launch(start: SupervisorOptions['start'], reason: StartContext['reason']): Promise<Instance> {
    const plugin = await start({ reason });
    const instance: Instance = { plugin, inFlight: 0, idle: [], retiring: false, crashed: undefined, startedAt: Date.now() };
    // Listened to before launch() returns: an exit while `start` still ran is then recorded before the
    // caller resumes, so that the adoption that follows sees it (checkAlive).
    void plugin.exited.then((status) => this.exited(instance, status));
    return instance;
  }

  /** Refuses a new instance whose process has already exited: its start failed, and the error says how. */
  private checkAlive(instance: Instance): void {
    const exit = instance.crashed;
    // A plugin that dies as it starts would otherwise pass for running, and each call would start it again without backoff.
    if (exit === undefined) return;
    const tail = instance.plugin.stderrTail();
    throw new GatehouseError(
      'PLUGIN_EXITED',
      `plugin ${this.name} (pid ${instance.plugin.pid}) exited (${describeExit(exit)}) before it was started${said(tail)}`,
      { details: { exitStatus: exit, stderrTail: tail } },
    );
  }

  /** Makes a newly started instance the running one; false when a reload finished meanwhile and won. */
  private adopt(instance: Instance): boolean {
    if (this.stateValue === 'stopped') {
      void this.retire(instance, 'stop');
      throw this.stoppedError();
    }
    const current = this.current;
    if (current !== undefined && current !== instance && current.crashed === undefined && !current.retiring) {
      // A reload that finished while this start ran is newer: keep it, and stop this one rather than orphan it.
      void this.retire(instance, 'reload');
      return false;
    }
    this.checkAlive(instance);
    this.current = instance;
    this.stateValue = 'running';
    this.startHealthChecks();
    return true;
  }

  private async crashError(instance: Instance, cause: unknown): Promise<GatehouseError> {
    // The exit comes with the end of the stderr pipe: waiting for it gets the lines written just before.
    const settled = await Promise.race([
      instance.plugin.exited,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), CRASH_SETTLE_MS).unref()),
    ]);
    const tail = instance.plugin.stderrTail();
    const exit = settled ?? (cause instanceof GatehouseError ? cause.details.exitStatus : undefined);
    return new GatehouseError(
      'PLUGIN_CRASHED',
      // How it ended is the diagnosis when it said nothing: a plugin killed by SIGXCPU or SIGKILL leaves no last words.
      // The line that says what went wrong: the last three of a Node crash are a stack frame, a blank and its version.
      `plugin ${this.name} (pid ${instance.plugin.pid}) ${instance.killing ? 'was killed during the call, after failing its health check' : 'crashed during the call'}` +
        `${exit ? ` (${describeExit(exit)})` : ''}${said(tail)}` +
        // The exit awaited above has been counted: a crash that spends the restart budget says down, not restarting.
        (this.stateValue === 'down' ? '; restarts ran out: it is down until reset() or reload()' : '; it is being restarted, retry the call'),
      { cause, details: { stderrTail: tail, ...(exit ? { exitStatus: exit } : {}) } },
    );
  }

  private exited(instance: Instance, status: ExitStatus): void {
    if (instance.retiring) return;
    instance.crashed = status;
    // One not adopted yet is refused by its adoption (checkAlive): a failed start, not a crash.
    if (instance !== this.current || this.stateValue === 'stopped') return;
    this.current = undefined;
    this.clearHealthTimer();
    const reason = instance.killing ? 'killed after failing its health check' : 'exited unexpectedly';
    this.emit({ type: 'crashed', plugin: this.name, pid: instance.plugin.pid, reason, stderrTail: instance.plugin.stderrTail() });
    // Attack: a plugin that answers each call and then exits. When a call that worked refilled the budget, it was
    // restarted after every call, for ever; only an instance that stayed up restart.stableMs refills it now.
    if (Date.now() - instance.startedAt >= this.settings.restart.stableMs) this.failures = 0;
    this.failures++;
    this.stateValue = 'restarting';
    // A first start under way (a call's, after an idle stop) stands in for the restart; if it fails, it restarts in turn.
    if (this.pending === undefined) this.restartInBackground();
  }

  private restartInBackground(): void {
    // Nobody may be waiting for this restart; its failure is reported through events and status().
    this.track(this.restartLoop()).catch(() => {});
  }

  /** Restarts with exponential backoff until a start works or the budget is spent (then: down). */
  private async restartLoop(): Promise<Instance> {
    const { maxAttempts, initialDelayMs, maxDelayMs } = this.settings.restart;
    for (;;) {
      if (this.failures > maxAttempts) {
        this.stateValue = 'down';
        const last = this.lastError ?? { code: 'PLUGIN_CRASHED', message: 'the plugin kept crashing' };
        this.emit({ type: 'down', plugin: this.name, attempts: maxAttempts, ...last });
        for (const waiter of this.queue.splice(0)) waiter.reject(new GatehouseError('PLUGIN_DOWN', `plugin ${this.name} is down: ${last.message}`));
        this.checkUsable();
      }
      const delay = Math.min(initialDelayMs * 2 ** (this.failures - 1), maxDelayMs);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        // A restart nobody waits for must not hold the host open; one a call waits for must (waitFor).
        if (this.waitingCalls === 0) timer.unref();
        this.backoffTimer = timer;
      });
      this.backoffTimer = undefined;
      if (this.isStopped()) throw this.stoppedError();
      try {
        const instance = await this.launch(this.starter, 'restart');
        if (!this.adopt(instance)) return this.current as Instance;
        this.restarts++;
        this.emit({ type: 'restarted', plugin: this.name, pid: instance.plugin.pid, attempt: this.failures });
        return instance;
      } catch (error) {
        if (this.isStopped()) throw error;
        this.refused('restart', error);
        this.failures++;
      }
    }
  }

  private refused(during: 'start' | 'restart' | 'reload', error: unknown): void {
    const code = isGatehouseError(error) ? error.code : 'UNEXPECTED';
    const message = error instanceof Error ? error.message : String(error);
    if (during !== 'reload') this.lastError = { code, message };
    this.emit({ type: 'refused', plugin: this.name, during, code, message });
  }

  private callDone(instance: Instance): void {
    instance.inFlight--;
    if (instance.inFlight === 0) for (const resolve of instance.idle.splice(0)) resolve();
    this.scheduleIdleStop();
  }

  /** Waits for the instance's calls (at most drainTimeoutMs), then stops it. */
  private async retire(instance: Instance, reason: 'idle' | 'reload' | 'stop'): Promise<void> {
    instance.retiring = true;
    if (instance.inFlight > 0) {
      await new Promise<void>((resolve) => {
        instance.idle.push(resolve);
        setTimeout(resolve, this.settings.drainTimeoutMs).unref();
      });
    }
    await instance.plugin.kill().catch((error: unknown) => {
      this.settings.logger.warn({ plugin: this.name, error: String(error) }, 'stopping the plugin failed');
    });
    this.emit({ type: 'stopped', plugin: this.name, pid: instance.plugin.pid, reason });
  }

  private scheduleIdleStop(): void {
    const idleMs = this.options.idleTimeoutMs;
    if (idleMs === undefined || this.running > 0 || this.stateValue !== 'running') return;
    this.clearIdleTimer();
    this.idleTimer = setTimeout(() => {
      const instance = this.current;
      if (!instance || this.running > 0 || this.stateValue !== 'running') return;
      this.current = undefined;
      this.stateValue = 'idle';
      this.clearHealthTimer();
      void this.retire(instance, 'idle');
    }, idleMs).unref();
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private startHealthChecks(): void {
    this.clearHealthTimer();
    const interval = this.settings.healthIntervalMs;
    if (interval === 0) return;
    this.healthTimer = setInterval(() => {
      const instance = this.current;
      if (!instance || instance.crashed !== undefined) return;
      instance.plugin.checkHealth(Math.min(interval, 5_000)).catch((error: unknown) => {
        if (instance !== this.current || instance.crashed !== undefined) return;
        // A plugin that is alive but no longer answers (hung, deadlocked) is killed; the exit restarts it.
        if (instance.killing) return;
        this.settings.logger.warn({ plugin: this.name, error: String(error) }, 'plugin failed its health check; restarting it');
        // Attack: a plugin whose helper holds it with ptrace hides its exit: the kill rejects (KILL_FAILED), which went
        // unhandled and ended the host. It is written off as crashed instead, and restarted.
        instance.killing = instance.plugin.kill().then(
          () => {},
          (failure: unknown) => {
            this.settings.logger.error({ plugin: this.name, error: String(failure) }, 'plugin could not be killed after its failed health check; restarting without it');
            this.exited(instance, { code: null, signal: 'SIGKILL' });
          },
        );
      });
    }, interval).unref();
  }

  private clearHealthTimer(): void {
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.healthTimer = undefined;
  }

  private emit(event: SupervisorEvent): void {
    const { type, plugin, ...rest } = event;
    const fields = rest as { pid?: number; reason?: string; code?: string; message?: string };
    this.options.audit?.record({
      type: 'supervisor',
      plugin,
      event: type,
      ...(fields.pid !== undefined ? { pid: fields.pid } : {}),
      ...(fields.code !== undefined ? { code: fields.code } : {}),
      ...(fields.reason !== undefined || fields.message !== undefined ? { reason: fields.reason ?? fields.message } : {}),
    });
    this.emitter.emit('event', event);
  }
}

/** Supervises one plugin; the same as `new PluginSupervisor(options)`. */
export function supervise(options: SupervisorOptions): PluginSupervisor {
  return new PluginSupervisor(options);
}
