/** Unit tests: `inhouse.*` settings -> validated values -> what the language server receives. */
import { strict as assert } from 'node:assert';
import {
  DEFAULTS,
  didChangeConfigurationSettings,
  needsRestart,
  needsServerUpdate,
  readSettings,
  SettingGetter,
  syncedLanguages,
  toServerSettings,
} from '../settings';

const from = (values: Record<string, unknown>): SettingGetter => (key) => values[key];

describe('readSettings', () => {
  it('gives the defaults when nothing is set', () => {
    const { settings, problems } = readSettings(from({}));
    assert.deepEqual(settings, DEFAULTS);
    assert.deepEqual(problems, []);
  });

  it('keeps valid values, trims strings, strips the URL\'s trailing slash, de-duplicates languages', () => {
    const { settings, problems } = readSettings(
      from({
        enable: false,
        'server.command': '  /opt/inhouse/.venv/bin/inhouse lsp ',
        backendUrl: 'http://gpu-box:8080/',
        adapter: ' team-a ',
        enabledLanguages: ['python', ' typescript', 'python', ''],
        maxTokens: 128,
        telemetry: true,
        tokenizer: '/models/tiny/tokenizer.json',
      }),
    );
    assert.deepEqual(problems, []);
    assert.equal(settings.enable, false);
    assert.equal(settings.serverCommand, '/opt/inhouse/.venv/bin/inhouse lsp');
    assert.equal(settings.backendUrl, 'http://gpu-box:8080');
    assert.equal(settings.adapter, 'team-a');
    assert.deepEqual(settings.enabledLanguages, ['python', 'typescript']);
    assert.equal(settings.maxTokens, 128);
    assert.equal(settings.telemetry, true);
    assert.equal(settings.tokenizer, '/models/tiny/tokenizer.json');
  });

  const bad: Array<[string, unknown]> = [
    ['maxTokens', -1],
    ['promptOrder', 'fim'],
    ['maxTokens', 1.5],
    ['maxTokens', 5000],
    ['maxTokens', '64'],
    ['enabledLanguages', 'python'],
    ['enabledLanguages', ['python', 3]],
    ['backendUrl', 'gpu-box:8080'],
    ['telemetry', 'yes'],
    ['adapter', 42],
  ];
  for (const [key, value] of bad) {
    it(`falls back to the default and names the field for ${key}=${JSON.stringify(value)}`, () => {
      const { settings, problems } = readSettings(from({ [key]: value }));
      assert.equal(problems.length, 1);
      assert.equal(problems[0].key, key);
      assert.match(problems[0].message, new RegExp(`inhouse\\.${key}`));
      assert.ok(problems[0].message.includes(JSON.stringify(value).replace(/^"|"$/g, '')), problems[0].message);
      assert.deepEqual((settings as unknown as Record<string, unknown>)[key], (DEFAULTS as unknown as Record<string, unknown>)[key]);
    });
  }

  it('treats an empty backend URL as the default', () => {
    assert.equal(readSettings(from({ backendUrl: '' })).settings.backendUrl, DEFAULTS.backendUrl);
  });
});

describe('toServerSettings', () => {
  it('maps empty adapter and tokenizer to null and keeps the contract\'s field names', () => {
    const s = toServerSettings(readSettings(from({})).settings);
    assert.deepEqual(s, {
      backendUrl: 'http://127.0.0.1:8080',
      adapter: null,
      enabledLanguages: [],
      maxTokens: null,
      telemetry: false,
      tokenizer: null,
      profile: null,
      promptOrder: null,
    });
    assert.deepEqual(Object.keys(s).sort(), ['adapter', 'backendUrl', 'enabledLanguages', 'maxTokens', 'profile', 'promptOrder', 'telemetry', 'tokenizer']);
  });

  it('never sends extension-only settings (enable, server.command)', () => {
    const s = toServerSettings(readSettings(from({ enable: false, 'server.command': 'x lsp', adapter: 'hw' })).settings);
    assert.equal(s.adapter, 'hw');
    assert.ok(!('enable' in s) && !('server' in s) && !('serverCommand' in s));
  });

  it('puts the settings under "inhouse" for didChangeConfiguration', () => {
    const settings = readSettings(from({ maxTokens: 16, adapter: 'verif' })).settings;
    const payload = didChangeConfigurationSettings(settings);
    assert.deepEqual(Object.keys(payload), ['inhouse']);
    assert.equal(payload.inhouse.maxTokens, 16);
    assert.equal(payload.inhouse.adapter, 'verif');
  });

  it('returns a copy of the language list', () => {
    const settings = readSettings(from({ enabledLanguages: ['go'] })).settings;
    const s = toServerSettings(settings);
    s.enabledLanguages.push('rust');
    assert.deepEqual(settings.enabledLanguages, ['go']);
  });
});

describe('which changes restart the server', () => {
  const base = readSettings(from({})).settings;
  const withValues = (values: Record<string, unknown>) => readSettings(from(values)).settings;
  it('restarts for another server command', () => {
    assert.equal(needsRestart(base, withValues({ 'server.command': '/x/inhouse lsp' })), true);
    assert.equal(needsRestart(base, withValues({ maxTokens: 8, adapter: 'a', telemetry: true })), false);
  });
  it('restarts when a language the client does not sync yet is enabled', () => {
    assert.equal(needsRestart(base, withValues({ enabledLanguages: ['python'] })), false);
    assert.equal(needsRestart(base, withValues({ enabledLanguages: ['python', 'fortran'] })), true);
    const pyOnly = withValues({ enabledLanguages: ['python'] });
    assert.equal(needsRestart(pyOnly, withValues({ enabledLanguages: ['python', 'go'] })), true);
    assert.equal(needsRestart(pyOnly, base), true);
  });
  it('forwards server-side settings and not the toggle', () => {
    assert.equal(needsServerUpdate((s) => s === 'inhouse.adapter'), true);
    assert.equal(needsServerUpdate((s) => s === 'inhouse.enable'), false);
    assert.equal(needsServerUpdate((s) => s === 'inhouse.telemetry'), true);
  });
});

describe('syncedLanguages', () => {
  it('is every language the server knows by default, the enabled ones when set', () => {
    const all = syncedLanguages(readSettings(from({})).settings);
    for (const id of ['python', 'typescript', 'systemverilog', 'vhdl']) assert.ok(all.includes(id), id);
    assert.ok(!all.includes('json') && !all.includes('jsonc') && !all.includes('plaintext'));
    assert.deepEqual(syncedLanguages(readSettings(from({ enabledLanguages: ['go', 'rust'] })).settings), ['go', 'rust']);
  });
});
