"""The site-file loader under hostile and odd input: every refusal names file, line and field.

Each case was found crashing or exhausting the loader (a traceback, a RecursionError,
8.75 s and 2.3 GB for an 822-byte file) or silently accepting a value that means
nothing (NaN limits, infinite retention).  Now each is a :class:`ConfigError`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from plantguard.config import ConfigError, load_site, parse_site
from plantguard.host import PluginHost

DEMO = Path(__file__).parents[1] / "plugins" / "plantguard_sim" / "demo_site.yaml"
BASE = DEMO.read_text()
TITLE = "name: PlantGuard demo plant"


def _refusal(text: str, host: PluginHost) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_site(text, "site.yaml", host)
    return str(caught.value)


def _nested_aliases(levels: int) -> str:
    lines = ['x0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_the_demo_site_still_loads(host: PluginHost) -> None:
    assert parse_site(BASE, "demo.yaml", host).site.id == "demo"


def test_a_byte_that_is_not_utf8_names_line_and_column(tmp_path: Path, host: PluginHost) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(BASE.encode().replace(b"pump1", b"pu\xffmp1", 1))
    line = next(n for n, text in enumerate(BASE.splitlines(), 1) if "pump1" in text)
    with pytest.raises(ConfigError) as caught:
        load_site(path, host)
    assert (
        str(caught.value)
        == f"{path}:{line}: not UTF-8: byte 0xFF at column 15 (save the file as UTF-8)"
    )


def test_a_byte_order_mark_is_fine(tmp_path: Path, host: PluginHost) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_site(path, host).site.id == "demo"


@pytest.mark.parametrize("char", ["\x07", "\x00", "\x1b", "\x7f", "\x85\x9f"])
def test_control_characters_are_refused_with_their_line(char: str, host: PluginHost) -> None:
    text = BASE.replace(TITLE, f'name: "Plant{char}"', 1)
    line = BASE.splitlines().index(TITLE) + 1
    message = _refusal(text, host)
    assert message.startswith(f"site.yaml:{line}: control character U+")
    assert "is not allowed" in message


def test_an_alias_inside_its_own_anchor_is_refused(host: PluginHost) -> None:
    line = BASE.splitlines().index(TITLE) + 1
    message = _refusal(BASE.replace(TITLE, "name: &a [*a]", 1), host)
    assert message == f"site.yaml:{line}: an alias refers to its own anchor"


@pytest.mark.parametrize("levels", [6, 9, 12])
def test_nested_aliases_are_refused_before_they_expand(levels: int, host: PluginHost) -> None:
    began = time.process_time()
    message = _refusal(_nested_aliases(levels) + BASE, host)
    assert "aliases expand the document to" in message
    assert "over the limit of 100,000" in message
    # 9**12 nodes were never built: the refusal took a few milliseconds of CPU. This is
    # a bound on work done (an expansion of 9**12 nodes takes hours), not a timing test.
    assert time.process_time() - began < 5


def test_modest_aliases_still_work(host: PluginHost) -> None:
    text = BASE.replace(
        "      - id: pump1\n", "      - id: pump1\n        x-common: &common {unit: bar}\n", 1
    )
    # An anchor used once is a plain YAML feature: the file is refused only for the
    # unknown field, not for the alias.
    message = _refusal(text, host)
    assert "x-common: unknown field" in message
    assert "alias" not in message


def test_a_complex_mapping_key_is_refused(host: PluginHost) -> None:
    message = _refusal(BASE.replace(TITLE, f"{TITLE}\n? [a, b]\n: 1", 1), host)
    line = BASE.splitlines().index(TITLE) + 2
    assert message.startswith(f"site.yaml:{line}: ")
    assert "string" in message or "plain value" in message


def test_an_impossible_date_names_its_field(host: PluginHost) -> None:
    text = BASE.replace("commissioned: 2023-04-12", "commissioned: 2023-13-45", 1)
    line = next(n for n, t in enumerate(BASE.splitlines(), 1) if "commissioned" in t)
    message = _refusal(text, host)
    assert message.startswith(f"site.yaml:{line}: areas[0].devices[0].info.commissioned: ")
    assert "month" in message


def test_a_date_outside_1970_2199_is_refused(host: PluginHost) -> None:
    text = BASE.replace("commissioned: 2023-04-12", "commissioned: 9999-12-31", 1)
    assert "date outside 1970-2199" in _refusal(text, host)


@pytest.mark.parametrize(
    ("find", "replace", "field"),
    [
        ("scan_interval: 0.5", "scan_interval: .nan", "scan_interval"),
        ("rated: {power_kw: 11.0,", "rated: {power_kw: .inf,", "rated.power_kw"),
        ("rated: {power_kw: 11.0,", "rated: {power_kw: -.Inf,", "rated.power_kw"),
        ("rated: {power_kw: 11.0,", "rated: {power_kw: 1e400,", "rated.power_kw"),
    ],
)
def test_non_finite_numbers_are_refused_with_their_field(
    find: str, replace: str, field: str, host: PluginHost
) -> None:
    assert find in BASE
    message = _refusal(BASE.replace(find, replace, 1), host)
    line = next(
        n for n, t in enumerate(BASE.splitlines(), 1) if find.split(":", maxsplit=1)[0] in t
    )
    assert f"site.yaml:{line}: " in message
    assert field in message
    assert "not a finite number" in message


def test_a_limit_of_nan_on_a_point_is_refused(host: PluginHost) -> None:
    assert "hh:" in BASE
    text = BASE.replace("hh: 7.1", "hh: .nan", 1)
    message = _refusal(text, host)
    assert ".rules.limit.hh: nan is not a finite number" in message


def test_nesting_past_the_limit_is_refused(host: PluginHost) -> None:
    deep = "x: " + "[" * 100_000 + "]" * 100_000 + "\n"
    message = _refusal(deep + BASE, host)
    assert message.startswith("site.yaml:")
    assert "nest" in message


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path: Path, host: PluginHost) -> None:
    from plantguard import yamlsafe

    path = tmp_path / "site.yaml"
    with path.open("wb") as f:
        f.write(BASE.encode())
        f.seek(yamlsafe.MAX_BYTES + 10)
        f.write(b"\n")
    with pytest.raises(ConfigError) as caught:
        load_site(path, host)
    assert str(caught.value) == f"{path}: file is larger than the limit of 67,108,864 bytes"


def test_a_file_only_yaml_1_2_reads_still_gets_its_errors(host: PluginHost) -> None:
    # Found by test_fuzz_inputs: a line break inside a flow mapping's key is YAML 1.2
    # that PyYAML (used only for line numbers) refuses; the error comes without a line.
    text = BASE.replace("fast: {interval: 0.5}", "fast: {i\nnterval: 0.5}", 1)
    assert _refusal(text, host) == "site.yaml: poll_groups.fast.i nterval: unknown field"
