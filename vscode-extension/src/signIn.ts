/**
 * "inhouse: Sign in to the Company Gateway": asks for the gateway URL and the user's token, checks them
 * (gatewayAuth.ts), keeps the token in VS Code's SecretStorage (never in settings) and the URL in
 * `inhouse.gatewayUrl`. `gatewaySettings` gives the language server both at start (initializationOptions).
 */
import * as vscode from 'vscode';
import { checkGateway, gatewayUrl } from './gatewayAuth';

const TOKEN_KEY = 'inhouse.gatewayToken';

export async function gatewaySettings(secrets: vscode.SecretStorage): Promise<Record<string, string>> {
  const url = gatewayUrl(vscode.workspace.getConfiguration('inhouse').get<string>('gatewayUrl') ?? '');
  const token = await secrets.get(TOKEN_KEY);
  return url && token ? { gatewayUrl: url, gatewayToken: token } : {};
}

/** Runs the sign-in dialog; true when a token was stored (the caller restarts the language server). */
export async function signIn(secrets: vscode.SecretStorage): Promise<boolean> {
  const cfg = vscode.workspace.getConfiguration('inhouse');
  const typed = await vscode.window.showInputBox({
    title: 'inhouse: Sign in (1/2)', prompt: 'URL of your company\'s inhouse gateway', ignoreFocusOut: true,
    value: cfg.get<string>('gatewayUrl') || 'https://',
    validateInput: (v) => (gatewayUrl(v) ? undefined : 'an http(s) URL, e.g. https://inhouse.corp:8090'),
  });
  const url = typed === undefined ? undefined : gatewayUrl(typed);
  if (!url) return false;
  const token = await vscode.window.showInputBox({
    title: 'inhouse: Sign in (2/2)', prompt: 'Your gateway token (your admin creates it: inhouse admin tokens create)',
    password: true, ignoreFocusOut: true,
    validateInput: (v) => (v.trim().startsWith('ih_') ? undefined : 'gateway tokens start with ih_'),
  });
  if (!token) return false;
  const check = await checkGateway(url, token);
  if (!check.ok) {
    void vscode.window.showErrorMessage(`inhouse: ${check.message}`);
    return false;
  }
  await secrets.store(TOKEN_KEY, token.trim());
  await cfg.update('gatewayUrl', url, vscode.ConfigurationTarget.Global);
  void vscode.window.showInformationMessage(`inhouse: ${check.message}`);
  return true;
}

export async function signOut(secrets: vscode.SecretStorage): Promise<void> {
  await secrets.delete(TOKEN_KEY);
  void vscode.window.showInformationMessage('inhouse: signed out of the gateway');
}
