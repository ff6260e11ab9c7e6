"""The case from the issue that made the profile a contract: in a real client, the embedded SmolLM2 base asked
through `inhouse lsp` with no settings completes `return ` in `area_of_circle(radius)` with code that uses
`radius` (it said `system` when every prompt went out as FIM PSM)."""

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
    with serve_subprocess(SMOLLM2, tmp_path / "serve.log", env={"INHOUSE_CONFIG": str(tmp_path / "empty.toml")},
                          ready_timeout_s=300) as url:
        async with lsp_client({"backendUrl": url, "timeoutMs": 120_000}, tmp_path) as client:
            ready = await client.wait_for_status("ready", timeout=120)
            assert ready["profile"].startswith("smollm2 SPM + context"), ready  # the base's profile, from /info
            text = "import math\n\n\ndef area_of_circle(radius):\n    return \n"
            uri = open_doc(client, tmp_path / "geometry.py", text, "python")
            result = await client.text_document_inline_completion_async(inline_params(uri, 4, 11))
            [item] = items(result)
            assert "radius" in item.insert_text, item.insert_text
