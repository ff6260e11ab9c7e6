"""Secrets never reach the dataset: twenty-odd kinds planted in real code, then every shard is searched."""

from __future__ import annotations

import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

from finetune.corpus.pipeline import build
from finetune.corpus.repos import from_paths
from finetune.corpus.secrets import redact
from tests.finetune.corpus.conftest import make_git_repo

RSA_BODY = ["MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
            "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK"]
OPENSSH_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
# (kind, secret value that must vanish, line of code carrying it)
PLANTED = [
    ("aws_access_key_id", "AKIAZ3MSJV4WWNKWW5FG", 'AWS_ACCESS_KEY_ID = "AKIAZ3MSJV4WWNKWW5FG"'),
    ("aws_secret", "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",
     'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ3e8Xk9mT"'),
    ("github", "ghp_4Kq9ZtX2mW8vN5rL0pY7sB3dF6hJ1cE9aQwR", 'GH = "ghp_4Kq9ZtX2mW8vN5rL0pY7sB3dF6hJ1cE9aQwR"'),
    ("gitlab", "glpat-Xy7Bq2Rk9LmN4pTz8WvD", 'gitlab_client(token_value="glpat-Xy7Bq2Rk9LmN4pTz8WvD")'),
    ("slack_token", "xoxb-2938475610-5849302019384-AbCdEfGhIjKlMnOpQrStUvWx",
     'SLACK = "xoxb-2938475610-5849302019384-AbCdEfGhIjKlMnOpQrStUvWx"'),
    ("slack_webhook", "T024BE7LD/B01ABCDEF12/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2",
     'HOOK = "https://hooks.slack.com/services/T024BE7LD/B01ABCDEF12/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"'),
    ("stripe", "sk_live_51HxYzAbCdEfGhIjKlMnOpQr", 'stripe.api_key = "sk_live_51HxYzAbCdEfGhIjKlMnOpQr"'),
    ("google", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", 'MAPS = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"'),
    ("openai", "sk-proj-Tq8mZ3xW9vB2nK7pL4rY6sD1fG5hJ0cE",
     'client = OpenAI("sk-proj-Tq8mZ3xW9vB2nK7pL4rY6sD1fG5hJ0cE")'),
    ("jwt", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
     'TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.'
     'SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"'),
    ("rsa_private_key", RSA_BODY[0],
     'KEY = """-----BEGIN RSA PRIVATE KEY-----\n' + "\n".join(RSA_BODY) + '\n-----END RSA PRIVATE KEY-----"""'),
    ("openssh_private_key", OPENSSH_BODY,
     'SSH = """-----BEGIN OPENSSH PRIVATE KEY-----\n' + OPENSSH_BODY + '\n-----END OPENSSH PRIVATE KEY-----"""'),
    ("password", "Tr0ub4dor&3xyzzy", 'DB_PASSWORD = "Tr0ub4dor&3xyzzy"'),
    ("url_password", "S3cr3tPassw0rd", 'DSN = "postgres://admin:S3cr3tPassw0rd@db.internal.acme.net:5432/app"'),
    ("email", "maria.gonzalez@acme-payments.com", '__maintainer__ = "maria.gonzalez@acme-payments.com"'),
    ("ipv4", "52.14.201.9", 'UPSTREAM = ("52.14.201.9", 443)'),
    ("ipv6", "2001:4860:4860::8844", 'RESOLVER = "2001:4860:4860::8844"'),
    ("sendgrid", "SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ012",
     'SENDGRID = "SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ012"'),
    ("npm", "npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
     '# //registry.npmjs.org/:_authToken=npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789'),
    ("huggingface", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", 'login("hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567")'),
    ("twilio", "SK0123456789abcdef0123456789abcdef", 'TWILIO_SID = "SK0123456789abcdef0123456789abcdef"'),
    ("bearer", "9f8e7d6c5b4a39281706f5e4d3c2b1a0ZZyyXX",
     'headers = {"Authorization": "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0ZZyyXX"}'),
    ("generic_api_key", "q8Zr3LmV9xT2bN7kP4wY6sD1", 'api_key = "q8Zr3LmV9xT2bN7kP4wY6sD1"'),
    ("pypi", "pypi-AgEIcHlwaS5vcmcCJGI3ZTk1MjQ1LTg4NzUtNGU1OS1hNzE1LWQ1ZjM3ZGU4YzQ4ZQ",
     'PYPI = "pypi-AgEIcHlwaS5vcmcCJGI3ZTk1MjQ1LTg4NzUtNGU1OS1hNzE1LWQ1ZjM3ZGU4YzQ4ZQ"'),
    ("azure", "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy",
     'CONN = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey='
     'Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy;"'),
    ("high_entropy_hex", "7f3a9c2e4b1d8f6a0c5e3b9d7a2f4c8e1b6d0a9f",
     'SIGNING_SECRET_HEX = "7f3a9c2e4b1d8f6a0c5e3b9d7a2f4c8e1b6d0a9f"'),
]


def planted_module() -> str:
    body = "\n".join(line for _, _, line in PLANTED)
    return ('"""Service settings (planted secrets for the corpus test)."""\n\nimport os\n\n' + body +
            '\n\n\ndef connect(host, port):\n    """Open a connection."""\n    return (host, port)\n')


def test_at_least_twenty_kinds_are_planted():
    assert len({kind for kind, _, _ in PLANTED}) >= 20


@pytest.mark.parametrize(("kind", "secret", "line"), PLANTED, ids=[p[0] for p in PLANTED])
def test_redact_removes_each_kind(kind, secret, line):
    counts: Counter = Counter()
    out = redact(line + "\n", "settings.py", counts)
    assert secret not in out and sum(counts.values()) >= 1
    assert "<" in out and ">" in out


def test_redact_leaves_ordinary_code_alone():
    code = ("import numpy as np\n\n\ndef area(r):\n    version = '1.2.3.4'\n    host = '127.0.0.1'\n"
            "    return np.pi * r @ r  # see docs/index.md\n")
    counts: Counter = Counter()
    assert redact(code, "geo.py", counts) == code and not counts


def test_no_planted_secret_survives_in_any_shard(tmp_path, corpus_cfg):
    # The same secrets in JavaScript syntax, in a second language and file.
    js = "\n".join(re.sub(r"^(\w+) = (.*)$", r"export const \1 = \2;", line)
                   for _, _, line in PLANTED if re.match(r"^\w+ = \"[^\n]*\"$", line))
    repo = make_git_repo(tmp_path / "svc", {"svc/settings.py": planted_module(),
                                            "web/config.js": "// deploy settings\n" + js + "\n"})
    for i in range(6):  # a few ordinary files around it so every split has something
        (repo / "svc" / f"mod{i}.py").write_text(f"def f{i}(x):\n    y = x * {i}\n    return y + {i}\n\n\n"
                                                 f"class C{i}:\n    def m(self, a):\n        return f{i}(a)\n")
    out = tmp_path / "ds"
    m = build(from_paths([repo]), out, corpus_cfg(max_examples_per_file=40, eval_fraction=0.3, context_rate=1.0),
              progress=False)
    assert m["counts"]["secrets"]["found"] >= len(PLANTED)
    texts: list[str] = []
    for split in ("train", "dev", "eval", "files"):
        table = pq.read_table(out / split)
        for column in table.column_names:
            if str(table.schema.field(column).type) == "string":
                texts += [v for v in table.column(column).to_pylist() if v]
    blob = "\n".join(texts)
    files = {r["path"]: r["content"] for r in pq.read_table(out / "files").to_pylist()}
    assert "svc/settings.py" in files and "web/config.js" in files  # the files were kept, redacted
    for placeholder in ("<KEY>", "<TOKEN>", "<PASSWORD>", "<PRIVATE_KEY>", "<EMAIL>", "<IP_ADDRESS>"):
        assert placeholder in files["svc/settings.py"], placeholder
    for kind, secret, _ in PLANTED:
        assert secret not in blob, kind
    for fragment in (*RSA_BODY, OPENSSH_BODY[:30]):
        assert fragment not in blob


def test_the_distinct_character_bound_never_spares_a_high_entropy_string():
    import random

    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

    from finetune.corpus.secrets import _detectors, _may_exceed_entropy

    plugins = [p for p in _detectors() if isinstance(p, HighEntropyStringsPlugin)]
    assert len(plugins) == 2
    rng = random.Random(0)
    spared = 0
    for plugin in plugins:
        for _ in range(3000):
            alphabet = rng.sample(plugin.charset, rng.randint(1, len(plugin.charset)))
            value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
            if not _may_exceed_entropy(value, plugin.entropy_limit):
                spared += 1
                assert plugin.calculate_shannon_entropy(value) <= plugin.entropy_limit, value
        # at the edge: 2**limit distinct characters, each once, is exactly the limit for Hex (8 characters)
        assert _may_exceed_entropy("0123456789abcdef"[:8], 3.0)
    assert spared > 1000  # the bound does spare work


def _real_texts() -> list[str]:
    from tests.finetune.corpus.conftest import package_source

    texts = [p.read_text() for p in sorted(package_source("httpx").rglob("*.py"))]
    texts.append("é = 'ÅÄÖ'\nKEY = 'Zq8mX2vLr9TbY4nW6pKc1sHd7jFg3aQe'  # ünïcode\nH = \"9f8e7d6c5b4a39281706\"\n"
                 "t = 'abc' 'Zq8mX2vLr9TbY4nW6pKc1sHd7jFg3aQe' \"x'\"\nlast = 'Zq8mX2vLr9TbY4nW6pKc1sHd7jFg3aQeE'")
    return texts


def test_high_entropy_plugins_see_the_same_strings_on_the_candidate_lines():
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

    from finetune.corpus.secrets import _detectors, _fewest_distinct, _lines_with_quoted_runs, _may_exceed_entropy

    def findings(plugin, text):
        return sorted(v for v in plugin.analyze_string(text) if _may_exceed_entropy(v, plugin.entropy_limit)
                      and plugin.calculate_shannon_entropy(v) > plugin.entropy_limit)

    plugins = [p for p in _detectors() if isinstance(p, HighEntropyStringsPlugin)]
    found = 0
    for text in _real_texts():
        data = text.encode("utf-8")
        for plugin in plugins:
            lines = _lines_with_quoted_runs(data, plugin.charset, _fewest_distinct(plugin.entropy_limit))
            assert findings(plugin, lines) == findings(plugin, text)
            assert len(lines) < len(text) or not text
            found += len(findings(plugin, text))
    assert found >= 4


def test_the_lower_case_denylist_agrees_with_detect_secrets():
    from finetune.corpus.secrets import _denylist, _has_denylisted_word, _keyword_lines

    lines = [line for text in _real_texts() for line in _keyword_lines(text).split("\n")]
    lines += ["PASSWORD = 'x'", "db_Pass", "Contraseña: 1", "CONTRASEÑA", "ſecret = 'abc'", "api-key", "ApiKey"]
    assert len(lines) > 100
    for line in lines:
        assert _has_denylisted_word(line, line.lower()) == bool(_denylist().search(line)), line


def test_grouped_gate_literals_find_exactly_the_literals_present():
    from finetune.corpus.secrets import _GATE_LITERALS, _present

    texts = _real_texts() + [" ".join(sorted(_GATE_LITERALS)), "ACCA", "xAKIASIA", "glpat-x gldt-", "AC", "Aws"]
    for text in texts:
        assert _present(text) == frozenset(lit for lit in _GATE_LITERALS if lit in text)


def test_a_character_that_lowers_to_two_does_not_shift_the_keyword_lines():
    from finetune.corpus.secrets import _keyword_lines

    text = 'İİİİ = 1\nconfig = dict(password="Zk8q2LmX9vRt")\ndb_password = "Zk8q2LmX9vRt"\n'
    assert _keyword_lines(text) == 'config = dict(password="Zk8q2LmX9vRt")\ndb_password = "Zk8q2LmX9vRt"'
    assert "Zk8q2LmX9vRt" not in redact(text, "a.py")
