"""Context is relevant and bounded: the context share of the budget is a ceiling, not a target. A tiny
document in a workspace of unrelated files gets a small prompt; a definition from another file that the
code near the cursor actually uses is still included. Real tree-sitter, the tiny model's tokenizer."""

from __future__ import annotations

from core.client import BackendInfo
from core.completion.context import select_context
from core.completion.pipeline import CompletionInput, CompletionPipeline
from core.completion.profile import CompletionProfile
from core.completion.should_complete import decide
from core.completion.symbols import SymbolIndex

SMALL_TS = 'import { readFileSync } from "fs";\n\nconst raw = readFileSync("settings.json", "utf8");\nconst value = '

# Ordinary TypeScript and Python: the same keywords and everyday identifiers as the small file
# (const, function, export, return, string, number, console, log, value, data...), nothing it uses.
UNRELATED = {
    "src/users.ts": """import { Request, Response } from "express";

export interface User {
  id: number;
  name: string;
  email: string;
}

export function listUsers(req: Request, res: Response): void {
  const value = req.query.limit;
  const data = users.slice(0, Number(value));
  console.log("listing", data.length);
  res.json(data);
}

export function log(message: string, value: number): void {
  console.log(`[users] ${message}`, value);
}

export const users: User[] = [];
""",
    "src/cart.ts": """export class Cart {
  private items: Map<string, number> = new Map();

  add(id: string, count: number): void {
    const value = this.items.get(id) ?? 0;
    this.items.set(id, value + count);
    console.log("cart", id, value + count);
  }

  total(prices: Map<string, number>): number {
    let sum = 0;
    for (const [id, count] of this.items) {
      sum += (prices.get(id) ?? 0) * count;
    }
    return sum;
  }
}
""",
    "tools/report.py": """import json


def value(data):
    return data["value"]


def write_report(rows, path):
    with open(path, "w", encoding="utf8") as fh:
        json.dump([value(r) for r in rows], fh)
""",
    "src/format.ts": "\n".join(f"export const LABEL_{i} = \"label {i}\";" for i in range(80)),
}

RELEVANT = {
    "src/settings.ts": """export interface Settings {
  port: number;
  host: string;
}

export function parseSettings(text: string): Settings {
  const data = JSON.parse(text);
  return { port: Number(data.port ?? 8080), host: String(data.host ?? "127.0.0.1") };
}
""",
}


def _index(files: dict[str, str]) -> SymbolIndex:
    index = SymbolIndex()
    for path, text in files.items():
        index.update(path, text)
    return index


def test_unrelated_workspace_gives_no_context():
    files = select_context("src/main.ts", SMALL_TS, "\n", UNRELATED, "typescript", 6000, index=_index(UNRELATED))
    assert files == (), [f.path for f in files]


def test_a_definition_used_near_the_cursor_is_included():
    prefix = SMALL_TS + "parseSettings("
    workspace = {**UNRELATED, **RELEVANT}
    # From the symbol index only (the file is not open) and from the open documents.
    for docs, index in (({}, _index(workspace)), (workspace, None)):
        files = select_context("src/main.ts", prefix, ");\n", docs, "typescript", 6000, index=index)
        assert [f.path for f in files] == ["src/settings.ts"], [f.path for f in files]
        assert "function parseSettings(text: string): Settings" in files[0].content


def test_similar_snippet_needs_shared_identifiers_not_keywords():
    # Shares only keywords and everyday names with every unrelated file: no snippet.
    prefix = "export function main(): void {\n  const value = 1;\n  console.log(value);\n  return "
    assert select_context("src/main.ts", prefix, "\n}\n", UNRELATED, "typescript", 6000) == ()
    # Shares the distinctive names of one window (items, prices, count, sum): that window is a snippet.
    prefix = "function subtotal(items: Map<string, number>, prices: Map<string, number>): number {\n  let sum = 0;\n  "
    files = select_context("src/main.ts", prefix, "\n}\n", UNRELATED, "typescript", 6000)
    assert [f.path for f in files] == ["src/cart.ts"]


class _InfoOnly:
    async def info(self) -> BackendInfo:
        return BackendInfo("tiny", "starcoder", 4096, 4200, (), True)

    async def complete(self, req):  # never called: prepare() only builds the prompt
        raise AssertionError("no request expected")

    async def aclose(self) -> None:
        pass


def _prompt(tokenizer, inp: CompletionInput, index: SymbolIndex | None):
    pipe = CompletionPipeline(_InfoOnly(), CompletionProfile("starcoder", max_prompt_tokens=2048),
                              tokenizer=tokenizer, index=index)
    prompt, _max_new, _t = pipe.prepare(inp, decide(inp.prefix, inp.suffix, inp.language_id, None))
    return prompt


def test_small_document_with_unrelated_workspace_gets_a_small_prompt(tiny_tokenizer):
    inp = CompletionInput("src/main.ts", SMALL_TS, "\n", "typescript", UNRELATED)
    prompt = _prompt(tiny_tokenizer, inp, _index(UNRELATED))
    real = len(tiny_tokenizer.encode(prompt.prompt, add_special_tokens=False).ids)
    assert prompt.context == ()
    assert real <= prompt.tokens <= real + 40, (real, prompt.tokens)  # reported size is the real one (a bound)
    assert prompt.tokens < 120, prompt.tokens  # the 2048-token budget is a ceiling, not a target


def test_relevant_definition_reaches_the_prompt(tiny_tokenizer):
    workspace = {**UNRELATED, **RELEVANT}
    inp = CompletionInput("src/main.ts", SMALL_TS + "parseSettings(", ");\n", "typescript", UNRELATED)
    prompt = _prompt(tiny_tokenizer, inp, _index(workspace))
    assert [f.path for f in prompt.context] == ["src/settings.ts"]
    assert "parseSettings(text: string)" in prompt.prompt and "listUsers" not in prompt.prompt
    real = len(tiny_tokenizer.encode(prompt.prompt, add_special_tokens=False).ids)
    assert real <= prompt.tokens <= real + 60 and prompt.tokens < 300
