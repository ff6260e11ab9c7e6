/**
 * Telling the server that a suggestion was accepted (`workspace/executeCommand` "inhouse.accepted").
 * Full accepts come from the item's command (VS Code runs it after inserting the item); partial accepts
 * (accept next word / line) have no stable API, so `PartialAcceptTracker` recognises them as edits that
 * insert, at the ghost text's position, a strict prefix of what the ghost text still shows. Pure logic.
 */

/** The server-side command name (LSP `workspace/executeCommand`). */
export const ACCEPTED_COMMAND = 'inhouse.accepted';

/** The suggestion id the server put in its own `inhouse.accepted` command on an item, if any. */
export function serverSuggestionId(command: { command: string; arguments?: unknown[] } | undefined): string | undefined {
  if (!command || command.command !== ACCEPTED_COMMAND || !Array.isArray(command.arguments)) return undefined;
  const first = command.arguments[0] as { id?: unknown } | undefined;
  return first && typeof first.id === 'string' ? first.id : undefined;
}

/** Arguments of "inhouse.accepted" (one object). */
export interface AcceptedArgs {
  /** The server's id of the suggestion, when its item carried one. */
  readonly id?: string;
  readonly uri: string;
  readonly languageId: string;
  /** Where the accepted text starts (0-based line, UTF-16 character as in LSP). */
  readonly line: number;
  readonly character: number;
  /** The text that went into the document. */
  readonly text: string;
  /** The whole suggestion as the server sent it. */
  readonly suggestion: string;
  /** True for a full accept (Tab), false for a partial one. */
  readonly full: boolean;
}

/** A suggestion on screen: `remaining` is the ghost text still to be accepted, starting at line/character. */
export interface ShownSuggestion {
  readonly id?: string;
  readonly uri: string;
  readonly languageId: string;
  readonly line: number;
  readonly character: number;
  readonly remaining: string;
  readonly suggestion: string;
}

/** One content change of a document (LSP coordinates of its start, replaced length, new text). */
export interface Change {
  readonly line: number;
  readonly character: number;
  readonly rangeLength: number;
  readonly text: string;
}

/**
 * The ghost text an item shows at the cursor. An item with a range that starts before the cursor on the
 * cursor line replaces what was typed there: the ghost is the insert text minus that typed part (null when
 * the typed part is not a prefix, i.e. VS Code would not show it).
 */
export function ghostRemainder(insertText: string, typedInRange: string | null): string | null {
  if (typedInRange === null || typedInRange === '') return insertText;
  return insertText.startsWith(typedInRange) ? insertText.slice(typedInRange.length) : null;
}

/** Position after inserting `text` at line/character. */
export function advance(line: number, character: number, text: string): { line: number; character: number } {
  const parts = text.split('\n');
  if (parts.length === 1) return { line, character: character + text.length };
  return { line: line + parts.length - 1, character: parts[parts.length - 1].length };
}

/** Remembers the suggestions on screen per document and recognises partial accepts among edits. */
export class PartialAcceptTracker {
  private readonly shown = new Map<string, ShownSuggestion[]>();
  /** Documents whose next edit comes from "accept next word" (so even one character is an accept). */
  private readonly expecting = new Set<string>();

  /** The next edit of `uri` is VS Code accepting part of the suggestion (inhouse.acceptNextWord). */
  expectPartial(uri: string): void {
    if (this.shown.has(uri)) this.expecting.add(uri);
  }

  /** Replaces what is on screen for `uri` (VS Code shows one of the items; we track all of them). */
  setShown(uri: string, items: readonly ShownSuggestion[]): void {
    if (items.length === 0) this.shown.delete(uri);
    else this.shown.set(uri, [...items]);
  }

  clear(uri: string): void {
    this.shown.delete(uri);
    this.expecting.delete(uri);
  }

  /** A full accept ends the suggestion's life. */
  fullyAccepted(uri: string): void {
    this.shown.delete(uri);
  }

  /**
   * Feed every change of a document; returns the partial accept it was, or null. A single character is
   * typing (VS Code keeps the ghost while the typed text matches) unless `expectPartial` announced an accept;
   * otherwise a partial accept inserts 2+ chars.
   * Any other edit forgets the document's suggestions.
   */
  onChange(uri: string, changes: readonly Change[]): AcceptedArgs | null {
    const expected = this.expecting.delete(uri);
    const items = this.shown.get(uri);
    if (!items) return null;
    if (changes.length !== 1) {
      this.shown.delete(uri);
      return null;
    }
    const c = changes[0];
    const hit = items.find(
      (s) =>
        c.rangeLength === 0 &&
        c.line === s.line &&
        c.character === s.character &&
        c.text.length > 0 &&
        s.remaining.startsWith(c.text),
    );
    if (!hit) {
      this.shown.delete(uri);
      return null;
    }
    const rest = hit.remaining.slice(c.text.length);
    const next = advance(hit.line, hit.character, c.text);
    if (rest === '') {
      // the whole ghost arrived: a full accept (its command reports it) or typed to the end
      this.shown.delete(uri);
      return null;
    }
    this.shown.set(uri, [{ ...hit, line: next.line, character: next.character, remaining: rest }]);
    if (c.text.length < 2 && !expected) return null;
    return {
      ...(hit.id !== undefined ? { id: hit.id } : {}),
      uri,
      languageId: hit.languageId,
      line: hit.line,
      character: hit.character,
      text: c.text,
      suggestion: hit.suggestion,
      full: false,
    };
  }
}
