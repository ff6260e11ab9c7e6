/**
 * The command "inhouse: Generate verification environment for this file" (`inhouse.generateVerifEnv`): runs
 * `inhouse verif-env` on the current Verilog/SystemVerilog/Python file into `<workspace>/verif/<top>/` and opens
 * the generated testbench. The CLI does the work; this file only asks, runs (cancellable) and opens.
 * Decisions are in verifEnv.ts (pure), the executable comes from serverCommand.ts like the language server's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { runCli } from './cliProcess';
import { displayCommand, resolveCliCommand } from './serverCommand';
import { systemProbes } from './serverProcess';
import { readSettings } from './settings';
import {
  moduleNames,
  outputFolder,
  pythonModuleName,
  siblingRtlFiles,
  testbenchFile,
  topCandidates,
  verifEnvArgs,
  verifEnvFailureMessage,
  verifEnvKind,
  VerifEnvRequest,
} from './verifEnv';

export const GENERATE_VERIF_ENV = 'inhouse.generateVerifEnv';

export class VerifEnvCommand {
  private running = false;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /** `uri` is given when run from the editor's context menu; otherwise the active editor's file. */
  async run(uri?: vscode.Uri): Promise<void> {
    if (this.running) {
      void vscode.window.showInformationMessage('inhouse: a verification environment is already being generated.');
      return;
    }
    this.running = true;
    try {
      await this.generate(uri instanceof vscode.Uri ? uri : undefined);
    } finally {
      this.running = false;
    }
  }

  private async generate(uri: vscode.Uri | undefined): Promise<void> {
    const doc = uri
      ? vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString()) ??
        (await vscode.workspace.openTextDocument(uri))
      : vscode.window.activeTextEditor?.document;
    if (!doc) {
      void vscode.window.showErrorMessage('inhouse: open a Verilog, SystemVerilog or Python file first.');
      return;
    }
    const kind = verifEnvKind(doc.languageId, doc.uri.fsPath);
    if (doc.uri.scheme !== 'file' || !kind) {
      void vscode.window.showErrorMessage(
        'inhouse: a verification environment is generated from a saved Verilog, SystemVerilog or Python file.',
      );
      return;
    }
    if (doc.isDirty && !(await doc.save())) {
      void vscode.window.showErrorMessage('inhouse: save the file first (the generator reads it from disk).');
      return;
    }
    const file = doc.uri.fsPath;
    const top = kind === 'python' ? pythonModuleName(file) : await this.pickTop(doc.getText(), file);
    if (!top) return;
    const root = vscode.workspace.getWorkspaceFolder(doc.uri)?.uri.fsPath ?? this.firstFolder() ?? path.dirname(file);
    let outDir: string;
    try {
      outDir = outputFolder(root, top);
    } catch (err) {
      void vscode.window.showErrorMessage(`inhouse: ${(err as Error).message}.`);
      return;
    }
    const force = await this.askOverwrite(outDir, root, kind);
    if (force === undefined) return;
    const siblings = kind === 'rtl' ? siblingRtlFiles(file, this.listDir(path.dirname(file))) : [];
    const req: VerifEnvRequest = { kind, file, siblings, top, outDir, force };
    if (await this.execute(req, root)) await this.open(req);
  }

  private listDir(dir: string): string[] {
    try {
      return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
    } catch {
      return [];
    }
  }

  private firstFolder(): string | undefined {
    return vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === 'file')?.uri.fsPath;
  }

  /** The top module: the only one declared, or the user's pick (likely tops first). */
  private async pickTop(text: string, file: string): Promise<string | undefined> {
    const names = moduleNames(text);
    if (names.length === 0) {
      void vscode.window.showErrorMessage(`inhouse: ${path.basename(file)} declares no module, so there is no top to verify.`);
      return undefined;
    }
    if (names.length === 1) return names[0];
    const items = topCandidates(text).map((c) => ({
      label: c.name,
      description: c.top ? 'not instantiated in this file' : 'instantiated in this file',
    }));
    const picked = await vscode.window.showQuickPick(items, {
      title: 'inhouse: top module of the verification environment',
      placeHolder: `${path.basename(file)} declares ${names.length} modules; pick the top`,
    });
    return picked?.label;
  }

  /** `false`: the folder is new (or the user keeps owned files); `true`: pass --force; `undefined`: cancelled. */
  private async askOverwrite(outDir: string, root: string, kind: VerifEnvRequest['kind']): Promise<boolean | undefined> {
    let entries: string[];
    try {
      entries = fs.readdirSync(outDir);
    } catch {
      return false;
    }
    if (entries.length === 0) return false;
    const overwrite = 'Overwrite';
    const keep = 'Keep My Edits';
    const rel = path.relative(root, outDir) || outDir;
    const buttons = kind === 'rtl' ? [overwrite, keep] : [overwrite];
    const detail =
      kind === 'rtl'
        ? 'Overwrite regenerates everything, including the reference model, constraints and coverage points ' +
          '(--force). Keep My Edits regenerates the generated files and keeps those three.'
        : 'The generated test files are written again.';
    const choice = await vscode.window.showWarningMessage(`inhouse: ${rel} already exists.`, { modal: true, detail }, ...buttons);
    if (choice === overwrite) return true;
    if (choice === keep) return false;
    return undefined;
  }

  /** Runs the CLI under a cancellable progress notification; true on success. One message on failure. */
  private async execute(req: VerifEnvRequest, cwd: string): Promise<boolean> {
    const cfg = vscode.workspace.getConfiguration('inhouse');
    const { settings } = readSettings((key) => cfg.get(key));
    const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
    const probes = systemProbes();
    const cli = resolveCliCommand(settings.serverCommand, folders, probes);
    if (cli.source === 'missing') {
      this.showFailure(verifEnvFailureMessage(cli, { errorCode: 'ENOENT' }));
      return false;
    }
    const args = [...cli.args, ...verifEnvArgs(req)];
    this.log.info(`verif-env: ${displayCommand(cli.command, args)} (in ${cwd})`);
    const result = await vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: `inhouse: generating the verification environment for ${req.top}`,
        cancellable: true,
      },
      async (_progress, token) => {
        const run = runCli(cli.command, args, {
          cwd,
          onOutput: (stream, text) => {
            for (const line of text.split(/\r?\n/)) if (line.trim()) this.log.info(`verif-env ${stream}: ${line}`);
          },
        });
        const sub = token.onCancellationRequested(() => run.cancel());
        try {
          return await run.result;
        } finally {
          sub.dispose();
        }
      },
    );
    if (result.cancelled) {
      this.log.info('verif-env: cancelled');
      return false;
    }
    if (result.exitCode === 0) return true;
    this.log.warn(`verif-env: failed (exit ${result.exitCode}, signal ${result.signal}, ${result.errorCode ?? 'started'})`);
    this.showFailure(verifEnvFailureMessage(cli, result));
    return false;
  }

  private showFailure(message: string): void {
    void vscode.window.showErrorMessage(message, 'Show Log').then((choice) => {
      if (choice === 'Show Log') this.log.show(true);
    });
  }

  /** Opens the testbench and reveals the folder in the Explorer. */
  private async open(req: VerifEnvRequest): Promise<void> {
    const tb = testbenchFile(req);
    const target = fs.existsSync(tb) ? tb : req.outDir;
    if (target === tb) await vscode.window.showTextDocument(vscode.Uri.file(tb), { preview: false });
    else this.log.warn(`verif-env: ${tb} was not written`);
    try {
      await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(req.outDir));
    } catch (err) {
      this.log.warn(`verif-env: could not reveal ${req.outDir}: ${(err as Error).message}`);
    }
    void vscode.window.showInformationMessage(`inhouse: verification environment for ${req.top} written to ${req.outDir}.`);
  }
}
