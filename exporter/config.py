"""The job's configuration: a YAML file, `${ENV}` values and command-line flags, validated once.

Every problem is collected and reported together, unknown keys included (a typo must
not silently change a backup). Messages name the key, never the secret value in it.
Relative paths in the file are relative to the file's own folder, so a cron job does
not depend on its working directory.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import yaml

from exporter.errors import ConfigError
from exporter.redact import redact

LAYOUT_FIELDS = frozenset(
    {"productId", "id", "name", "type", "ext", "productName", "xmlId", "parentId"}
)
DEFAULT_LAYOUT = "{productId}/{id}_{name}"
DEFAULT_TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
MAX_BATCH_SIZE = 50  # the portal runs at most 50 commands per batch
MIN_RATE = 0.01  # requests per second: one every 100 s
MIN_BURST = 1

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")
_WEBHOOK_PATH = re.compile(r"^/rest/(?P<user>\d+)/(?P<code>[^/]+)/?$")


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """An OAuth application's tokens and where to refresh them."""

    access_token: str
    refresh_token: str
    client_id: str
    client_secret: str
    token_url: str
    token_file: Path | None


@dataclass(frozen=True, slots=True)
class PortalConfig:
    """Which portal to talk to and how to authenticate (a webhook or an OAuth app)."""

    base_url: str  # "https://example.bitrix24.com", no trailing slash
    webhook_url: str | None  # "https://example.bitrix24.com/rest/1/CODE/" (a secret)
    oauth: OAuthConfig | None
    timeout_seconds: float

    @property
    def host(self) -> str:
        """The portal's host (and port, if any): safe to show and to store."""
        return urlsplit(self.base_url).netloc

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential in this configuration, for redaction."""
        found: list[str] = []
        if self.webhook_url:
            match = _WEBHOOK_PATH.match(urlsplit(self.webhook_url).path)
            if match:
                found.append(match["code"])
        if self.oauth:
            found += [self.oauth.access_token, self.oauth.refresh_token, self.oauth.client_secret]
        return tuple(secret for secret in found if secret)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """The portal's request budget as the exporter spends it."""

    requests_per_second: float
    burst: int
    downloads_share_limit: bool | None  # None: auto, learned from the portal's answers


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """An object-store destination: `s3://bucket/prefix` and how to reach the store
    (credentials come from the standard AWS variables and profile chain, never here)."""

    url: str  # as given, normalised: s3://bucket or s3://bucket/prefix
    bucket: str
    prefix: str  # "" or "a/b", no slash at either end
    endpoint_url: str | None = None  # None: Amazon S3 itself
    region: str | None = None

    @classmethod
    def of(
        cls, bucket: str, prefix: str, endpoint_url: str | None = None, region: str | None = None
    ) -> StoreConfig:
        """The store at `bucket`/`prefix`, its URL made from them."""
        url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return cls(url, bucket, prefix, endpoint_url, region)


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """Where the export lands and how each image's path is made. With an object store,
    `dir` is the export's local state folder (index, lock, journals, the default report)."""

    dir: Path
    layout: str
    store: StoreConfig | None = None

    @property
    def where(self) -> str:
        """The destination as the user names it: the folder, or the store's URL."""
        return self.store.url if self.store is not None else str(self.dir)


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How hard a failing request is tried again (the portal part builds its policy from it)."""

    max_attempts: int


@dataclass(frozen=True, slots=True)
class Config:
    """Everything one export run needs, validated."""

    portal: PortalConfig
    manifest: Path | None
    output: OutputConfig
    rate_limit: RateLimitConfig
    batch_size: int
    download_concurrency: int
    retries: RetryConfig
    report: Path


class Overrides(TypedDict, total=False):
    """What the command line says over the file; None is "not given"."""

    manifest: Path | None
    output_dir: Path | str | None  # a folder or s3:// URL; the file's report moves along
    report: Path | None
    rate: float | None  # rate_limit.requests_per_second, within the same bounds
    burst: int | None  # rate_limit.burst, within the same bounds


def load_config(
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Unpack[Overrides],
) -> Config:
    """Read and validate a config file; `overrides` are the command line's."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return parse_config(
        raw,
        base_dir=path.parent,
        env=os.environ if env is None else env,
        source=str(path),
        **overrides,
    )


def portal_host_of(path: Path, env: Mapping[str, str] | None = None) -> str:
    """The portal a config file names, as far as it can be read: for the metrics of a run
    whose config is not valid ("" when even that cannot be told)."""
    environ = os.environ if env is None else env
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        portal = raw["portal"]
        url = portal.get("webhook_url") or portal["oauth"]["portal_url"]
        url = _ENV_REFERENCE.sub(lambda m: environ.get(m.group(1) or "", "$"), str(url))
        return urlsplit(url.strip()).netloc.rpartition("@")[2]  # never a user:password
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return ""


def parse_config(
    raw: Mapping[str, Any],
    *,
    base_dir: Path,
    env: Mapping[str, str],
    source: str = "config",
    **overrides: Unpack[Overrides],
) -> Config:
    """Validate an already-parsed configuration mapping (also used by `demo`)."""
    given = overrides.get("output_dir")
    output_dir: Path | None = None if given is None or is_store_url(str(given)) else Path(given)
    reader = _Reader(env, base_dir)
    with reader.section(raw, "") as top:
        portal = _read_portal(reader, top)
        manifest_path = top.path("manifest", None)
        with reader.section(top.mapping("output"), "output") as out:
            dir_text = out.string("dir", None)
            s3_section = out.mapping("s3")
            file_is_store = dir_text is not None and is_store_url(dir_text)
            store: StoreConfig | None = None
            if given is not None and is_store_url(str(given)):  # --output's store
                store = _read_store(reader, "--output", str(given), s3_section)
            elif given is None and dir_text is not None and file_is_store:  # the file's own
                store = _read_store(reader, "output.dir", dir_text, s3_section)
            elif s3_section is not None and not file_is_store:
                reader.errors.append("output.s3: only for an s3:// output.dir")
            out_dir = None if file_is_store else out.path("dir", "export")
            layout = out.string("layout", DEFAULT_LAYOUT)
        with reader.section(top.mapping("rate_limit"), "rate_limit") as rl:
            per_second = rl.number("requests_per_second", 2.0, minimum=MIN_RATE)
            burst_size = rl.integer("burst", 50, minimum=MIN_BURST)
            shares = rl.boolean_or_auto("downloads_share_limit")
        batch_size = top.integer("batch_size", MAX_BATCH_SIZE, minimum=1, maximum=MAX_BATCH_SIZE)
        with reader.section(top.mapping("concurrency"), "concurrency") as conc:
            downloads = conc.integer("downloads", 8, minimum=1, maximum=256)
        with reader.section(top.mapping("retries"), "retries") as ret:
            attempts = ret.integer("max_attempts", 6, minimum=1, maximum=100)
        report_path = top.path("report", None)
    flags_given = {"--rate": overrides.get("rate"), "--burst": overrides.get("burst")}
    with reader.section(flags_given, "") as flags:
        per_second = flags.number("--rate", per_second, minimum=MIN_RATE)
        burst_size = flags.integer("--burst", burst_size, minimum=MIN_BURST)
    if layout is not None:
        reader.errors += _layout_problems(layout)
    if portal is None and not reader.errors:
        reader.errors.append("portal: no usable webhook_url or oauth")
    if reader.errors:
        lines = "\n".join(f"  {error}" for error in reader.errors)
        raise ConfigError(f"invalid configuration in {source}:\n{lines}")
    assert portal is not None and layout is not None
    final_out = store_state_dir(store, env) if store is not None else output_dir or out_dir
    assert final_out is not None
    if (
        output_dir is not None
        and out_dir is not None
        and report_path is not None
        and report_path.is_relative_to(out_dir)
    ):
        # The file's report lies in its output folder: it belongs to the export and moves
        # with --output, so a run elsewhere does not overwrite the nightly's report.
        report_path = output_dir / report_path.relative_to(out_dir)
    redact.add(*portal.secrets)
    return Config(
        portal=portal,
        manifest=overrides.get("manifest") or manifest_path,
        output=OutputConfig(final_out, layout, store),
        rate_limit=RateLimitConfig(per_second, burst_size, shares),
        batch_size=batch_size,
        download_concurrency=downloads,
        retries=RetryConfig(attempts),
        report=overrides.get("report") or report_path or final_out / "report.json",
    )


def _read_portal(reader: _Reader, top: _Section) -> PortalConfig | None:
    with reader.section(top.mapping("portal"), "portal") as sec:
        webhook = sec.string("webhook_url", None)
        insecure_ok = sec.boolean("allow_insecure_http", False)
        timeout = sec.number("timeout_seconds", 60.0, minimum=1.0)
        oauth_raw = sec.mapping("oauth", required=False)
        oauth: OAuthConfig | None = None
        oauth_portal: str | None = None
        if oauth_raw is not None:
            with reader.section(oauth_raw, "portal.oauth") as oa:
                oauth_portal = oa.string("portal_url", None, required=True)
                token_file = oa.path("token_file", None)
                oauth = OAuthConfig(
                    access_token=oa.string("access_token", "", required=True) or "",
                    refresh_token=oa.string("refresh_token", "", required=True) or "",
                    client_id=oa.string("client_id", "", required=True) or "",
                    client_secret=oa.string("client_secret", "", required=True) or "",
                    token_url=oa.string("token_url", DEFAULT_TOKEN_URL) or DEFAULT_TOKEN_URL,
                    token_file=token_file,
                )
    if webhook and oauth_raw is not None:
        reader.errors.append("portal: set either webhook_url or oauth, not both")
        return None
    if webhook:
        base = _check_url(reader, "portal.webhook_url", webhook, insecure_ok, webhook=True)
        return None if base is None else PortalConfig(base, _slashed(webhook), None, timeout)
    if oauth is not None and oauth_portal:
        base = _check_url(reader, "portal.oauth.portal_url", oauth_portal, insecure_ok)
        if oauth.token_url:
            _check_url(reader, "portal.oauth.token_url", oauth.token_url, insecure_ok, path_ok=True)
        return None if base is None else PortalConfig(base, None, oauth, timeout)
    if oauth_raw is None:
        if not sec.has("webhook_url"):
            reader.errors.append("portal.webhook_url: required (or portal.oauth for an OAuth app)")
        elif webhook is not None or sec.is_blank("webhook_url"):
            reader.errors.append("portal.webhook_url: must not be empty")
    return None


def _check_url(
    reader: _Reader,
    key: str,
    url: str,
    insecure_ok: bool,
    *,
    webhook: bool = False,
    path_ok: bool = False,
) -> str | None:
    """Return "scheme://host" of a valid portal URL, or record why it is not valid."""
    parts = urlsplit(url.strip())
    shape = "https://PORTAL/rest/USER_ID/CODE/" if webhook else "https://PORTAL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        reader.errors.append(f"{key}: not a URL of the form {shape}")
        return None
    if webhook and (not _WEBHOOK_PATH.match(parts.path) or parts.query or parts.fragment):
        reader.errors.append(
            f"{key}: must look like {shape} (the webhook's URL as Bitrix24 shows it)"
        )
        return None
    if not webhook and not path_ok and parts.path not in ("", "/"):
        reader.errors.append(f"{key}: must be the portal's address only, like {shape}")
        return None
    if parts.scheme == "http" and not insecure_ok and not _is_loopback(parts.hostname):
        reader.errors.append(
            f"{key}: plain http:// to {parts.hostname} would send credentials unencrypted; "
            "use https:// or set portal.allow_insecure_http: true"
        )
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _slashed(url: str) -> str:
    url = url.strip()
    return url if url.endswith("/") else url + "/"


def _layout_problems(layout: str) -> list[str]:
    """Check `output.layout`: known fields only, a relative path, no `..`."""
    problems: list[str] = []
    try:
        parsed = list(string.Formatter().parse(layout))
    except ValueError as exc:
        return [f"output.layout: {exc}"]
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in LAYOUT_FIELDS:
            known = ", ".join(sorted(LAYOUT_FIELDS))
            problems.append(f"output.layout: unknown field {{{field}}} (known: {known})")
        elif spec or conversion:
            problems.append(f"output.layout: {{{field}}} takes no format options")
    parts = layout.split("/")
    if layout.startswith("/") or "\\" in layout:
        problems.append("output.layout: must be a relative path with / between folders")
    elif any(part in ("", ".", "..") for part in parts):
        problems.append("output.layout: empty, '.' and '..' path parts are not allowed")
    elif "{" not in parts[-1]:
        problems.append("output.layout: the file name part must contain at least one field")
    return problems


class _Reader:
    """Collects problems while sections are read; shared by every `_Section`."""

    def __init__(self, env: Mapping[str, str], base_dir: Path) -> None:
        self.env = env
        self.base_dir = base_dir
        self.errors: list[str] = []

    @contextmanager
    def section(self, raw: Mapping[str, Any] | None, prefix: str) -> Iterator[_Section]:
        sec = _Section(self, raw or {}, prefix)
        yield sec
        sec.reject_unknown()


class _Section:
    """Typed, recorded access to one mapping of the config; unread keys are unknown keys."""

    def __init__(self, reader: _Reader, raw: Mapping[str, Any], prefix: str) -> None:
        self._reader = reader
        self._raw = raw
        self._prefix = prefix
        self._known: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def _error(self, key: str, message: str) -> None:
        self._reader.errors.append(f"{self._key(key)}: {message}")

    def _get(self, key: str) -> Any:
        self._known.add(key)
        value = self._raw.get(key)
        if isinstance(value, str):
            return self._interpolate(key, value)
        return value

    def _interpolate(self, key: str, value: str) -> str | None:
        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "$"
            if name not in self._reader.env:
                missing.append(name)
                return ""
            return self._reader.env[name]

        result = _ENV_REFERENCE.sub(substitute, value)
        for name in missing:
            self._error(key, f"environment variable {name} is not set")
        return None if missing else result

    def has(self, key: str) -> bool:
        """Whether the key is written in the file at all (even with an empty value)."""
        return key in self._raw

    def is_blank(self, key: str) -> bool:
        """Whether the key is written with no value, before `${ENV}` substitution."""
        value = self._raw.get(key)
        return value is None or (isinstance(value, str) and not value.strip())

    def mapping(self, key: str, *, required: bool = False) -> Mapping[str, Any] | None:
        value = self._get(key)
        if value is None:
            if required:
                self._error(key, "required")
            return None
        if not isinstance(value, dict):
            self._error(key, "must be a mapping of keys")
            return None
        return value

    def string(self, key: str, default: str | None, *, required: bool = False) -> str | None:
        value = self._get(key)
        if value is None:
            if required and key not in self._raw:
                self._error(key, "required")
            elif required and self._raw.get(key) is None:
                self._error(key, "must not be empty")
            return default
        if not isinstance(value, str):
            self._error(key, "must be a string")
            return default
        if required and not value.strip():
            self._error(key, "must not be empty")
        return value

    def path(self, key: str, default: str | None) -> Path | None:
        """A path; relative ones (the default too) are taken from the config file's folder."""
        value = self.string(key, None)
        if value is None or not value.strip():
            value = default
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self._reader.base_dir / path

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self._error(key, "must be true or false")
        return default

    def boolean_or_auto(self, key: str) -> bool | None:
        """true, false, or auto (the default), which reads as None."""
        value = self._get(key)
        if isinstance(value, str) and value.strip().lower() == "auto":
            return None
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self._error(key, "must be auto, true or false")
        return None

    def number(self, key: str, default: float, *, minimum: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError):
            number = float("nan")
        if not number >= minimum or number == float("inf"):
            self._error(key, f"must be a number of at least {minimum:g}")
            return default
        return number

    def integer(self, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            self._error(key, "must be a whole number")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
            self._error(key, f"must be {bound}")
            return default
        return value

    def reject_unknown(self) -> None:
        for key in self._raw:
            if key in self._known:
                continue
            hint = difflib.get_close_matches(str(key), sorted(self._known), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            self._reader.errors.append(f"{self._key(str(key))}: unknown key{suggestion}")


STORE_SCHEMES = ("s3://",)
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_store_url(text: str) -> bool:
    """Whether an output names an object store rather than a folder."""
    return text.strip().lower().startswith(STORE_SCHEMES)


def parse_store_url(text: str) -> tuple[str, str] | str:
    """(bucket, prefix) of an s3:// URL, or what is wrong with it."""
    rest = text.strip()[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET_NAME.match(bucket):
        return f"{bucket or '(none)'} is not a bucket name (3-63 of a-z, 0-9, '.', '-')"
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        return "the prefix has an empty, '.' or '..' part"
    return bucket, prefix


def _read_store(
    reader: _Reader, where: str, text: str, section: Mapping[str, Any] | None
) -> StoreConfig:
    parsed = parse_store_url(text)
    if isinstance(parsed, str):
        reader.errors.append(f"{where}: {parsed}")
        parsed = ("invalid", "")
    bucket, prefix = parsed
    endpoint = region = None
    with reader.section(section, "output.s3") as sec:
        endpoint = sec.string("endpoint_url", None)
        region = sec.string("region", None)
    if endpoint is not None:
        parts = urlsplit(endpoint.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            reader.errors.append("output.s3.endpoint_url: must be an http(s):// URL")
        elif parts.username or parts.password:
            reader.errors.append("output.s3.endpoint_url: no credentials in the URL")
    return StoreConfig.of(bucket, prefix, endpoint.strip() if endpoint else None, region)


def store_state_dir(store: StoreConfig, env: Mapping[str, str]) -> Path:
    """The local state folder of an object-store export, under the user's cache folder,
    keyed by the store and the URL (two endpoints with the same bucket name differ)."""
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    key = hashlib.sha256(f"{store.endpoint_url or 'aws'}\n{store.url}".encode()).hexdigest()
    name = f"{store.bucket}-{key[:16]}"
    return Path(cache).expanduser() / "b24-image-exporter" / "stores" / name
