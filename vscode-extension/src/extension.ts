/**
 * Entry point of the inhouse VS Code extension: creates the Controller (language server + status bar) and
 * registers the commands. Kept thin on purpose; completion logic lives in the language server.
 */
import * as vscode from 'vscode';
import { AcceptedArgs } from './acceptance';
import { Controller, INTERNAL_ACCEPTED } from './controller';
import { gatewaySettings, signIn, signOut } from './signIn';
import { GENERATE_VERIF_ENV, VerifEnvCommand } from './verifEnvCommand';

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel('inhouse', { log: true });
  const statusItem = vscode.window.createStatusBarItem('inhouse.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'inhouse';
  statusItem.command = 'inhouse.toggleCompletions';
  controller = new Controller(log, statusItem);
  const c = controller;
  const verifEnv = new VerifEnvCommand(log);
  context.subscriptions.push(
    log,
    statusItem,
    c,
    vscode.commands.registerCommand('inhouse.toggleCompletions', () => c.toggle()),
    vscode.commands.registerCommand('inhouse.showServerLog', () => c.showLog()),
    vscode.commands.registerCommand('inhouse.restartServer', () => c.restart()),
    vscode.commands.registerCommand('inhouse.acceptNextWord', () => c.acceptNextWord()),
    vscode.commands.registerCommand('inhouse.signIn', async () => {
      if (await signIn(context.secrets)) {
        c.gatewaySettings = await gatewaySettings(context.secrets);
        await c.restart();
      }
    }),
    vscode.commands.registerCommand('inhouse.signOut', async () => {
      await signOut(context.secrets);
      c.gatewaySettings = {};
      await c.restart();
    }),
    vscode.commands.registerCommand(GENERATE_VERIF_ENV, (uri?: vscode.Uri) => verifEnv.run(uri)),
    vscode.commands.registerCommand(INTERNAL_ACCEPTED, (args: AcceptedArgs, original?: vscode.Command) =>
      c.onAccepted(args, original),
    ),
  );
  c.gatewaySettings = await gatewaySettings(context.secrets);
  await c.start();
}

export async function deactivate(): Promise<void> {
  const c = controller;
  controller = undefined;
  await c?.stop();
}
