/**
 * Method options: each method (analysis or fix) declares the options it reads in its own file —
 * type, default and one line of documentation — and everything that sets them (`--option
 * method.key=value`, "methodOptions" in backdoor-lens.json, editor settings) is checked against
 * those declarations here, so an unknown method or key is an error that names the known ones
 * instead of a setting silently ignored.
 */
import { usageError } from './errors';

export interface OptionSpec {
  /** 'integer' and 'number' take numbers, 'boolean' true or false, 'string' any text the method checks itself. */
  type: 'number' | 'integer' | 'boolean' | 'string';
  /** The value a method uses when the option is not given; absent when "not given" means something of its own. */
  default?: number | string | boolean;
  /** What it does, in one line. */
  doc: string;
}

/** A method's options by key. */
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Options by method id, then key (`{ pairs: { imagesPerClass: 20 } }`). */
export type MethodOptions = Record<string, Record<string, unknown>>;

/** Declared options by method id. */
export type DeclaredOptions = ReadonlyMap<string, OptionSpecs>;

const knownText = (list: readonly string[]) => list.join(', ') || 'none';

/** The declarations of one method; a usage error naming the known methods when there is no such method. */
function specsOf(declared: DeclaredOptions, method: string): OptionSpecs {
  const specs = declared.get(method);
  if (!specs) throw usageError(`unknown method '${method}' in option ${method}.…; methods with options: ${knownText([...declared.keys()])}`);
  return specs;
}

/** The declaration of method.key; a usage error naming the method's known keys when it has no such option. */
function specOf(declared: DeclaredOptions, method: string, key: string): OptionSpec {
  const specs = specsOf(declared, method);
  const spec = Object.hasOwn(specs, key) ? specs[key] : undefined;
  if (!spec) throw usageError(`unknown option '${method}.${key}'; ${method} takes ${knownText(Object.keys(specs))}`);
  return spec;
}

/** A value given as text (`--option`), as the declared type. */
function fromText(method: string, key: string, spec: OptionSpec, text: string): unknown {
  if (spec.type === 'string') return text;
  if (spec.type === 'boolean') {
    if (text === 'true' || text === 'false') return text === 'true';
    throw usageError(`option ${method}.${key} must be true or false, got '${text}'`);
  }
  const n = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(n)) throw usageError(`option ${method}.${key} must be a number, got '${text}'`);
  if (spec.type === 'integer' && !Number.isInteger(n)) throw usageError(`option ${method}.${key} must be a whole number, got '${text}'`);
  return n;
}

/**
 * Parses `--option [method.]key=value` items into options by method, each value as its declared
 * type. `method.` may be left out when the command names one method (`fix --method bna`):
 * the key is then that method's.
 */
export function parseOptionItems(items: readonly string[], declared: DeclaredOptions, ownMethod?: string): MethodOptions {
  const out: MethodOptions = {};
  for (const item of items) {
    const m = /^(?:([A-Za-z0-9_-]+)\.)?([A-Za-z0-9_]+)=(.*)$/s.exec(item);
    if (!m) throw usageError(`--option must look like method.key=value, got '${item}'`);
    const method = m[1] ?? ownMethod;
    if (!method) throw usageError(`--option ${item} names no method; write method.${m[2]}=${m[3]} (methods with options: ${knownText([...declared.keys()])})`);
    (out[method] ??= {})[m[2]] = fromText(method, m[2], specOf(declared, method, m[2]), m[3]);
  }
  return out;
}

/** Checks options set as values (backdoor-lens.json, editor settings): every method and key declared, numbers and booleans as declared. */
export function checkMethodOptions(options: MethodOptions | undefined, declared: DeclaredOptions, where: string): void {
  for (const [method, values] of Object.entries(options ?? {})) {
    for (const [key, value] of Object.entries(values ?? {})) {
      let spec: OptionSpec;
      try {
        spec = specOf(declared, method, key);
      } catch (e) {
        throw usageError(`${(e as Error).message} (${where})`);
      }
      const ok = spec.type === 'string' || (spec.type === 'boolean' ? typeof value === 'boolean' || value === 'true' || value === 'false' : typeof value === 'number' || (typeof value === 'string' && Number.isFinite(Number(value))));
      if (!ok) throw usageError(`option ${method}.${key} must be ${spec.type === 'boolean' ? 'true or false' : 'a number'}, got ${JSON.stringify(value)} (${where})`);
    }
  }
}

/** Options laid over others per method (a method's keys merge; the later value of a key wins). */
export function mergeMethodOptions(...layers: (MethodOptions | undefined)[]): MethodOptions {
  const out: MethodOptions = {};
  for (const layer of layers) for (const [method, values] of Object.entries(layer ?? {})) out[method] = { ...out[method], ...values };
  return out;
}

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

/** The declared options of these methods as help text: name, type, what it does and its default, wrapped to 110 columns. */
export function optionsHelp(declared: ReadonlyMap<string, OptionSpecs>, methods: readonly string[] = [...declared.keys()]): string {
  const lines: string[] = [];
  const indent = ' '.repeat(2 + 27 + 8);
  for (const method of methods) {
    for (const [key, spec] of Object.entries(declared.get(method) ?? {})) {
      const text = `${spec.doc}${spec.default === undefined ? '' : ` (default ${spec.default})`}`;
      const [first, ...rest] = wrap(text, 110 - indent.length);
      lines.push(`  ${`${method}.${key}`.padEnd(26)} ${spec.type.padEnd(7)} ${first}`, ...rest.map((l) => indent + l));
    }
  }
  return lines.join('\n');
}
