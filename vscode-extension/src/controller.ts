/**
 * Runs the inhouse language server (`inhouse lsp` over stdio) through vscode-languageclient and keeps the
 * status bar, settings and acceptance reports in step with it. extension.ts creates one and wires commands.
 * All completion logic lives in the server; this side only starts it, forwards settings, and reports.
 */
import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClientOptions,
  RevealOutputChannelOn,
  State,
} from 'vscode-languageclient/node';
import {
  ACCEPTED_COMMAND,
  AcceptedArgs,
  ghostRemainder,
  PartialAcceptTracker,
  serverSuggestionId,
  ShownSuggestion,
} from './acceptance';
import { findExecutable, resolveServerCommand, ServerCommand, StartFailure, startFailureMessage } from './serverCommand';
import { QuietLanguageClient, spawnServer, systemProbes } from './serverProcess';
import {
  didChangeConfigurationSettings,
  ExtensionSettings,
  needsRestart,
  needsServerUpdate,
  readSettings,
  syncedLanguages,
  toServerSettings,
} from './settings';
import { initialStatus, reduce, render, StatusEvent, StatusModel, StatusNotification } from './status';

export const STATUS_NOTIFICATION = '$/inhouse/status';
/** Local command put on every suggestion; VS Code runs it when the suggestion is accepted in full. */
export const INTERNAL_ACCEPTED = 'inhouse.internal.accepted';
const MAX_RESTARTS = 3;
/** A server that sends no `$/inhouse/status` within this long after `initialize` is taken as ready. */
const STATUS_GRACE_MS = 5000;
const RESTART_WINDOW_MS = 3 * 60 * 1000;

export class Controller implements vscode.Disposable {
  private client: QuietLanguageClient | undefined;
  private status: StatusModel;
  private settings: ExtensionSettings;
  private readonly tracker = new PartialAcceptTracker();
  private readonly disposables: vscode.Disposable[] = [];
  private restarts: number[] = [];
  /** The company gateway's URL and this user's token (signIn.ts), sent with the initialization options. */
  gatewaySettings: Record<string, string> = {};
  private starting = false;
  private failureShown = false;
  private stderrTail = '';
  private lastExit: number | null | undefined;
  private currentCommand: ServerCommand | undefined;

  constructor(
    private readonly log: vscode.LogOutputChannel,
    private readonly statusItem: vscode.StatusBarItem,
  ) {
    this.settings = this.loadSettings(false);
    this.status = initialStatus(this.settings.enable);
    this.paint();
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => void this.onConfigurationChanged(e)),
      vscode.workspace.onDidChangeTextDocument((e) => this.onDocumentChanged(e)),
      vscode.workspace.onDidCloseTextDocument((d) => this.tracker.clear(d.uri.toString())),
    );
  }

  private dispatch(event: StatusEvent): void {
    this.status = reduce(this.status, event);
    this.paint();
  }

  private paint(): void {
    const r = render(this.status);
    this.statusItem.text = r.text;
    this.statusItem.tooltip = r.tooltip;
    this.statusItem.accessibilityInformation = { label: r.text.replace(/\$\([^)]*\)\s*/g, ''), role: 'button' };
    this.statusItem.backgroundColor =
      r.background === null ? undefined : new vscode.ThemeColor(`statusBarItem.${r.background}Background`);
    this.statusItem.show();
  }

  private loadSettings(report: boolean): ExtensionSettings {
    const cfg = vscode.workspace.getConfiguration('inhouse');
    const { settings, problems } = readSettings((key) => cfg.get(key));
    for (const p of problems) {
      this.log.warn(p.message);
      if (report) void vscode.window.showWarningMessage(`inhouse: ${p.message}; using the default.`);
    }
    return settings;
  }

  private workspaceFolders(): string[] {
    return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  }

  /** Starts the server; on failure shows one message with the fix and leaves the status bar at "failed". */
  async start(): Promise<void> {
    if (this.client || this.starting) return;
    this.starting = true;
    this.failureShown = false;
    this.settings = this.loadSettings(true);
    this.dispatch({ kind: 'starting' });
    const probes = systemProbes();
    const folders = this.workspaceFolders();
    const cmd = resolveServerCommand(this.settings.serverCommand, folders, probes);
    this.currentCommand = cmd;
    this.log.info(`starting the language server: ${cmd.display} (from ${cmd.source})`);
    if (cmd.source === 'missing' || !findExecutable(cmd.command, probes)) {
      this.starting = false;
      this.fail(cmd, { errorCode: 'ENOENT' });
      return;
    }
    this.stderrTail = '';
    this.lastExit = undefined;
    const serverOptions = spawnServer(cmd, folders[0] ?? os.homedir(), {
      onStderr: (text) => {
        this.stderrTail = (this.stderrTail + text).slice(-4000);
      },
      onExit: (code) => {
        this.lastExit = code;
      },
    });
    const client = new QuietLanguageClient('inhouse', 'inhouse', serverOptions, this.clientOptions());
    // textDocument/inlineCompletion is a proposed LSP 3.18 feature in vscode-languageclient 10
    client.registerProposedFeatures();
    let heardStatus = false;
    client.onNotification(STATUS_NOTIFICATION, (params: StatusNotification) => {
      heardStatus = true;
      this.log.debug(`status ${JSON.stringify(params)}`);
      this.dispatch({ kind: 'server', params });
    });
    this.client = client;
    try {
      await client.start();
      this.log.info(`language server started: ${JSON.stringify(client.initializeResult?.serverInfo ?? {})}`);
      // the server reports ready (with the model) once it has reached its backend; wait for that
      const timer = setTimeout(() => {
        if (!heardStatus && this.client === client) this.dispatch({ kind: 'started' });
      }, STATUS_GRACE_MS);
      this.disposables.push({ dispose: () => clearTimeout(timer) });
    } catch (err) {
      this.client = undefined;
      await client.dispose(2000).catch(() => undefined);
      const e = err as NodeJS.ErrnoException;
      this.fail(cmd, { errorCode: e?.code, exitCode: this.lastExit, stderrTail: this.stderrTail, message: e?.message });
    } finally {
      this.starting = false;
    }
  }

  private fail(cmd: ServerCommand, failure: StartFailure): void {
    const message = startFailureMessage(cmd, failure);
    this.log.error(message);
    if (failure.stderrTail) this.log.error(`server stderr:\n${failure.stderrTail}`);
    this.dispatch({ kind: 'failed', detail: message });
    if (this.failureShown) return;
    this.failureShown = true;
    void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Server Log').then((choice) => {
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'inhouse.server.command');
      else if (choice === 'Show Server Log') this.log.show(true);
    });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        if (client.state !== State.Stopped) await client.stop(3000);
      } catch (err) {
        this.log.warn(`stopping the language server: ${String(err)}`);
      }
      await client.dispose(1000).catch(() => undefined);
    }
    this.dispatch({ kind: 'stopped' });
  }

  async restart(): Promise<void> {
    this.log.info('restarting the language server');
    this.restarts = [];
    await this.stop();
    await this.start();
  }

  /** Flips `inhouse.enable` where it is set (workspace or user settings). */
  async toggle(): Promise<void> {
    const cfg = vscode.workspace.getConfiguration('inhouse');
    const inspected = cfg.inspect<boolean>('enable');
    const target =
      inspected?.workspaceFolderValue !== undefined
        ? vscode.ConfigurationTarget.WorkspaceFolder
        : inspected?.workspaceValue !== undefined
          ? vscode.ConfigurationTarget.Workspace
          : vscode.ConfigurationTarget.Global;
    const next = !this.status.enabled;
    // show the new state at once; the configuration event confirms it
    this.dispatch({ kind: 'setEnabled', enabled: next });
    await cfg.update('enable', next, target);
    if (!next) await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    this.log.info(`completions ${next ? 'on' : 'off'}`);
  }

  /** Ctrl+Right on a suggestion: VS Code's accept-next-word, announced to the tracker first. */
  async acceptNextWord(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (editor) this.tracker.expectPartial(editor.document.uri.toString());
    await vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextWord');
  }

  showLog(): void {
    this.log.show(true);
  }

  private clientOptions(): LanguageClientOptions {
    return {
      documentSelector: syncedLanguages(this.settings).flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
      ]),
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: { ...toServerSettings(this.settings), ...this.gatewaySettings },
      initializationFailedHandler: () => false,
      errorHandler: {
        error: (_error, _message, count) => ({
          action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown,
          handled: true,
        }),
        closed: () => this.onConnectionClosed(),
      },
      middleware: {
        provideInlineCompletionItems: (document, position, context, token, next) =>
          this.provideInlineCompletionItems(document, position, context, token, next),
        workspace: {
          // the server may pull its settings (workspace/configuration): give it the mapped "inhouse" section
          configuration: async (params, token, next) => {
            const fallback = await next(params, token);
            if (!Array.isArray(fallback)) return fallback;
            return params.items.map((item, i) =>
              item.section === 'inhouse' ? toServerSettings(this.settings) : fallback[i],
            );
          },
        },
      },
    };
  }

  private onConnectionClosed(): { action: CloseAction; handled: boolean } {
    if (this.starting) return { action: CloseAction.DoNotRestart, handled: true };
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    if (this.restarts.length < MAX_RESTARTS) {
      this.restarts.push(now);
      this.log.warn(`the language server stopped (exit ${this.lastExit}); restarting`);
      this.dispatch({ kind: 'starting' });
      setTimeout(() => {
        if (this.client?.state === State.Running) this.dispatch({ kind: 'started' });
      }, 3000);
      return { action: CloseAction.Restart, handled: true };
    }
    const client = this.client;
    this.client = undefined;
    void client?.dispose(1000).catch(() => undefined);
    this.fail(this.currentCommand ?? resolveServerCommand('', [], systemProbes()), {
      exitCode: this.lastExit,
      stderrTail: this.stderrTail,
      message: `it stopped ${MAX_RESTARTS + 1} times in ${RESTART_WINDOW_MS / 60000} minutes`,
    });
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  private async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
    next: (
      document: vscode.TextDocument,
      position: vscode.Position,
      context: vscode.InlineCompletionContext,
      token: vscode.CancellationToken,
    ) => vscode.ProviderResult<vscode.InlineCompletionItem[] | vscode.InlineCompletionList>,
  ): Promise<vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined> {
    if (!this.status.enabled) return null;
    this.dispatch({ kind: 'requestStarted' });
    try {
      const result = await next(document, position, context, token);
      if (!result || token.isCancellationRequested) return result;
      const items = Array.isArray(result) ? result : result.items;
      const uri = document.uri.toString();
      const shown: ShownSuggestion[] = [];
      for (const item of items) {
        const text = typeof item.insertText === 'string' ? item.insertText : item.insertText.value;
        const start = item.range && item.range.start.line === position.line ? item.range.start : position;
        const typed = start.isBefore(position) ? document.getText(new vscode.Range(start, position)) : null;
        const remaining = ghostRemainder(text, typed);
        const id = serverSuggestionId(item.command);
        const args: AcceptedArgs = {
          ...(id !== undefined ? { id } : {}),
          uri,
          languageId: document.languageId,
          line: start.line,
          character: start.character,
          text,
          suggestion: text,
          full: true,
        };
        item.command = { command: INTERNAL_ACCEPTED, title: 'inhouse: accepted', arguments: [args, item.command] };
        if (remaining !== null && remaining !== '') {
          shown.push({
            ...(id !== undefined ? { id } : {}),
            uri,
            languageId: document.languageId,
            line: position.line,
            character: position.character,
            remaining,
            suggestion: text,
          });
        }
      }
      this.tracker.setShown(uri, shown);
      this.log.debug(`${items.length} suggestion(s) for ${document.uri.fsPath}:${position.line + 1}`);
      return result;
    } catch (err) {
      // a failed completion never reaches the editor as an error; the server reports backend trouble itself
      if (!token.isCancellationRequested) this.log.warn(`inline completion failed: ${String(err)}`);
      return null;
    } finally {
      this.dispatch({ kind: 'requestFinished' });
    }
  }

  /**
   * Run by VS Code after a full accept (the item's command). The server's own `inhouse.accepted` command
   * (with its suggestion id) is sent as it is; any other command the server attached still runs, and the
   * accept is then reported with the extension's own arguments.
   */
  async onAccepted(args: AcceptedArgs, original?: vscode.Command): Promise<void> {
    this.tracker.fullyAccepted(args.uri);
    if (original?.command === ACCEPTED_COMMAND) {
      const serverArgs = (original.arguments ?? [])[0] as AcceptedArgs | undefined;
      await this.sendAccepted(serverArgs ?? args);
      return;
    }
    if (original?.command) {
      try {
        await vscode.commands.executeCommand(original.command, ...(original.arguments ?? []));
      } catch (err) {
        this.log.warn(`command ${original.command} of the accepted suggestion failed: ${String(err)}`);
      }
    }
    await this.sendAccepted(args);
  }

  private onDocumentChanged(e: vscode.TextDocumentChangeEvent): void {
    if (e.contentChanges.length === 0) return;
    const partial = this.tracker.onChange(
      e.document.uri.toString(),
      e.contentChanges.map((c) => ({
        line: c.range.start.line,
        character: c.range.start.character,
        rangeLength: c.rangeLength,
        text: c.text,
      })),
    );
    if (partial) void this.sendAccepted(partial);
  }

  private async sendAccepted(args: AcceptedArgs): Promise<void> {
    const client = this.client;
    if (!client || client.state !== State.Running) return;
    const full = args.full !== false;
    const chars = typeof args.text === 'string' ? args.text.length : 0;
    this.log.info(`sending ${ACCEPTED_COMMAND} (${full ? 'full' : 'partial'}, ${chars} chars) for ${args.uri}`);
    try {
      await client.sendRequest(ExecuteCommandRequest.type, { command: ACCEPTED_COMMAND, arguments: [args] });
      this.log.info(`${ACCEPTED_COMMAND} acknowledged by the server`);
    } catch (err) {
      this.log.warn(`${ACCEPTED_COMMAND} failed: ${String(err)}`);
    }
  }

  private async onConfigurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration('inhouse')) return;
    const before = this.settings;
    this.settings = this.loadSettings(true);
    if (e.affectsConfiguration('inhouse.enable') && this.settings.enable !== this.status.enabled) {
      this.dispatch({ kind: 'setEnabled', enabled: this.settings.enable });
    }
    if (needsRestart(before, this.settings)) {
      await this.restart();
      return;
    }
    if (needsServerUpdate((s) => e.affectsConfiguration(s)) && this.client?.state === State.Running) {
      const settings = didChangeConfigurationSettings(this.settings);
      this.log.info(`settings changed: ${JSON.stringify(settings.inhouse)}`);
      await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings });
    }
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    void this.stop();
  }
}
