/**
 * Checks a company gateway URL and token before the "Sign in" command stores them: asks the gateway's
 * `GET /v1/policy` with the token. Pure (no `vscode` import) so the unit tests can run it against a local server.
 */

export interface GatewayCheck {
  readonly ok: boolean;
  readonly message: string;
  readonly adoptionEvents?: boolean;
}

/** Normalises what the user typed: trimmed, no trailing slash; `undefined` when it is not an http(s) URL. */
export function gatewayUrl(text: string): string | undefined {
  const url = text.trim().replace(/\/+$/, '');
  return /^https?:\/\/[^\s/]+/.test(url) ? url : undefined;
}

export async function checkGateway(url: string, token: string, timeoutMs = 10000): Promise<GatewayCheck> {
  let resp: Response;
  try {
    resp = await fetch(`${url}/v1/policy`, {
      headers: { Authorization: `Bearer ${token.trim()}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    return { ok: false, message: `cannot reach the gateway at ${url}: ${(err as Error).message}` };
  }
  let body: { error?: string; adoption_events?: boolean } = {};
  try {
    body = (await resp.json()) as typeof body;
  } catch {
    // not JSON: reported by status below
  }
  if (resp.status === 401) return { ok: false, message: `the gateway refused the token: ${body.error ?? 'unauthorized'}` };
  if (!resp.ok) return { ok: false, message: `the gateway at ${url} answered ${resp.status}: ${body.error ?? ''}`.trim() };
  const events = body.adoption_events === true;
  return {
    ok: true,
    adoptionEvents: events,
    message: `signed in to ${url}` + (events ? ' (your company collects adoption statistics: lengths and acceptance, never code)' : ''),
  };
}
