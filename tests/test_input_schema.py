"""Scenario input limits: strict types, finite numbers, safe names, distinct columns,
one-line --set values and a loader that refuses bad files with one clear message."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from credsim.engine import Simulation
from credsim.errors import InputError
from credsim.population.people import build_people
from credsim.rng import Streams
from credsim.scenario import load as load_mod
from credsim.scenario.load import (
    MAX_ERRORS,
    MAX_FILE_BYTES,
    load_scenario,
    preset_names,
    validate,
)
from credsim.scenario.model import (
    DESCRIPTION_MAX,
    ENTRIES_MAX,
    FIXED_NAMED_COLUMNS,
    NAME_MAX,
    NAME_RE,
    Scenario,
    named_columns,
)

TRAITS = ("compliance", "voice", "sociability", "generosity", "firm_compliance")
NOT_FINITE = ("nan", "inf", "-inf", "1e308")


def _error(source: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(InputError) as exc:
        load_scenario(source, overrides)
    return str(exc.value)


def _file(tmp_path: Path, text: str | bytes, name: str = "s.toml") -> str:
    f = tmp_path / name
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text, "utf-8")
    return str(f)


# --- 1. strict types and finite numbers ----------------------------------------------------


@pytest.mark.parametrize("trait", TRAITS)
@pytest.mark.parametrize("bad", NOT_FINITE)
@pytest.mark.parametrize("position", [0, 1])
def test_beta_parameters_must_be_finite_and_in_range(trait, bad, position):
    pair = ["2.0", "2.0"]
    pair[position] = bad
    msg = _error("rongcheng", [f"population.{trait}=[{', '.join(pair)}]"])
    assert f"population.{trait}.{position}" in msg, msg


@pytest.mark.parametrize("pair", ["[0.01, 0.01]", "[0.1, 2.0]", "[2.0, 0.19]", "[1001, 2.0]"])
def test_beta_parameters_outside_the_drawable_range_are_refused(pair):
    """Regression: Beta(0.01, 0.01) drew NaN traits (both float32 Gamma draws 0)."""
    assert "population.voice." in _error("rongcheng", [f"population.voice={pair}"])


def test_traits_at_the_lowest_beta_parameters_are_finite():
    s = load_scenario("rongcheng", [f"population.{t}=[0.2, 0.2]" for t in TRAITS])
    people = build_people(s.population, 200_000, Streams(1))
    for trait in TRAITS[:-1]:  # firm_compliance is drawn for firms
        values = getattr(people, trait)
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1, trait


@pytest.mark.parametrize("key", ["false_rate_by_group", "detection_by_group"])
@pytest.mark.parametrize("bad", NOT_FINITE)
def test_group_multipliers_must_be_finite_and_in_range(key, bad):
    msg = _error("rongcheng", [f"channels.bank.{key}=[{bad}]"])
    assert f"channels.bank.{key}.0" in msg, msg


@pytest.mark.parametrize("key", ["population.group_shares", "population.group_income_factor"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-1.0", "1e308"])
def test_group_lists_must_be_finite_and_in_range(key, bad):
    msg = _error("rongcheng", [f"{key}=[{bad}, 0.5]"])
    assert f"{key}.0" in msg, msg


@pytest.mark.parametrize("condition", ["score<nan", "score>=inf", "score<-inf", "score<1e308",
                                       "rating<nan", "rating>=1e308", "score<-5", "score<1_000",
                                       "score<\uff15", "score<5e2x", "rating<"])
def test_gate_thresholds_must_be_finite_and_in_range(condition):
    msg = _error("sesame", [f"gates.flights.condition='{condition}'"])
    assert "gates.flights.condition" in msg and "threshold" in msg, msg


@pytest.mark.parametrize(("override", "key"), [
    ("run.days=true", "run.days"),
    ("behaviours.fraud.rate=false", "behaviours.fraud.rate"),
    ("run.days='30'", "run.days"),
    ("channels.bank.detection='0.5'", "channels.bank.detection"),
    ("points.deltas.fraud=true", "points.deltas.fraud"),
    ("population.compliance=[true, 2.0]", "population.compliance.0"),
    ("feedback.enabled=1", "feedback.enabled"),
    ("name=5", "name"),
    ("run.days=30.0", "run.days"),
])
def test_booleans_and_strings_are_not_numbers(override, key):
    """Regression: `true` became 1, `false` 0 and "30" 30 without a word."""
    msg = _error("rongcheng", [override])
    assert key in msg, msg


def test_an_int_is_accepted_where_a_float_is_expected():
    s = load_scenario("rongcheng", ["behaviours.fraud.rate=0", "population.compliance=[6, 2]"])
    assert s.behaviours["fraud"].rate == 0.0 and isinstance(s.behaviours["fraud"].rate, float)
    assert s.population.compliance == (6.0, 2.0)


def test_pairs_accept_toml_arrays(tmp_path):
    f = _file(tmp_path, 'extends = "rongcheng"\n[population]\ncompliance = [5.0, 3.0]\n'
                        "[court_list]\ndelist_days = [2, 4]\n")
    s = load_scenario(f)
    assert s.population.compliance == (5.0, 3.0) and s.court_list.delist_days == (2, 4)


def _number_schemas(node, where="$"):
    """Every (path, schema) of a number or integer in a JSON schema."""
    if isinstance(node, dict):
        if node.get("type") in ("number", "integer"):
            yield where, node
        for k, v in node.items():
            yield from _number_schemas(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _number_schemas(v, f"{where}[{i}]")


def test_every_number_in_the_schema_has_a_finite_range():
    """Every number, in every field, list, pair and table, has both bounds."""
    found = list(_number_schemas(Scenario.model_json_schema()))
    assert len(found) > 100
    for where, schema in found:
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        assert lo is not None and hi is not None, where
        assert math.isfinite(lo) and math.isfinite(hi), where


# --- 2. --set values -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["5\nrun.seed = 9", "5\r", "x\x1b[2J", "a\x00b", "\x7f"])
def test_set_refuses_control_characters(value):
    """Regression: a newline silently dropped the rest of the value."""
    msg = _error("rongcheng", [f"run.days={value}"])
    assert "--set" in msg and "control character" in msg and "one line" in msg, msg
    assert "\n" not in msg and "\x1b" not in msg


def test_a_newline_cannot_smuggle_a_second_key():
    assert "control character" in _error("rongcheng", ['name="x"\nrun.days = 3'])


@pytest.mark.parametrize("value", ["[0.5, 0.5", "{a = 1", '"unclosed', "'unclosed",
                                   '"x"; DROP TABLE people; --'])
def test_set_refuses_broken_toml_structures(value):
    msg = _error("rongcheng", [f"population.group_shares={value}"])
    assert "--set population.group_shares: not a TOML value" in msg, msg


@pytest.mark.parametrize(("item", "expected"), [
    ("name=my-run", "my-run"),
    ("name=<script>", "<script>"),
    ("name=x; DROP TABLE people; --", "x; DROP TABLE people; --"),
    ("gates.flights.condition=grade<=B", "grade<=B"),
])
def test_set_keeps_plain_words_as_literal_strings(item, expected):
    s = load_scenario("rongcheng", [item])
    key, _ = item.split("=", 1)
    value = s.name if key == "name" else s.gates["flights"].condition
    assert value == expected


# --- 3. safe names ---------------------------------------------------------------------

BAD_NAMES = ["x y", "1abc", "a-b", "é", 'x"; DROP TABLE people; --', "<script>", "a" * 49,
             "a.b", "a\nb", "_x"]
# (an entry to add, `{}` standing for its name, and the table it goes into)
NAME_PLACES = [
    ("gates.{}.domain='civic'", "gates"),
    ("composite.bands.{}=400", "composite.bands"),
    ("behaviours.{}.rate=0.1", "behaviours"),
    ("channels.{}.detection=0.1", "channels"),
    ("points.deltas.{}=-5", "points.deltas"),
    ("points.instant_grade.{}='C'", "points.instant_grade"),
    ("composite.history_marks.{}=-1", "composite.history_marks"),
    ("composite.behaviour_marks.{}=-1", "composite.behaviour_marks"),
    ("firm_lists.severity.{}='minor'", "firm_lists.severity"),
]


@pytest.mark.parametrize("bad", BAD_NAMES)
@pytest.mark.parametrize(("template", "table"), NAME_PLACES, ids=[p[1] for p in NAME_PLACES])
def test_user_names_in_table_keys_must_be_safe(tmp_path, template, table, bad):
    # Written as a file (quoted TOML key) so that any character can reach the key.
    dotted, value = template.split("=", 1)
    f = _file(tmp_path, f'extends = "sesame"\n{dotted.format(_toml_key(bad))} = {value}\n')
    msg = _error(f)
    assert f"{f}: {table}." in msg and "not a valid name" in msg, msg
    assert "letters, digits and '_'" in msg


def _toml_key(name: str) -> str:
    """A TOML quoted key for any string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.mark.parametrize("key", ["behaviours.fraud.channel", "threats.insider_behaviour",
                                 "threats.informant_behaviour", "threats.collusion_behaviour"])
@pytest.mark.parametrize("bad", ["x y", "<script>", "a" * 49])
def test_names_given_as_values_must_be_safe(key, bad):
    msg = _error("rongcheng", [f"{key}='{bad}'"])
    assert key in msg and "not a valid name" in msg, msg


def test_trigger_names_must_be_safe():
    msg = _error("rongcheng", ["court_list.triggers=['ok', 'x; DROP']"])
    assert "court_list.triggers.1" in msg and "not a valid name" in msg, msg


def test_every_preset_uses_safe_names_only():
    from credsim.scenario.load import preset_names

    for preset in preset_names():
        for key in _dict_keys(load_scenario(preset).model_dump(mode="json")):
            assert NAME_RE.fullmatch(key), (preset, key)


def _dict_keys(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _dict_keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from _dict_keys(v)


@pytest.mark.parametrize("key", ["name", "description", "gates.flights.provider"])
@pytest.mark.parametrize("bad", ["a\\nb", "tab\\there", "esc\\u001b[31m", "bidi\\u202eevil",
                                 "del\\u007f"])
def test_free_text_has_no_control_characters(key, bad):
    msg = _error("rongcheng", [f'{key}="{bad}"'])
    assert key in msg and "control character" in msg, msg


@pytest.mark.parametrize(("key", "limit"), [("name", NAME_MAX), ("description", DESCRIPTION_MAX),
                                            ("gates.flights.provider", NAME_MAX)])
def test_free_text_has_a_length_limit(key, limit):
    assert load_scenario("rongcheng", [f"{key}='{'x' * limit}'"])
    msg = _error("rongcheng", [f"{key}='{'x' * (limit + 1)}'"])
    assert key in msg and f"at most {limit} characters" in msg, msg


def test_free_text_may_hold_quotes_unicode_and_markup():
    text = 'Ça "marche" <b>très</b> bien; DROP TABLE people; -- 信用'
    s = load_scenario("rongcheng", [f"description='{text}'"])
    assert s.description == text


@pytest.mark.parametrize(("table", "entry"), [
    ("gates", "{domain = 'civic', condition = 'listed'}"),
    ("channels", "{detection = 0.1}"),
    ("points.deltas", "-1"),
    ("composite.bands", "500"),
])
def test_tables_keyed_by_names_have_a_size_limit(tmp_path, table, entry):
    lines = "".join(f"k{i} = {entry}\n" for i in range(ENTRIES_MAX + 1))
    msg = _error(_file(tmp_path, f"[{table}]\n{lines}"))
    assert f": {table}: " in msg and f"at most {ENTRIES_MAX} items" in msg, msg


# --- 4. colliding timeseries columns -------------------------------------------------------

GATE = "domain='civic'", "condition='listed'"


@pytest.mark.parametrize(("overrides", "needles"), [
    ([f"gates.public_shaming_wrongful.{kv}" for kv in GATE],
     ["gates.public_shaming_wrongful", "'gate_public_shaming_wrongful'", "gates.public_shaming"]),
    ([f"gates.Flights.{kv}" for kv in GATE], ["gates.Flights", "gate_Flights", "gates.flights"]),
])
def test_gate_names_whose_columns_collide_are_refused(overrides, needles):
    """Regression: gate `x_wrongful` beside gate `x` overwrote a column without a word."""
    msg = _error("rongcheng", overrides)
    for needle in needles:
        assert needle in msg, msg


@pytest.mark.parametrize(("overrides", "needles"), [
    (["composite.bands.below_lowest=400"], ["composite.bands.below_lowest", "band_below_lowest"]),
    (["composite.bands.Good=620"], ["composite.bands", "band_Good", "composite.bands.good"]),
])
def test_band_names_whose_columns_collide_are_refused(overrides, needles):
    msg = _error("sesame", overrides)
    for needle in needles:
        assert needle in msg, msg


def test_collisions_are_refused_even_while_the_system_is_off():
    msg = _error("rongcheng", ["composite.bands.below_lowest=400"])
    assert "composite.bands.below_lowest" in msg


@pytest.mark.parametrize("preset", ["sesame", "honest-shanghai", "city-brain"])
def test_the_collision_rule_knows_every_column_made_from_a_name(preset):
    """The engine's columns named after gates and bands are exactly those the rule checks,
    so the rule cannot fall behind the engine."""
    s = load_scenario(preset, people=300, days=2, seed=1)
    sim = Simulation(s)
    sim.run()
    made = {c for c in sim.rows[0] if c.startswith(("gate_", "band_"))}
    assert made, "the preset has gates or bands"
    known = {c for c, _ in named_columns(s)} | set(FIXED_NAMED_COLUMNS)
    assert made <= known, made - known
    assert {c for c, _ in named_columns(s)} <= made


# --- 5. the loader ---------------------------------------------------------------------


def test_a_file_that_is_not_utf8_names_the_file_and_the_offset(tmp_path):
    f = _file(tmp_path, b'name = "caf\xe9"\n')
    msg = _error(f)
    assert msg == f"{f}: not UTF-8 text (byte 0xe9 at offset 11); save the file as UTF-8"


def test_a_utf16_file_is_not_utf8(tmp_path):
    f = _file(tmp_path, 'name = "x"\n'.encode("utf-16"))
    assert "not UTF-8 text" in _error(f) and "offset 0" in _error(f)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    f = _file(tmp_path, b'\xef\xbb\xbfextends = "baseline"\nname = "bom"\n')
    assert load_scenario(f).name == "bom"


@pytest.mark.parametrize("text", [
    "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n",
    "x" + ".x" * 5000 + " = 1\n",
    "[" + ".".join(["t"] * 5000) + "]\n",
    "x = " + "[" * 20 + "]" * 20 + "\n",
])
def test_deep_nesting_is_refused_with_a_message(tmp_path, text):
    """Regression: 5,000 levels ended in a RecursionError traceback."""
    f = _file(tmp_path, text)
    assert _error(f) == f"{f}: nested more than {load_mod.MAX_DEPTH} levels deep"


def test_deep_nesting_through_set_is_refused():
    msg = _error("rongcheng", ["x" + ".x" * 3000 + "=1"])
    assert "nested more than" in msg
    msg = _error("rongcheng", ["x=" + "[" * 3000 + "]" * 3000])
    assert "nested more than" in msg


def test_a_huge_file_is_refused_up_front_with_its_size(tmp_path):
    f = _file(tmp_path, "# " + "x" * MAX_FILE_BYTES + "\n")
    size = Path(f).stat().st_size
    assert _error(f) == (f"{f}: file too large for a scenario ({size:,} bytes; the limit is "
                         f"{MAX_FILE_BYTES:,})")


def test_a_file_at_the_limit_is_read(tmp_path):
    head = 'extends = "baseline"\n'
    f = _file(tmp_path, head + "#" * (MAX_FILE_BYTES - len(head) - 1) + "\n")
    assert Path(f).stat().st_size == MAX_FILE_BYTES
    assert load_scenario(f).name == "baseline"


def test_thousands_of_errors_show_the_first_ones_and_a_count(tmp_path):
    f = _file(tmp_path, "".join(f"k{i} = 1\n" for i in range(20_000)))
    lines = _error(f).splitlines()
    assert len(lines) == MAX_ERRORS + 1
    assert all(ln.startswith(f"{f}: ") for ln in lines)
    assert lines[-1] == f"{f}: ... and {20_000 - MAX_ERRORS} more errors"


def test_extending_an_unknown_preset_names_the_file_and_the_key(tmp_path):
    f = _file(tmp_path, 'extends = "nosuch"\n', "my.toml")
    msg = _error(f)
    assert msg.startswith(f"{f}: extends: unknown preset 'nosuch'"), msg
    assert "baseline" in msg and "\n" not in msg


def test_extends_must_be_a_name(tmp_path):
    f = _file(tmp_path, "extends = [1, 2]\n")
    assert _error(f) == f"{f}: extends: expected a preset name, got [1, 2]"


def test_a_missing_file_is_one_line(tmp_path):
    f = tmp_path / "nosuch.toml"
    assert _error(str(f)) == f"{f}: no such scenario file"


def test_a_folder_given_as_a_file_is_one_line(tmp_path):
    d = tmp_path / "folder.toml"
    d.mkdir()
    assert _error(str(d)) == f"{d}: is a folder, not a scenario file"


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    f = _file(tmp_path, 'name = "x"\n')

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert _error(f) == f"{f}: cannot read (Permission denied)"


@pytest.mark.parametrize(("text", "key"), [
    ("run = 3\n", "run"),
    ("gates = [1]\n", "gates"),
    ('population = "x"\n', "population"),
    ("[points]\ndeltas = 5\n", "points.deltas"),
    ("[gates]\nflights = 3\n", "gates.flights"),
])
def test_keys_of_the_wrong_shape_must_be_tables(tmp_path, text, key):
    msg = _error(_file(tmp_path, text))
    assert key in msg and "must be a table" in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("data", [[1, 2], "text", 3, None])
def test_a_scenario_that_is_not_a_table(data):
    with pytest.raises(InputError, match=r"^x: a scenario must be a table"):
        validate(data, "x")


def test_messages_show_bad_keys_and_values_quoted_and_short(tmp_path):
    f = _file(tmp_path, '"evil\\nkey" = 1\n[run]\ndays = "' + "9" * 500 + '"\n')
    msg = _error(f)
    assert len(msg.splitlines()) == 2, msg
    assert "'evil\\nkey'" in msg
    assert max(len(line) for line in msg.splitlines()) < 400


# --- CLI: one message, exit code 2 ------------------------------------------------------


@pytest.mark.parametrize("content", [b"name = \"\xff\"\n", b"x = " + b"[" * 3000 + b"]" * 3000,
                                     b"#" * (MAX_FILE_BYTES + 1), b'extends = "nosuch"\n'])
def test_cli_refuses_bad_files_with_one_line(cli, one_error, tmp_path, content):
    f = _file(tmp_path, content)
    line = one_error(cli("show", f))
    assert f in line


def test_cli_refuses_a_multiline_set_value(cli, one_error):
    line = one_error(cli("show", "rongcheng", "--set", "run.days=5\nrun.seed=3"))
    assert "control character" in line


def test_cli_prints_names_that_look_like_markup(cli, one_error):
    line = one_error(cli("show", "rongcheng", "--set", 'gates.[/x]={condition="listed", '
                         'domain="civic", provider="p", effect="deny"}'))
    assert "[/x]" in line


def test_deltas_that_could_wrap_the_32_bit_score_are_refused():
    with pytest.raises(InputError, match="past the score's range"):
        load_scenario("rongcheng", ["points.deltas.fraud=-100000"], days=10_000)
    # The same delta over a short run cannot reach the limit.
    assert load_scenario("rongcheng", ["points.deltas.fraud=-100000"], days=30)
    for name in preset_names():  # every preset, at the longest run allowed
        load_scenario(name, days=10_000)
