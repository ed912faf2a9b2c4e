/**
 * Environment variables that make a program load code from a path they name, before or beside its own: the
 * dynamic loader's (every dynamically linked plugin, node and python among them), glibc's, and the ones of
 * the interpreters a signed script or package runs under. A verified plugin given one of them would run
 * code that no manifest lists and no key signed.
 */
import { GatehouseError } from '../errors.js';

const CODE_LOADING_ENV = new Map<string, string>([
  ['LD_PRELOAD', 'the dynamic loader loads the libraries it names into the plugin'],
  ['LD_LIBRARY_PATH', "the dynamic loader looks there first for the plugin's shared libraries"],
  ['LD_AUDIT', 'the dynamic loader loads the auditing libraries it names into the plugin'],
  ['GCONV_PATH', "glibc's iconv loads character-set modules from there"],
  ['NODE_OPTIONS', 'Node.js takes --require, --import and --loader from it'],
  ['NODE_PATH', 'Node.js resolves modules there'],
  ['NODE_COMPILE_CACHE', "Node.js runs the V8 bytecode cached there, which V8 does not check against the source's content"],
  ['PYTHONPATH', 'Python imports modules from there first'],
  ['PYTHONHOME', 'Python takes its standard library from there'],
  ['PYTHONUSERBASE', 'Python imports site-packages from there'],
  ['PERL5LIB', 'Perl loads modules from there first'],
  ['PERLLIB', 'Perl loads modules from there first'],
  ['PERL5OPT', 'Perl takes -M (load a module) from it'],
  ['RUBYLIB', 'Ruby loads libraries from there first'],
  ['RUBYOPT', 'Ruby takes -r (require a library) from it'],
  ['BASH_ENV', 'bash runs the file it names before the script'],
  ['JAVA_TOOL_OPTIONS', 'the JVM takes -javaagent (load a jar) from it'],
  ['JDK_JAVA_OPTIONS', 'the java launcher takes -javaagent (load a jar) from it'],
  ['_JAVA_OPTIONS', 'the JVM takes -javaagent (load a jar) from it'],
]);

/** Every name refused by {@link checkCodeLoadingEnv}. */
export const CODE_LOADING_ENV_NAMES: readonly string[] = [...CODE_LOADING_ENV.keys()];

/**
 * Refuses (UNVERIFIED_CODE_ENV) a verified plugin's environment that names a variable of the list, unless
 * `allowed` names it: the caller then asked by name for the plugin to load what that variable points at.
 * An allowed name outside the list is INVALID_OPTIONS, a mistake rather than a permission.
 */
export function checkCodeLoadingEnv(env: Readonly<Record<string, string>> | undefined, allowed: readonly string[] = []): void {
  for (const name of allowed) {
    if (!CODE_LOADING_ENV.has(name)) {
      throw new GatehouseError('INVALID_OPTIONS', `allowUnverifiedCodeEnv names ${JSON.stringify(name)}, which loads no code; it takes only ${CODE_LOADING_ENV_NAMES.join(', ')}`);
    }
  }
  for (const name of Object.keys(env ?? {})) {
    const why = CODE_LOADING_ENV.get(name);
    // Attack: a verified plugin made to run a file nobody signed, through its loader, runtime or shell.
    if (why !== undefined && !allowed.includes(name)) {
      throw new GatehouseError(
        'UNVERIFIED_CODE_ENV',
        `env sets ${name}: ${why}, so the verified plugin would run code its manifest does not list; leave it out, ` +
          `or pass allowUnverifiedCodeEnv: [${JSON.stringify(name)}] to run that code on purpose`,
      );
    }
  }
}
