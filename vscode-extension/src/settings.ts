/**
 * The extension's settings (`inhouse.*`) and their mapping to what the language server reads: the
 * `initializationOptions` of `initialize` and the `inhouse` section of `workspace/didChangeConfiguration`.
 * Pure (no `vscode` import) so the unit tests can run it; extension.ts feeds it `WorkspaceConfiguration.get`.
 */

/** Reads one key of the `inhouse` section, e.g. `get("backendUrl")`; `undefined` when unset. */
export type SettingGetter = (key: string) => unknown;

/** Every `inhouse.*` setting, validated and with defaults applied. */
export interface ExtensionSettings {
  readonly enable: boolean;
  readonly serverCommand: string;
  readonly backendUrl: string;
  readonly adapter: string;
  readonly enabledLanguages: readonly string[];
  readonly maxTokens: number;
  readonly telemetry: boolean;
  readonly tokenizer: string;
  readonly profile: string;
  readonly promptOrder: string;
}

/** The settings the language server understands (names fixed by the LSP contract). */
export interface ServerSettings {
  readonly backendUrl: string;
  readonly adapter: string | null;
  readonly enabledLanguages: string[];
  readonly maxTokens: number | null;
  readonly telemetry: boolean;
  readonly tokenizer: string | null;
  readonly profile: string | null;
  readonly promptOrder: string | null;
}

export const DEFAULTS: ExtensionSettings = Object.freeze({
  enable: true,
  serverCommand: '',
  backendUrl: 'http://127.0.0.1:8080',
  adapter: '',
  enabledLanguages: Object.freeze([]) as readonly string[],
  maxTokens: 0,
  telemetry: false,
  tokenizer: '',
  profile: '',
  promptOrder: '',
});

/** Prompt orders the language server accepts for `promptOrder` ('' keeps the model's profile). */
export const PROMPT_ORDERS: readonly string[] = Object.freeze(['', 'psm', 'spm', 'l2r']);

export const MAX_TOKENS_LIMIT = 1024;

/**
 * VS Code language ids the server knows (core/languages.toml). Only these documents are sent to the server:
 * other files (settings.json, notes, logs) never become prompt context.
 */
export const SERVER_LANGUAGES: readonly string[] = Object.freeze([
  'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact', 'java', 'c', 'cpp', 'csharp', 'go',
  'rust', 'shellscript', 'verilog', 'systemverilog', 'vhdl',
]);

/** Languages whose documents the client syncs: the enabled ones when set, else every language the server knows. */
export function syncedLanguages(s: ExtensionSettings): string[] {
  return s.enabledLanguages.length > 0 ? [...s.enabledLanguages] : [...SERVER_LANGUAGES];
}

/** A setting that had a value of the wrong shape; the default is used instead and the user is told. */
export interface SettingProblem {
  readonly key: string;
  readonly message: string;
}

function str(get: SettingGetter, key: string, fallback: string, problems: SettingProblem[]): string {
  const value = get(key);
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') {
    problems.push({ key, message: `\`inhouse.${key}\` must be a string, got ${JSON.stringify(value)}` });
    return fallback;
  }
  return value.trim();
}

function bool(get: SettingGetter, key: string, fallback: boolean, problems: SettingProblem[]): boolean {
  const value = get(key);
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') {
    problems.push({ key, message: `\`inhouse.${key}\` must be true or false, got ${JSON.stringify(value)}` });
    return fallback;
  }
  return value;
}

/** Reads and validates every setting; wrong values fall back to the default and are listed in `problems`. */
export function readSettings(get: SettingGetter): { settings: ExtensionSettings; problems: SettingProblem[] } {
  const problems: SettingProblem[] = [];
  let maxTokens = DEFAULTS.maxTokens;
  const rawMax = get('maxTokens');
  if (rawMax !== undefined && rawMax !== null) {
    if (typeof rawMax !== 'number' || !Number.isInteger(rawMax) || rawMax < 0 || rawMax > MAX_TOKENS_LIMIT) {
      problems.push({
        key: 'maxTokens',
        message: `\`inhouse.maxTokens\` must be an integer in 0..${MAX_TOKENS_LIMIT} (0: the model's profile), got ${JSON.stringify(rawMax)}`,
      });
    } else {
      maxTokens = rawMax;
    }
  }
  let enabledLanguages: readonly string[] = DEFAULTS.enabledLanguages;
  const rawLangs = get('enabledLanguages');
  if (rawLangs !== undefined && rawLangs !== null) {
    if (!Array.isArray(rawLangs) || rawLangs.some((x) => typeof x !== 'string')) {
      problems.push({
        key: 'enabledLanguages',
        message: `\`inhouse.enabledLanguages\` must be a list of language ids, got ${JSON.stringify(rawLangs)}`,
      });
    } else {
      // de-duplicated, order kept, blanks dropped
      enabledLanguages = [...new Set((rawLangs as string[]).map((x) => x.trim()).filter((x) => x.length > 0))];
    }
  }
  let backendUrl = str(get, 'backendUrl', DEFAULTS.backendUrl, problems);
  if (backendUrl === '') backendUrl = DEFAULTS.backendUrl;
  if (!/^https?:\/\/[^\s/]+/.test(backendUrl)) {
    problems.push({ key: 'backendUrl', message: `\`inhouse.backendUrl\` must be an http(s) URL, got "${backendUrl}"` });
    backendUrl = DEFAULTS.backendUrl;
  }
  let promptOrder = str(get, 'promptOrder', DEFAULTS.promptOrder, problems);
  if (!PROMPT_ORDERS.includes(promptOrder)) {
    problems.push({ key: 'promptOrder', message: `\`inhouse.promptOrder\` must be one of psm, spm, l2r, got "${promptOrder}"` });
    promptOrder = DEFAULTS.promptOrder;
  }
  const settings: ExtensionSettings = Object.freeze({
    enable: bool(get, 'enable', DEFAULTS.enable, problems),
    serverCommand: str(get, 'server.command', DEFAULTS.serverCommand, problems),
    backendUrl: backendUrl.replace(/\/+$/, ''),
    adapter: str(get, 'adapter', DEFAULTS.adapter, problems),
    enabledLanguages: Object.freeze(enabledLanguages),
    maxTokens,
    telemetry: bool(get, 'telemetry', DEFAULTS.telemetry, problems),
    tokenizer: str(get, 'tokenizer', DEFAULTS.tokenizer, problems),
    profile: str(get, 'profile', DEFAULTS.profile, problems),
    promptOrder,
  });
  return { settings, problems };
}

/**
 * What the server gets: empty adapter/tokenizer/profile/promptOrder and maxTokens 0 become null ("use the
 * server's default": the completion profile the model or adapter carries).
 */
export function toServerSettings(s: ExtensionSettings): ServerSettings {
  return {
    backendUrl: s.backendUrl,
    adapter: s.adapter === '' ? null : s.adapter,
    enabledLanguages: [...s.enabledLanguages],
    maxTokens: s.maxTokens === 0 ? null : s.maxTokens,
    telemetry: s.telemetry,
    tokenizer: s.tokenizer === '' ? null : s.tokenizer,
    profile: s.profile === '' ? null : s.profile,
    promptOrder: s.promptOrder === '' ? null : s.promptOrder,
  };
}

/** The `params.settings` of `workspace/didChangeConfiguration`: the server settings under "inhouse". */
export function didChangeConfigurationSettings(s: ExtensionSettings): { inhouse: ServerSettings } {
  return { inhouse: toServerSettings(s) };
}

/**
 * True when going from `before` to `after` needs a new server process: another command line, or a language
 * whose documents the running client does not sync yet.
 */
export function needsRestart(before: ExtensionSettings, after: ExtensionSettings): boolean {
  if (before.serverCommand !== after.serverCommand) return true;
  const synced = new Set(syncedLanguages(before));
  return syncedLanguages(after).some((id) => !synced.has(id));
}

/** True when the change is one the running server must hear about (anything but enable/restart keys). */
export function needsServerUpdate(affects: (section: string) => boolean): boolean {
  return ['backendUrl', 'adapter', 'enabledLanguages', 'maxTokens', 'telemetry', 'tokenizer', 'profile', 'promptOrder'].some((key) =>
    affects(`inhouse.${key}`),
  );
}
