"""The case from the issue that made the profile a contract: in a real client, the embedded SmolLM2 base asked
through `inhouse lsp` with no settings completes `return ` in `area_of_circle(radius)` with code that uses
`radius` (it said `system` when every prompt went out as FIM PSM).

The server serves SmolLM2's exact weights here (`INHOUSE_SERVE_GGUF_TYPE=Q4_1`): this case checks the prompt
contract (profile, healing) with one greedy sample, and that sample depends on the 4-bit type. Served as
IQ4_NL (the default since 2026-12-02) the base answers `6 * (1 + 1) * (1 + 1) * math.pi * 2` here, as Q4_1,
Q4_0 and Q8_0 it uses `radius`; on the exam's 100 cursors IQ4_NL's base scored 3.0 points of edit similarity
above Q4_1's ([0.1, 6.2], docs/serving.md), so the exam, not this one sample, chose the type."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.launch import serve_subprocess
from tests.lsp.conftest import inline_params, lsp_client, open_doc
from tests.lsp.test_e2e import items

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SMOLLM2 = Path(__file__).resolve().parents[2] / "models" / "smollm2"


@pytest.mark.skipif(not (SMOLLM2 / "config.json").is_file(), reason="models/smollm2 missing (make model)")
async def test_the_embedded_base_completes_area_of_circle_with_radius(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    env = {"INHOUSE_CONFIG": str(tmp_path / "empty.toml"), "INHOUSE_SERVE_GGUF_TYPE": "Q4_1"}
    with serve_subprocess(SMOLLM2, tmp_path / "serve.log", env=env, ready_timeout_s=300) as url:
        async with lsp_client({"backendUrl": url, "timeoutMs": 120_000}, tmp_path) as client:
            ready = await client.wait_for_status("ready", timeout=120)
            assert ready["profile"].startswith("smollm2 SPM + context"), ready  # the base's profile, from /info
            text = "import math\n\n\ndef area_of_circle(radius):\n    return \n"
            uri = open_doc(client, tmp_path / "geometry.py", text, "python")
            result = await client.text_document_inline_completion_async(inline_params(uri, 4, 11))
            [item] = items(result)
            assert "radius" in item.insert_text, item.insert_text
