"""Stage 3, secrets: find keys, tokens, passwords, private keys, emails and IP addresses and replace them.

Two layers, so that one's blind spot is the other's catch: our regexes for well-known shapes (private key
blocks, cloud and SaaS token formats, credentials in URLs, secret-named assignments, emails, IP addresses),
then every `detect-secrets` plugin (keyword, high-entropy strings and its vendor detectors) over what is left.
Each finding becomes a placeholder (`<KEY>`, `<TOKEN>`, `<PASSWORD>`, `<PRIVATE_KEY>`, `<EMAIL>`,
`<IP_ADDRESS>`, `<USER>`) and is counted by kind. BigCode's StarPII pipeline does the same for The Stack.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detect_secrets.plugins.base import BasePlugin

PLACEHOLDERS = ("<KEY>", "<TOKEN>", "<PASSWORD>", "<PRIVATE_KEY>", "<EMAIL>", "<IP_ADDRESS>", "<USER>")

_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"
    r"|PuTTY-User-Key-File-\d:.*?(?:Private-MAC:[^\n]*|\Z)",
    re.DOTALL)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://)(?P<user>[^\s:/@'\"<>]+):"
                              r"(?P<pw>[^\s@/'\"<>]+)@")
# (name, gate literals, pattern, placeholder): well-known formats, after gitleaks / detect-secrets rules.
# A rule's regex runs only when one of its literals occurs in the text (a `str.__contains__` is far
# cheaper than a regex pass); a gate starting with "~" is looked for in the lower-cased text. Each match of
# a rule with case-sensitive gates holds one of them or follows it on the same line (a lookbehind), and no
# pattern but aws_secret_access_key's (`\s*`) can match a line end, so these rules only search the lines
# holding a gate literal (`_sub_lines`).
_TOKEN_RULES: tuple[tuple[str, tuple[str, ...], str, str | None], ...] = (
    ("aws_access_key_id", ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
     r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b", "<KEY>"),
    ("aws_secret_access_key", ("~aws_secret_access_key",),
     r"(?i)(?<=aws_secret_access_key)(['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9/+]{40}\b", None),
    ("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})", "<TOKEN>"),
    ("gitlab_token", ("glpat-",), r"\bglpat-[A-Za-z0-9_-]{20,}", "<TOKEN>"),
    ("slack_webhook", ("hooks.slack.com",), r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]+",
     "<TOKEN>"),
    ("slack_token", ("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10,}", "<TOKEN>"),
    ("stripe_key", ("_live_", "_test_"), r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}", "<KEY>"),
    ("google_api_key", ("AIza",), r"\bAIza[0-9A-Za-z_-]{35}", "<KEY>"),
    ("openai_key", ("sk-",), r"\bsk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}", "<KEY>"),
    ("jwt", ("eyJ",), r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "<TOKEN>"),
    ("sendgrid_key", ("SG.",), r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}", "<KEY>"),
    ("twilio_key", ("SK", "AC"), r"\b(?:SK|AC)[0-9a-fA-F]{32}\b", "<KEY>"),
    ("npm_token", ("npm_",), r"\bnpm_[A-Za-z0-9]{36}\b", "<TOKEN>"),
    ("pypi_token", ("pypi-",), r"\bpypi-AgE[A-Za-z0-9_-]{50,}", "<TOKEN>"),
    ("huggingface_token", ("hf_",), r"\bhf_[A-Za-z0-9]{30,}\b", "<TOKEN>"),
    ("azure_storage_key", ("AccountKey=",), r"(?<=AccountKey=)[A-Za-z0-9+/=]{40,}", "<KEY>"),
    ("mailchimp_key", ("-us",), r"\b[0-9a-f]{32}-us\d{1,2}\b", "<KEY>"),
    ("telegram_token", (":AA",), r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b", "<TOKEN>"),
    ("bearer_token", ("earer ",), r"(?<=[Bb]earer )[A-Za-z0-9._~+/-]{16,}=*", "<TOKEN>"),
    ("basic_auth_header", ("asic ",), r"(?<=[Bb]asic )[A-Za-z0-9+/]{16,}={0,2}", "<TOKEN>"),
)
_COMPILED_RULES = tuple((name, tuple(g for g in gates if not g.startswith("~")),
                         tuple(g[1:] for g in gates if g.startswith("~")), re.compile(p), ph)
                        for name, gates, p, ph in _TOKEN_RULES)
# Words near which a secret is assigned; lines holding none of them skip the keyword-style detectors.
_KEYWORD_GATE = re.compile(r"key|pwd|pass|token|secret|auth|cred|cloudant|softlayer|api|contrase")
_KEYWORD_GATE_ANY_CASE = re.compile(_KEYWORD_GATE.pattern, re.IGNORECASE)
# A variable, key or flag assigned a quoted literal; `_SECRET_NAME` then decides from the name alone. The
# lookbehind anchors the match at the start of a name, so each name is tried once (no quadratic backtracking).
_ASSIGNMENT = re.compile(
    r"(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*)(?P<sep>['\"]?\s*(?::=|=>|==|=|:)\s*[rbuf]?)(?P<q>['\"`])"
    r"(?P<value>[^'\"`\s]{6,})(?P=q)")
_SECRET_NAME = re.compile(
    r"passw(?:or)?d|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|auth[_-]?token|access[_-]?token|"
    r"refresh[_-]?token|private[_-]?key|client[_-]?secret|credential|token", re.IGNORECASE)
# Values the vendor detectors with keyword patterns (Cloudant, IBM, SoftLayer) need: a long unbroken run.
_LONG_VALUE = re.compile(r"[A-Za-z0-9_\-/+]{24,}")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}:?[0-9A-Fa-f]{0,4}(?:[0-9A-Fa-f]{1,4}|:)?(?![\w:])")
# Cheap patterns (a literal or a digit first, no lookbehind) that must match before the full ones run.
_EMAIL_GATE = re.compile(r"@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b")
_IPV4_GATE = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")
_IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:")
_VERSION_CONTEXT = re.compile(r"(?i)(version|ver|release|v)\s*[=:]?\s*['\"]?$")
_HARMLESS_VALUES = re.compile(r"^(?:<[A-Z_]+>|\$\{?\w+\}?|%\(?\w*\)?s|\{\{?\s*\w+\s*\}?\}|None|null|nil|true|false|"
                              r"changeme|password|secret|xxx+|\*+|\.\.\.+|os\.environ.*|getenv.*)$", re.IGNORECASE)


def _password_like(name: str) -> bool:
    return bool(re.search(r"(?i)pass|pwd|credential", name))


def _keep_ip(ip: str) -> bool:
    """Addresses that identify nobody: loopback, unspecified, broadcast, documentation masks."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True  # not an address at all (a version string such as 1.2.300.4)
    return addr.is_loopback or addr.is_unspecified or str(addr) in ("255.255.255.255", "255.255.255.0",
                                                                   "255.255.0.0", "255.0.0.0")


@functools.cache
def _detectors() -> tuple[BasePlugin, ...]:
    """Every detect-secrets plugin, instantiated with its defaults (built once per process)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    # Its annotation returns a TypeVar found in no argument (mypy makes it Never); read-only, it is this.
    classes: Mapping[str, type[BasePlugin]] = get_mapping_from_secret_type_to_class()
    plugins: list[BasePlugin] = []
    for secret_type in sorted(classes):
        try:
            plugins.append(classes[secret_type]())
        except TypeError:
            continue  # a plugin that needs configuration we do not have
    return tuple(plugins)


@functools.cache
def _denylist() -> re.Pattern[str]:
    """The words every `KeywordDetector` pattern contains: a line without one cannot give it a finding."""
    from detect_secrets.plugins.keyword import DENYLIST

    return re.compile("|".join(DENYLIST), re.IGNORECASE)


@functools.cache
def _denylist_lower() -> re.Pattern[str]:
    """`_denylist` for a lower-cased ASCII line: the same answer, ~8x faster (an IGNORECASE alternation
    is tried at every character; this one skips the characters no word starts with)."""
    from detect_secrets.plugins.keyword import DENYLIST

    return re.compile("|".join(DENYLIST))


def _has_denylisted_word(line: str, low: str) -> bool:
    """Whether `line` (`low` is `line.lower()`) holds a `_denylist` word. Beyond ASCII, IGNORECASE also
    folds characters that `lower` leaves alone (the long s, the Kelvin sign), so the original pattern decides."""
    return bool(_denylist_lower().search(low) if line.isascii() else _denylist().search(line))


def _lines_holding(source: str | bytes, matches: Iterable[re.Match]) -> list[tuple[int, int]]:
    """(start, end) of each line of `source` that holds one of `matches` (found in `source` or in a string of
    the same positions, and in order), once each, without its newline."""
    spans: list[tuple[int, int]] = []
    for match in matches:
        if spans and match.start() < spans[-1][1]:
            continue  # on the line taken already
        if isinstance(source, str):
            start, end = source.rfind("\n", 0, match.start()) + 1, source.find("\n", match.end())
        else:
            start, end = source.rfind(b"\n", 0, match.start()) + 1, source.find(b"\n", match.end())
        spans.append((start, len(source) if end == -1 else end))
    return spans


@functools.cache
def _quoted_run_marks(charset: str, shortest: int) -> tuple[bytes, re.Pattern[bytes]]:
    """A `bytes.translate` table marking quotes "q" and `charset` "a" (all else "o"), and the pattern of a
    quote, `shortest` or more charset characters and a quote on those marks."""
    table = bytearray(b"o" * 256)
    for c in charset.encode("ascii"):
        table[c] = ord("a")
    table[ord("'")] = table[ord('"')] = ord("q")
    return bytes(table), re.compile(rb"qa{%d,}q" % shortest)


def _lines_with_quoted_runs(data: bytes, charset: str, shortest: int) -> str:
    """The lines of the UTF-8 text `data` that hold a quoted string of `shortest` or more `charset`
    characters, joined by newlines: all a high-entropy plugin can find (its regex `(['"])([charset]+)\\1`
    matches within a line) in a text it would otherwise scan whole, from every quote."""
    table, pattern = _quoted_run_marks(charset, shortest)
    spans = _lines_holding(data, pattern.finditer(data.translate(table)))  # a mark per byte: same positions
    return "\n".join(data[a:b].decode("utf-8", "surrogatepass") for a, b in spans)


def _placeholder_for(secret_type: str, line: str) -> str:
    if secret_type == "Private Key":
        return "<PRIVATE_KEY>"
    if secret_type == "Secret Keyword":
        return "<PASSWORD>" if _password_like(line) else "<KEY>"
    if "Token" in secret_type or "JSON Web" in secret_type:
        return "<TOKEN>"
    if "IP" in secret_type:
        return "<IP_ADDRESS>"
    if "Basic Auth" in secret_type:
        return "<PASSWORD>"
    return "<KEY>"


def _keyword_lines(text: str) -> str:
    """The lines of `text` that mention a secret-ish word, joined by newlines (often a tiny part of a file)."""
    low = text.lower()
    # The positions found are the text's only while lowering keeps every character one character long ("İ"
    # lowers to two): otherwise the search itself folds case, on the text.
    haystack, gate = (low, _KEYWORD_GATE) if len(low) == len(text) else (text, _KEYWORD_GATE_ANY_CASE)
    return "\n".join(text[a:b] for a, b in _lines_holding(haystack, gate.finditer(haystack)))


# Plugins whose patterns pair a keyword with a value: they only run on the keyword lines.
_LINE_PLUGINS = frozenset({"KeywordDetector", "CloudantDetector", "IbmCloudIamDetector", "IbmCosHmacDetector",
                           "SoftlayerDetector", "BasicAuthDetector"})
# IP addresses are handled (with their exceptions) by our own rule above.
_SKIPPED_PLUGINS = frozenset({"IPPublicDetector"})
# Vendor plugins whose patterns start with a fixed literal run only when that literal occurs.
_PLUGIN_GATES: dict[str, tuple[str, ...]] = {
    "AWSKeyDetector": ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "aws", "AWS", "Aws"),
    "AzureStorageKeyDetector": ("AccountKey=",),
    "GitHubTokenDetector": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitLabTokenDetector": ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941", "glcbt-", "glimt-",
                            "glptt-", "glagent-"),
    "JwtTokenDetector": ("eyJ",),
    "MailchimpDetector": ("-us",),
    "NpmDetector": ("_authToken",),
    "OpenAIDetector": ("T3BlbkFJ",),
    "PrivateKeyDetector": ("PRIVATE KEY", "PuTTY"),
    "PypiTokenDetector": ("pypi-",),
    "SendGridDetector": ("SG.",),
    "SlackDetector": ("xox", "hooks.slack.com"),
    "SquareOAuthDetector": ("sq0csp-",),
    "StripeDetector": ("k_live_",),
    "TwilioKeyDetector": ("AC", "SK"),
}
# Vendor plugins without a fixed literal run only when a cheaper superset of their pattern (one that starts
# with a literal, which `re` finds fast) matches.
_PLUGIN_REGEX_GATES: dict[str, re.Pattern[str]] = {
    "ArtifactoryDetector": re.compile(r"AKC|AP[\dA-F]"),
    "TelegramBotTokenDetector": re.compile(r":[0-9A-Za-z_-]{35}"),
    "DiscordBotTokenDetector": re.compile(r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),
}


def _fewest_distinct(limit: float) -> int:
    """The fewest distinct characters a string needs for a Shannon entropy above `limit` bits per character:
    a string of k distinct characters has at most log2(k) (kept one short of the bound where it is exact, so
    that a sum rounding over the limit still counts). A high-entropy plugin sums its entropy with a `str.count`
    per character of its charset; a `set` of the string, or its length, spares that for most strings."""
    return int(2 ** limit * (1 - 1e-9)) + 1


def _may_exceed_entropy(value: str, limit: float) -> bool:
    """False when `value` cannot have a Shannon entropy above `limit` (`_fewest_distinct`)."""
    return len(set(value)) >= _fewest_distinct(limit)


# Every literal a gate above looks for, so that each is searched for once per file (`_present`).
_GATE_LITERALS = frozenset({g for _, gates, _, _, _ in _COMPILED_RULES for g in gates}
                           | {g for gates in _PLUGIN_GATES.values() for g in gates})


def _literal_groups(literals: frozenset[str]) -> tuple[tuple[re.Pattern[str] | None, tuple[str, ...]], ...]:
    """The literals grouped by their first character when it is upper case (rare in code) or else by their
    first two, each group of several with one regex of them all: a search for a group's shared start finds
    no hit in most files, which answers for the whole group at the cost of one `in`."""
    groups: dict[str, list[str]] = {}
    for lit in sorted(literals):
        groups.setdefault(lit[0] if lit[0].isupper() else lit[:2], []).append(lit)
    return tuple((re.compile("|".join(map(re.escape, lits))) if len(lits) > 1 else None, tuple(lits))
                 for lits in groups.values())


_GATE_GROUPS = _literal_groups(_GATE_LITERALS)


def _present(text: str, literals: frozenset[str] | None = None) -> frozenset[str]:
    """The gate literals (or those of `literals`) that occur in `text`."""
    if literals is not None:
        return frozenset(lit for lit in literals if lit in text)
    found: list[str] = []
    for regex, lits in _GATE_GROUPS:
        if regex is None:
            if lits[0] in text:
                found.append(lits[0])
        elif regex.search(text):
            found.extend(lit for lit in lits if lit in text)
    return frozenset(found)


def _plugin_findings(text: str, filename: str, keyword_lines: str,
                     present: frozenset[str] | None = None) -> list[tuple[str, str, str]]:
    """(secret value, placeholder, count key) for everything detect-secrets finds in `text`; `present` is
    `_present(text)` when the caller has it."""
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.plugins.keyword import (
        QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        REGEX_BY_FILETYPE,
        KeywordDetector,
    )
    from detect_secrets.util.filetype import determine_file_type

    found: list[tuple[str, str, str]] = []
    present = _present(text) if present is None else present
    lines = keyword_lines.split("\n") if keyword_lines else []
    long_lines: str | None = None  # the keyword lines holding a long unbroken value, built on first use
    data: bytes | None = None  # the text in UTF-8, made on first use
    for plugin in _detectors():
        name = type(plugin).__name__
        key = "detect_secrets:" + plugin.secret_type
        if name in _SKIPPED_PLUGINS:
            continue
        if isinstance(plugin, KeywordDetector):
            table = REGEX_BY_FILETYPE.get(determine_file_type(filename), QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
            for line, low in zip(lines, keyword_lines.lower().split("\n") if lines else [], strict=True):
                if not _has_denylisted_word(line, low):
                    continue
                for value in plugin.analyze_string(line, denylist_regex_to_group=table):
                    if value and not _HARMLESS_VALUES.match(value) and len(value) >= 4 and "<" not in value:
                        found.append((value, _placeholder_for(plugin.secret_type, line), key))
        elif isinstance(plugin, HighEntropyStringsPlugin):
            if data is None:
                data = text.encode("utf-8", "surrogatepass")
            shortest = _fewest_distinct(plugin.entropy_limit)
            for value in plugin.analyze_string(_lines_with_quoted_runs(data, plugin.charset, shortest)):
                if "\n" not in value and _may_exceed_entropy(value, plugin.entropy_limit) \
                        and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit:
                    found.append((value, "<KEY>", key))
        elif name in _PLUGIN_GATES and present.isdisjoint(_PLUGIN_GATES[name]):
            continue
        elif name in _PLUGIN_REGEX_GATES and not _PLUGIN_REGEX_GATES[name].search(text):
            continue
        else:
            if name == "BasicAuthDetector":
                scope = keyword_lines if "://" in keyword_lines else ""
            elif name in _LINE_PLUGINS:
                if long_lines is None:
                    long_lines = "\n".join(line for line in lines if _LONG_VALUE.search(line))
                scope = long_lines
            else:
                scope = text
            for value in plugin.analyze_string(scope) if scope else ():
                if value and len(value) >= 6:
                    found.append((value, _placeholder_for(plugin.secret_type, value), key))
    return found


def _sub_lines(regex: re.Pattern[str], repl: Callable[[re.Match[str]], str], text: str,
               markers: tuple[str, ...]) -> str:
    """`regex.sub(repl, text)` for a regex whose matches never span lines and lie on a line holding one of
    `markers` (none holds a newline): only those lines are searched (a regex without a literal start is tried
    at every character otherwise). A line's ends read as its string's ends, which `\b` and lookarounds of
    word characters treat as they treat the newline."""
    spans = set()
    for marker in markers:
        pos = text.find(marker)
        while pos != -1:
            start = text.rfind("\n", 0, pos) + 1
            end = text.find("\n", pos)
            end = len(text) if end == -1 else end
            spans.add((start, end))
            pos = text.find(marker, end)
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        out += (text[last:start], regex.sub(repl, text[start:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


def preload() -> None:
    """Import and instantiate the detect-secrets plugins now (before forking workers, which then share them)."""
    _denylist()
    _plugin_findings("", "preload.py", "")


def redact(text: str, filename: str = "", counts: Counter | None = None) -> str:
    """`text` with every secret replaced by its placeholder; `counts` gets one entry per kind found."""
    counts = Counter() if counts is None else counts

    def sub(regex: re.Pattern[str], kind: str, repl: str | Callable[[re.Match[str]], str],
            markers: tuple[str, ...] = ()) -> None:
        nonlocal text

        def one(match: re.Match[str]) -> str:
            out = repl(match) if callable(repl) else repl
            if out != match.group(0):
                counts[kind] += 1
            return out

        text = _sub_lines(regex, one, text, markers) if markers else regex.sub(one, text)

    if "PRIVATE KEY" in text or "PuTTY" in text:
        sub(_PRIVATE_KEY, "private_key", "<PRIVATE_KEY>")
    if "://" in text and "@" in text:
        sub(_URL_CREDENTIALS, "url_credentials", lambda m: f"{m['scheme']}<USER>:<PASSWORD>@", markers=("://",))
    original = text
    present = _present(text)
    low = text.lower()
    for name, gates, low_gates, regex, placeholder in _COMPILED_RULES:
        # placeholder None: keep the separator group, replace the value
        repl = placeholder if placeholder is not None else (lambda m: m.group(1) + "<KEY>")
        if low_gates:  # aws_secret_access_key, whose `\s*` can cross a line end: the whole text
            if any(map(low.__contains__, low_gates)) or not present.isdisjoint(gates):
                sub(regex, name, repl)
        elif marked := tuple(g for g in gates if g in present):
            sub(regex, name, repl, markers=marked)

    def assignment(m: re.Match[str]) -> str:
        if not _SECRET_NAME.search(m["name"]) or _HARMLESS_VALUES.match(m["value"]) or "<" in m["value"]:
            return m.group(0)
        ph = "<PASSWORD>" if _password_like(m["name"]) else ("<TOKEN>" if "token" in m["name"].lower() else "<KEY>")
        return f"{m['name']}{m['sep']}{m['q']}{ph}{m['q']}"

    before = text
    lines = _keyword_lines(text)
    if lines:
        redacted = _ASSIGNMENT.sub(assignment, lines)
        if redacted != lines:
            for old, new in zip(lines.split("\n"), redacted.split("\n"), strict=True):
                if old != new:
                    counts["secret_assignment"] += 1
                    text = text.replace(old, new)
    if _EMAIL_GATE.search(text):
        sub(_EMAIL, "email", "<EMAIL>", markers=("@",))

    def ipv4(m: re.Match[str]) -> str:
        ip = m.group(0)
        if _keep_ip(ip) or _VERSION_CONTEXT.search(text[max(0, m.start() - 12):m.start()]):
            return ip
        return "<IP_ADDRESS>"

    def ipv6(m: re.Match[str]) -> str:
        ip = m.group(0)
        if ip.count(":") < 3:
            return ip
        return ip if _keep_ip(ip) else "<IP_ADDRESS>"

    if _IPV4_GATE.search(text):
        sub(_IPV4, "ip_address", ipv4)
    if _IPV6_GATE.search(text):
        sub(_IPV6, "ip_address", ipv6)
    # A replacement only ever removes gate literals (placeholders hold none, and any string across a
    # placeholder's edge holds its "<" or ">", which no literal does): only those found before need a look.
    if text != original:
        present = _present(text, present)
    findings = _plugin_findings(text, filename, lines if text == before else _keyword_lines(text), present)
    for value, placeholder, key in sorted(set(findings), key=lambda f: (-len(f[0]), f)):
        n = text.count(value)
        if n and value not in PLACEHOLDERS:
            text = text.replace(value, placeholder)
            counts[key] += n
    return text
