/**
 * The command line's words in one table: every command with its flags, summary and example, so
 * parsing, `--help`, `<command> --help` and "did you mean" all read the same facts.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { didYouMean } from '../core/suggest.ts';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** `--config <file>`: the value's name in the help. */
  readonly value?: string;
  readonly help: string;
}

export interface CommandSpec {
  /** One line for the list of commands. */
  readonly brief: string;
  readonly summary: string;
  /** The flags it takes besides --help. */
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly examples: readonly string[];
  /** Said under the flags: defaults, environment, what else to know. */
  readonly notes?: string;
}

/** Thrown for a bad command line: the CLI prints it and exits 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `--flag <value>   help` lines, aligned. */
export function flagLines(flags: Readonly<Record<string, FlagSpec>>): string {
  const rows = Object.entries(flags).map(([name, flag]) => [`${flag.short ? `-${flag.short}, ` : '    '}--${name}${flag.value ? ` ${flag.value}` : ''}`, flag.help] as const);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, help]) => `  ${left.padEnd(width)}${help.replaceAll('\n', `\n  ${' '.repeat(width)}`)}`).join('\n');
}

/** `meshsync <command> --help`. */
export function commandHelp(name: string, spec: CommandSpec): string {
  return [
    `Usage: meshsync ${name} [options]`,
    '',
    spec.summary,
    '',
    'Options:',
    flagLines({ ...spec.flags, help: { type: 'boolean', short: 'h', help: 'show this help' } }),
    ...(spec.notes ? ['', spec.notes] : []),
    '',
    spec.examples.length > 1 ? 'Examples:' : 'Example:',
    ...spec.examples.map((example) => `  ${example}`),
  ].join('\n');
}

/**
 * node:util parseArgs over a command's flags, with errors that name the cause: an unknown flag with
 * the nearest known one (parseArgs' own text suggests `-- "--bogus` with an unclosed quote), a
 * flag that belongs to another command, a missing value.
 */
export function parseFlags(command: string, argv: readonly string[], flags: Readonly<Record<string, FlagSpec>>, elsewhere: Readonly<Record<string, string>> = {}) {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, flag] of Object.entries(flags)) options[name] = flag.short ? { type: flag.type, short: flag.short } : { type: flag.type };
  // Non-strict first, to find every flag given and check it against this command's.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const known = Object.keys(options);
  for (const token of tokens) {
    if (token.kind !== 'option' || known.includes(token.name)) continue;
    const given = token.rawName;
    if (token.rawName.startsWith('--') && elsewhere[token.name]) {
      throw new UsageError(`${given} is an option of ${elsewhere[token.name]}, not of ${command}`, command);
    }
    const names = [...known.slice(1), known[0]].map((name) => `--${name}`);
    const typed = given.startsWith('--') ? given : `--${token.name}`;
    // Nearest among this command's flags, else among another command's (`run --tiemout`: snapshot's --timeout).
    const hint = didYouMean(typed, names, (name) => name)
      || didYouMean(typed, Object.keys(elsewhere).map((name) => `--${name}`), (name) => `${name} (an option of ${elsewhere[name.slice(2)]})`);
    throw new UsageError(`unknown option ${given}${hint}; ${command} takes ${names.join(', ')}`, command);
  }
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const name = /'(?:-\w, )?(--[\w-]+)/.exec((error as Error).message)?.[1];
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && name) {
      const flag = flags[name.slice(2)];
      throw new UsageError(flag?.type === 'boolean' ? `${name} takes no value` : `${name} needs a value${flag?.value ? ` (${name} ${flag.value})` : ''}`, command);
    }
    throw new UsageError((error as Error).message, command);
  }
}
