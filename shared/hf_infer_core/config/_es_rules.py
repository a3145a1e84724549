"""Elasticsearch's rules for an inference endpoint, in its words: the constants and the checks.

The parser (:mod:`._endpoint`) runs them once per parse, collecting every problem (no value echoed
that could be a key) before the models are built; the models (:mod:`._settings`), which skip them
then (``_PARSED``), run them through these functions when built directly. Nothing here imports a
model: the rules sit below both.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeGuard, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..base._errors import ConfigError
from ..base._secret import redact

SERVICE_NAME = "hugging_face"
SUPPORTED_TASK_TYPES = ("text_embedding", "rerank")
# Task types Elasticsearch knows; any other string is an unknown task type, not an unsupported one.
KNOWN_TASK_TYPES = ("text_embedding", "sparse_embedding", "rerank", "completion", "chat_completion")
DEFAULT_REQUESTS_PER_MINUTE = 3000
# The inference_id of endpoints built from a URL rather than an Elasticsearch request.
DEFAULT_INFERENCE_ID = "hf-infer"
# Where the key is looked for when a URL-built endpoint or an adapter is given none, in order.
API_KEY_ENV_VARS = ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN")
STRATEGIES = ("none", "recursive", "sentence", "word")
SEPARATOR_GROUPS = {
    # Elasticsearch's SeparatorGroup regexes, Java and Python regex syntax agree on them.
    "plaintext": ("(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"),
    "markdown": (
        "\n# ",
        "\n## ",
        "\n### ",
        "\n#### ",
        "\n##### ",
        "\n###### ",
        "\n^(?!\\s*$).*\\n-{1,}\\n",
        "\n^(?!\\s*$).*\\n={1,}\\n",
    ),
}
# The documented limits this project follows (Elasticsearch dropped the 300 ceiling in 2025).
_MAX_CHUNK_UPPER = 300
_MAX_CHUNK_LOWER = {"word": 10, "sentence": 20, "recursive": 10}
_SIMILARITIES = ("cosine", "dot_product", "l2_norm")
# Elasticsearch's inference_id rule.
_INFERENCE_ID = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")  # used with fullmatch: "$" admits a final "\n"
# Elasticsearch reads dimensions and max_input_tokens as a Java Integer.
_MAX_INT = 2**31 - 1
# Elasticsearch reads requests_per_minute as a Java long.
_MAX_LONG = 2**63 - 1
# requests_per_minute's rule, declared once: a positive Java long (the models' type, the parser's
# and the rate limiters' check).
PositiveLong = Annotated[int, Field(gt=0, le=_MAX_LONG, strict=True)]


def is_positive_long(value: object) -> bool:
    """True for an ``int`` (not a bool) in 1..2**63-1, what Elasticsearch reads as a positive long."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_LONG


# Longer URLs are refused by most servers and proxies (and make multi-kB error messages).
_MAX_URL_LENGTH = 8192
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONSOLE_LINE = re.compile(r"^\s*PUT\s+/?_inference/(?:(?P<task>[^/\s]+)/)?(?P<id>[^/\s?]+)\S*\s*$", re.IGNORECASE)

# hide_input_in_errors: pydantic would otherwise print the inputs (the api key among them).
# Set while the parser builds the models from values its Elasticsearch rules have checked.
_PARSED: contextvars.ContextVar[bool] = contextvars.ContextVar("hf_infer_parsed", default=False)

_FROZEN = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
_M = TypeVar("_M", bound=BaseModel)


def _validate_chunking(settings: Mapping[str, object], *, parsed: bool) -> list[str]:
    """Return Elasticsearch's messages for every rule ``settings`` breaks (empty when valid).

    ``parsed`` is True when checking a built model, whose absent keys are ``None``.
    """
    errors: list[str] = []
    if "strategy" not in settings:
        return ["Can't generate Chunker without ChunkingStrategy provided"]
    strategy = settings["strategy"]
    name = strategy.strip().lower() if isinstance(strategy, str) else strategy
    if name not in STRATEGIES:
        return [
            f"[chunking_settings] Invalid value [{_show(strategy)}] received. "
            f"[strategy] must be one of [{', '.join(STRATEGIES)}]"
        ]
    allowed = {
        "none": {"strategy"},
        "word": {"strategy", "max_chunk_size", "overlap"},
        "sentence": {"strategy", "max_chunk_size", "sentence_overlap"},
        "recursive": {"strategy", "max_chunk_size", "separator_group", "separators"},
    }[name]
    extra = [k for k in settings if k not in allowed]
    if extra:
        listed = "[" + ", ".join(map(str, extra)) + "]"
        errors.append(
            {
                "none": f"When chunking is disabled (none), settings can not have the following: {listed}",
                "word": f"Word based chunking settings can not have the following settings: {listed}",
                "sentence": f"Sentence based chunking settings can not have the following settings: {listed}",
                "recursive": f"Recursive chunking settings can not have the following settings: {listed}",
            }[name]
        )
    if name == "none":
        return errors
    size_errors = _max_chunk_size_problems(settings.get("max_chunk_size"), name)
    errors += size_errors
    if name == "word":
        errors += _overlap_problems(settings.get("overlap"), settings.get("max_chunk_size"), not size_errors)
    elif name == "sentence":
        sentence_overlap = settings.get("sentence_overlap")
        if sentence_overlap is not None and (not _is_int(sentence_overlap) or sentence_overlap not in (0, 1)):
            errors.append(f"[chunking_settings] sentence_overlap[{_show(sentence_overlap)}] must be either 0 or 1")
    else:
        errors += _recursive_problems(settings.get("separator_group"), settings.get("separators"), parsed)
    return errors


def _max_chunk_size_problems(size: object, strategy: str) -> list[str]:
    if size is None:
        return ["[chunking_settings] does not contain the required setting [max_chunk_size]"]
    if not _is_int(size):
        return [_wrong_type("chunking_settings", "max_chunk_size", size, "Integer")]
    if size < _MAX_CHUNK_LOWER[strategy]:
        return [
            f"[chunking_settings] Invalid value [{size}]. [max_chunk_size] must be greater than or equal to "
            f"[{_MAX_CHUNK_LOWER[strategy]}]"
        ]
    if size > _MAX_CHUNK_UPPER:
        return [
            f"[chunking_settings] Invalid value [{size}]. [max_chunk_size] must be less than or equal to [{_MAX_CHUNK_UPPER}]"
        ]
    return []


def _overlap_problems(overlap: object, size: object, size_ok: bool) -> list[str]:
    if overlap is None:
        return ["[chunking_settings] does not contain the required setting [overlap]"]
    if not _is_int(overlap):
        return [_wrong_type("chunking_settings", "overlap", overlap, "Integer")]
    if overlap < 0:
        # Elasticsearch wants a positive overlap; 0 (no overlap) is a documented hf-infer extension.
        return [f"[chunking_settings] Invalid value [{overlap}]. [overlap] must be a non-negative integer"]
    if size_ok and isinstance(size, int) and overlap > size // 2:
        return [
            f"[chunking_settings] Invalid value [{overlap}]. [overlap] must be less than or equal to [{int(size) // 2}]"
        ]
    return []


def _recursive_problems(group: object, separators: object, parsed: bool) -> list[str]:
    errors: list[str] = []
    if group is not None and separators is not None and not parsed:
        errors.append("Recursive chunking settings can not have both separators and separator_group")
    if group is not None:
        if not isinstance(group, str) or group.strip().lower() not in SEPARATOR_GROUPS:
            errors.append(
                f"[chunking_settings] Invalid value [{_show(group)}] received. "
                f"[separator_group] must be one of [{', '.join(SEPARATOR_GROUPS)}]"
            )
    elif separators is not None:
        if isinstance(separators, str) or not isinstance(separators, list | tuple):
            errors.append(_wrong_type("chunking_settings", "separators", separators, "List"))
        elif not separators:
            errors.append("Recursive chunking settings can not have an empty list of separators")
        else:
            errors += [problem for sep in separators if (problem := _separator_problem(sep))]
    return errors


def _separator_problem(sep: object) -> str | None:
    if not isinstance(sep, str) or sep == "":
        return f"[chunking_settings] [separators] must be non-empty strings, got [{_show(sep)}]"
    try:
        re.compile(sep)
    except re.error as err:
        return f"[chunking_settings] Invalid value [{_show(sep)}]. [separators] must be regular expressions: {err}"
    if _nested_quantifier(sep):
        return (
            f"[chunking_settings] Invalid value [{_show(sep)}]. [separators] must not nest quantifiers "
            "(such as (a+)+): they can take exponential time on crafted text"
        )
    return None


def _normalise_chunking(settings: Mapping[str, object]) -> dict[str, object]:
    name = str(settings["strategy"]).strip().lower()
    out: dict[str, object] = {"strategy": name, "max_chunk_size": settings.get("max_chunk_size")}
    if name == "none":
        out.update(max_chunk_size=None, sentence_overlap=None)
    elif name == "word":
        out.update(overlap=settings["overlap"], sentence_overlap=None)
    elif name == "sentence":
        out["sentence_overlap"] = settings.get("sentence_overlap", 1)
    else:
        out["sentence_overlap"] = None
        group = settings.get("separator_group")
        if group is not None:
            out["separator_group"] = str(group).strip().lower()
        else:
            # Elasticsearch stores the plaintext group's regexes when neither key is given.
            separators = settings.get("separators")
            out["separators"] = (
                tuple(separators)
                if isinstance(separators, list | tuple) and separators
                else SEPARATOR_GROUPS["plaintext"]
            )
    return out


def _build(model: type[_M], values: dict[str, object]) -> _M:
    # The hand-written checks above ran once and speak Elasticsearch's language; the models'
    # validators (for models built directly) do not run them again (_PARSED). pydantic's type
    # checks still run: should one fire, it is a ConfigError that echoes no value (the key).
    token = _PARSED.set(True)
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise ConfigError(
            [f"[{'.'.join(map(str, e['loc'])) or model.__name__}] {e['msg']}" for e in err.errors(include_input=False)]
        ) from None
    finally:
        _PARSED.reset(token)


def _url_error(url: str) -> str | None:
    """Elasticsearch's message for a URL that is not one httpx can send to; ``None`` when it is fine.

    The URL is parsed here fully, as the client will parse it, so that no URL passes the
    configuration and then fails at the first request (control characters, a host that is not
    valid IDNA, an over-long URL). Credentials in the URL are refused with their own message.
    """
    invalid = f"[service_settings] Invalid url [{_show(url)}] received for field [url]"
    if len(url) > _MAX_URL_LENGTH or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return invalid
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
        parsed = httpx.URL(url)
        host = parsed.host  # decodes the IDNA host: "xn--" with nothing after fails here
    except Exception:  # httpx.InvalidURL, idna errors, ValueError: all mean "not sendable"
        return invalid
    if parts.scheme not in ("http", "https") or not host:
        return invalid
    if parts.username is not None or parts.password is not None:
        return (
            "[service_settings] Invalid url: credentials in the url are not accepted; "
            "put the token in [api_key] (sent as a Bearer token)"
        )
    try:
        parsed.raw_host.decode("ascii")
    except UnicodeDecodeError:
        return invalid
    return None


def _is_int(value: object) -> TypeGuard[int]:
    # JSON has no int/bool distinction problem, but Python does: True is an int.
    return isinstance(value, int) and not isinstance(value, bool)


def _wrong_type(scope: str, field: str, value: object, expected: str) -> str:
    return (
        f"[{scope}] field [{field}] is not of the expected type. "
        f"The value [{_show(value)}] cannot be converted to a [{expected}]"
    )


def _keys(mapping: object) -> str:
    if isinstance(mapping, Mapping):
        return "[" + ", ".join(_show(str(k)) for k in mapping) + "]"
    return f"[{_type_name(mapping)}]"


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object's members, refusing a key given twice (Elasticsearch's parser refuses it too)."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"Duplicate field '{_show(key)}'")
        out[key] = value
    return out


def _show(value: object) -> str:
    # Values are echoed in messages; one shaped like a Hugging Face token never is (a key put in
    # the wrong field, or a url and a key swapped).
    if _is_int(value) and abs(value) >= 10**80:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"  # str() refuses 4,300+
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # Control and bidi characters are shown escaped: a message must read as what it is.
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", redact(text))
    return text if len(text) <= 80 else text[:77] + "..."


def _nested_quantifier(pattern: str) -> bool:
    """True when a repeated group holds a repeat (``(a+)+``, ``(a*b?)*``): catastrophic backtracking."""
    import re._parser as parser  # type: ignore[import-not-found]  # the parser re itself uses

    repeats = {parser.MAX_REPEAT, parser.MIN_REPEAT, parser.POSSESSIVE_REPEAT}

    # The parser's tree is untyped (sre_parse's internals): its nodes are read as they come.
    def children(op: object, arg: Any) -> list[Any]:
        if op is parser.SUBPATTERN:
            return [arg[-1]]
        if op is parser.BRANCH:
            return list(arg[1])
        if op in (parser.ASSERT, parser.ASSERT_NOT):
            return [arg[1]]
        return []

    def walk(items: Any, inside_repeat: bool) -> bool:
        for op, arg in items:
            if op in repeats:
                high, sub = arg[1], arg[2]
                repeated = high == parser.MAXREPEAT or high > 1
                if (repeated and inside_repeat) or walk(sub, inside_repeat or repeated):
                    return True
            elif any(walk(child, inside_repeat) for child in children(op, arg)):
                return True
        return False

    return bool(walk(parser.parse(pattern), False))


def _type_name(value: object) -> str:
    return type(value).__name__
