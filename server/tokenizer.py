"""The model's tokenizer without transformers: `tokenizers` over tokenizer.json, the special tokens of
tokenizer_config.json. The llama.cpp engine's server then never imports torch (transformers' tokenizer brings it:
~340 MB of memory and ~5 s of start-up measured here), and answers with the same ids as `AutoTokenizer`
(tests/server/test_tokenizer.py compares them on both test models).

It offers what `server.validation`, the routes and the engine use of a transformers tokenizer: calling it
(`["input_ids"]`), `decode`, `backend_tokenizer`, the special ids and tokens. Called by `server.loading`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelError

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True)
class AddedToken:
    content: str
    special: bool


class FastTokenizer:
    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise ModelError(f"{str(model_dir)!r} has no tokenizer.json (the llama.cpp engine reads only that "
                             "format; `--engine torch` reads the others)")
        try:
            self.backend_tokenizer = Tokenizer.from_file(str(path))
            config = _read_json(model_dir / "tokenizer_config.json")
        except ModelError:
            raise
        except Exception as exc:  # tokenizers raises its own exception type for a malformed file
            raise ModelError(f"cannot read {str(path)!r}: {exc}") from exc
        self.added_tokens_decoder = {i: AddedToken(t.content, t.special)
                                     for i, t in self.backend_tokenizer.get_added_tokens_decoder().items()}
        self._ids: dict[str, int | None] = {}
        for key in _SPECIAL_KEYS:
            token = config.get(key)
            if isinstance(token, dict):  # older files spell a token as an AddedToken record
                token = token.get("content")
            self._ids[key] = self.backend_tokenizer.token_to_id(token) if isinstance(token, str) else None
        extra = [*(config.get("additional_special_tokens") or []), *(config.get("extra_special_tokens") or [])]
        extra_ids = [self.backend_tokenizer.token_to_id(t if isinstance(t, str) else t.get("content", ""))
                     for t in extra]
        self.all_special_ids = list(dict.fromkeys(
            i for i in (*(self._ids[k] for k in _SPECIAL_KEYS), *extra_ids) if i is not None))
        self.add_bos_token = bool(config.get("add_bos_token", False))
        self.add_eos_token = bool(config.get("add_eos_token", False))

    @property
    def bos_token_id(self) -> int | None:
        return self._ids["bos_token"]

    @property
    def eos_token_id(self) -> int | None:
        return self._ids["eos_token"]

    @property
    def pad_token_id(self) -> int | None:
        return self._ids["pad_token"]

    def __len__(self) -> int:
        return int(self.backend_tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = list(self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)
        if add_special_tokens:  # what transformers adds beyond the post-processor, from tokenizer_config.json
            if self.add_bos_token and self.bos_token_id is not None and ids[:1] != [self.bos_token_id]:
                ids.insert(0, self.bos_token_id)
            if self.add_eos_token and self.eos_token_id is not None and ids[-1:] != [self.eos_token_id]:
                ids.append(self.eos_token_id)
        return ids

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self.backend_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        raise ModelError(f"{str(path)!r} is not readable JSON: {exc}") from exc
