"""The settings of ``serve`` (``runtime/config.py``): a refusal names the key, where its value
came from (the file, the variable), the value and what is taken; a name in the file that is no
setting is refused; an age that decides what is deleted needs its unit."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronflow_actors.errors import ConfigurationError
from cronflow_actors.runtime.config import SECONDS, deletion_age, load_config


def refusal(config: Path, text: str) -> str:
    config.write_text(text)
    with pytest.raises(ConfigurationError) as refused:
        load_config(config, environ={})
    return str(refused.value)


def test_an_unknown_name_in_the_file_is_refused_with_the_file_and_the_settings(
    tmp_path: Path,
) -> None:
    config = tmp_path / "cronflow.toml"
    said = refusal(config, "prot = 8743\n")
    assert "setting 'prot'" in said
    assert f"'prot' in {config} is unknown (did you mean 'port'?)" in said
    assert "the settings are allowed_hosts, app, audit," in said
    assert "None" not in said
    both = refusal(config, "prot = 1\ncolour = 'blue'\n")
    assert f"'colour', 'prot' in {config} are unknown" in both  # every one, at once


@pytest.mark.parametrize(
    ("text", "key", "value", "expected"),
    [
        ("port = 'x'\n", "port", "'x'", "a whole number"),
        ("audit = 'maybe'\n", "audit", "'maybe'", "true or false"),
        ("drain_timeout = 'soon'\n", "drain_timeout", "'soon'", "a number (of seconds)"),
        ("max_active_runs = 'x'\n", "max_active_runs", "'x'", "a whole number"),
        ("log_level = 'loud'\n", "log_level", "'loud'", "one of critical, error, warning"),
        ("port = 70000\n", "port", "70000", "one that passes this check: port must be 0-65535"),
        ("[queues]\nemails = 'five'\n", "queues.emails", "'five'", "a whole number of runs"),
        ("retention = 5\n", "retention", "5", "a duration with its unit, as a string"),
    ],
)
def test_a_wrong_value_in_the_file_names_the_key_the_file_the_value_and_what_is_taken(
    tmp_path: Path, text: str, key: str, value: str, expected: str
) -> None:
    config = tmp_path / "cronflow.toml"
    said = refusal(config, text)
    assert f"setting '{key}' has the value {value}; expected {expected}" in said
    assert f"(it came from {config})" in said


def test_a_bad_token_entry_is_named_without_showing_the_token(tmp_path: Path) -> None:
    config = tmp_path / "cronflow.toml"
    said = refusal(config, '[tokens.t-secret-3f9a]\nid = "ada"\nscope = ["a:b"]\n')
    assert "tokens entry 1 (id 'ada')" in said
    assert "unknown field `scope`" in said
    assert str(config) in said
    assert "t-secret-3f9a" not in said
    assert "t-secret-3f9a" not in refusal(config, 'tokens = "t-secret-3f9a"\n')
    said = refusal(config, '[tokens.t-secret-3f9a]\nid = "ada"\nread_only = "yes"\n')
    assert "read_only (true or false): read_only: Expected `bool`, got `str`" in said  # (h41)


@pytest.mark.parametrize("given", ["7", "5", "0.5", " 30 "])
def test_a_retention_without_a_unit_is_refused_from_the_file_and_the_environment(
    tmp_path: Path, given: str
) -> None:
    config = tmp_path / "cronflow.toml"
    said = refusal(config, f'retention = "{given}"\n')
    assert f"retention {given!r} has no unit" in said
    assert "'7d', '12h', '30m' or '90s'" in said
    assert str(config) in said
    with pytest.raises(ConfigurationError, match="has no unit") as refused:
        load_config(None, environ={"CRONFLOW_RETENTION": given})
    assert "environment variable CRONFLOW_RETENTION" in str(refused.value)
    with pytest.raises(ConfigurationError, match="has no unit"):
        load_config(None, environ={}, overrides={"retention": given})


def test_an_age_with_its_unit_or_zero_is_taken() -> None:
    assert deletion_age("7d", "retention") == 7 * 86400
    assert deletion_age("90s", "retention") == 90
    assert deletion_age("0", "retention") == 0  # zero is zero in any unit (keep forever)
    assert deletion_age(0, "retention") == 0
    assert load_config(None, environ={"CRONFLOW_RETENTION": "12h"}).retention == "12h"
    with pytest.raises(ValueError, match="--older-than 7 has no unit"):
        deletion_age(7, "--older-than")
    with pytest.raises(ValueError, match="'7 days' is not a duration with its unit"):
        deletion_age("7 days", "--older-than")


def test_allowed_hosts_come_from_the_flag_the_file_or_the_environment(tmp_path: Path) -> None:
    from cronflow_actors.cli.main import _settings, build_parser

    args = build_parser().parse_args(
        ["serve", "--allowed-host", "ops.lan", "--allowed-host", "api.example.com"]
    )
    assert _settings(args).allowed_hosts == ["ops.lan", "api.example.com"]
    config = tmp_path / "c.toml"
    config.write_text('allowed_hosts = ["ops.lan"]\n')
    assert load_config(config, environ={}).allowed_hosts == ["ops.lan"]
    from_env = load_config(None, environ={"CRONFLOW_ALLOWED_HOSTS": "a.lan,b.lan"})
    assert from_env.allowed_hosts == ["a.lan", "b.lan"]
    assert load_config(None, environ={}).allowed_hosts == []
    assert load_config(None, environ={"CRONFLOW_ALLOWED_HOSTS": ""}).allowed_hosts == []
    # a string in the file is refused saying what is taken (it said "a valid value": h41 F10)
    config.write_text('allowed_hosts = "ops.lan"\n')
    with pytest.raises(ConfigurationError) as refused:
        load_config(config, environ={})
    assert 'expected a list of host names, as in allowed_hosts = ["api.example.com"]' in str(
        refused.value
    )


def test_an_empty_db_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('db = ""\n')
    with pytest.raises(ConfigurationError, match=r"db must name a database.*came from .*c\.toml"):
        load_config(config, environ={})
    with pytest.raises(ConfigurationError, match="environment variable CRONFLOW_DB"):
        load_config(None, environ={"CRONFLOW_DB": " "})


def test_a_host_with_a_port_in_it_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    """It failed only as the server could not listen, blamed on --host (ops h41 F10)."""
    config = tmp_path / "c.toml"
    config.write_text('host = "localhost:80"\n')
    with pytest.raises(ConfigurationError) as refused:
        load_config(config, environ={})
    said = str(refused.value)
    assert "give the host alone ('localhost') and the port as port (80)" in said
    assert f"came from {config}" in said
    for address in ("::1", "[::1]", "0.0.0.0", "example.lan"):  # an IPv6 address's colons
        assert load_config(None, environ={"CRONFLOW_HOST": address}).host == address


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_setting_in_seconds_is_a_finite_number(name: str, value: str) -> None:
    """``nan`` passed "> 0" and ``inf`` never ends (a lease of inf would never be free again):
    both are refused by name, from a flag or the environment."""
    for given in ({"overrides": {name: value}}, {"environ": {f"CRONFLOW_{name.upper()}": value}}):
        with pytest.raises(ConfigurationError) as refused:
            load_config(None, **{"environ": {}, **given})  # type: ignore[arg-type]
        said = str(refused.value)
        assert f"setting '{name}' has the value '{value}'" in said
        assert "a finite number of seconds > 0" in said


def test_a_misspelt_variable_or_a_table_in_the_environment_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_config(None, environ={"CRONFLOW_DRAIN_TIMOUT": "5"})
    assert "did you mean CRONFLOW_DRAIN_TIMEOUT?" in str(refused.value)
    with pytest.raises(ConfigurationError) as refused:  # a misspelt secret is not shown
        load_config(None, environ={"CRONFLOW_METRICS_TOKN": "s3cret-value"})
    assert "did you mean CRONFLOW_METRICS_TOKEN?" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    with pytest.raises(ConfigurationError) as refused:
        load_config(None, environ={"CRONFLOW_TOKENS": "t-secret"})
    assert "t-secret" not in str(refused.value)
    assert "[tokens] table" in str(refused.value)
    # a short name one letter off was passed over (its ratio under the cutoff): the newcomer's
    # L3, where CRONFLOW_ULR sent the CLI to the default server without a word
    for typed, meant in [("PROT", "PORT"), ("DBB", "DB"), ("ULR", "URL"), ("HOTS", "HOST")]:
        with pytest.raises(ConfigurationError) as refused:
            load_config(None, environ={f"CRONFLOW_{typed}": "x"})
        assert f"did you mean CRONFLOW_{meant}? (no such setting)" in str(refused.value)
    # the database's names other tools use: serve ran on a new empty file (devx h43 F4)
    for typed in ("DATABASE_URL", "DATABASE", "DB_PATH"):
        with pytest.raises(ConfigurationError) as refused:
            load_config(None, environ={f"CRONFLOW_{typed}": "/srv/runs.db"})
        assert "did you mean CRONFLOW_DB? (no such setting)" in str(refused.value)
        assert "/srv/runs.db" not in str(refused.value)
    # another tool's variable (the compiled build's) is none of ours, and left alone; so is a
    # short name of the user's that is no setting's near miss
    environ = {"CRONFLOW_ACTORS_COMPILE": "1", "CRONFLOW_ENV": "prod", "CRONFLOW_HOME": "/x"}
    environ |= {"CRONFLOW_API": "x", "CRONFLOW_URI": "x", "CRONFLOW_DB1": "x"}  # the review's
    assert load_config(None, environ=environ).drain_timeout == 30.0


def test_a_config_file_that_cannot_be_read_is_refused_with_why(tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"port = 1\n\xff\n")
    for path, why in ((tmp_path, "Is a directory"), (binary, "it is not UTF-8 text")):
        with pytest.raises(ConfigurationError) as refused:
            load_config(path, environ={})
        assert f"a TOML file this user can read ({why})" in str(refused.value)


@pytest.mark.parametrize(
    "text",
    [
        'tokn = "ops-secret-1234"\n',
        'metrics_tokn = "ops-secret-1234"\n',
        "token = 1234\n",
        'api_key = "ops-secret-1234"\n',  # (review h43 F4)
        'password = "ops-secret-1234"\n',
    ],
)
def test_a_misspelt_or_mistyped_token_in_the_file_is_not_shown(tmp_path: Path, text: str) -> None:
    """Refusals go to terminals and CI logs: the secret was printed (devx h43 F5)."""
    said = refusal(tmp_path / "cronflow.toml", text)
    assert "has the value '(hidden)'" in said
    assert "ops-secret" not in said
    assert "1234" not in said


def test_each_limit_is_refused_by_its_own_name(tmp_path: Path) -> None:
    """max_connections = 0 was refused as max_json_depth's None (devx h43 F13)."""
    config = tmp_path / "cronflow.toml"
    said = refusal(config, "max_connections = 0\n")
    assert "setting 'max_connections' has the value 0" in said
    assert "max_connections must be >= 1, got 0" in said
    assert f"(it came from {config})" in said


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.org", False)],
)  # fmt: skip
def test_serve_warns_of_a_host_others_reach_with_no_tokens(host: str, loopback: bool) -> None:
    """Whether serve's warning that every route is open applies (devx h43 F7)."""
    from cronflow_actors.runtime.addresses import is_loopback

    assert is_loopback(host) is loopback


def test_a_url_python_cannot_split_is_refused_under_its_name() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_config(None, environ={"CRONFLOW_URL": "http://[::1"})
    assert "setting 'url' has the value 'http://[::1'" in str(refused.value)
    assert "Invalid IPv6 URL" in str(refused.value)


@pytest.mark.parametrize("value", ["0.001", "1e9", "86401"])
def test_a_lease_is_half_a_second_to_a_day(value: str, tmp_path: Path) -> None:
    """0.001 was taken and renewed at 56% of a core while idle; 1e9 kept a crashed server's
    database owned for decades (hostile h23): refused from a flag and from Python alike."""
    import cronflow_actors as cf

    with pytest.raises(ConfigurationError) as refused:
        load_config(None, environ={}, overrides={"lease_seconds": value})
    assert "setting 'lease_seconds'" in str(refused.value)
    assert "from 0.5 to 86,400 (a day)" in str(refused.value)
    if float(value) < 0.5:  # Python's own: no bound above (a test's clock may leap years)
        with pytest.raises(ConfigurationError, match=r"seconds from 0\.5"):
            cf.Runtime(db=tmp_path / "lease.db", lease_seconds=float(value))
    assert load_config(None, environ={}, overrides={"lease_seconds": "0.5"}).lease_seconds == 0.5


@pytest.mark.parametrize(
    ("text", "named", "expected"),
    [
        ('[tokens.""]\nid = "ops"\n', "tokens entry 1 (id 'ops')", "as its key a token a client"),
        ('[tokens." "]\nid = "ops"\n', "tokens entry 1 (id 'ops')", "is empty or blank: is a"),
        # a space is said as one, not asked as an unset variable (hostile h45 F10)
        ('[tokens."t 3f9a"]\nid = "ops"\n', "tokens entry 1 (id 'ops')", "holds a space, or"),
        ('[tokens.t-3f9a]\nid = ""\n', "tokens entry 1 (id '')", "its id must name someone"),
        ('metrics_token = " "\n', "metrics_token", "metrics_token must be a token a client"),
        ('metrics_token = ""\n', "metrics_token", "empty or blank"),  # (the README's)
    ],
)
def test_a_token_no_client_can_send_or_that_names_nobody_is_refused(
    tmp_path: Path, text: str, named: str, expected: str
) -> None:
    """A blank token (a template's unset variable) locked every route, one with a space locked
    /metrics, and an empty id acted as principal "": all taken without a word (hostile h39 F2)."""
    said = refusal(tmp_path / "cronflow.toml", text)
    assert named in said
    assert expected in said
    assert "t 3f9a" not in said  # (a token is never shown)


@pytest.mark.parametrize("token", ["s3cr3t!", "p@ss:word#1", "abc%20def", "tok*en", "YWJj=="])
def test_a_token_of_visible_characters_is_taken_as_before(tmp_path: Path, token: str) -> None:
    """Tokens with characters outside RFC 6750's b64token were refused at the start, where
    they had worked (review h39 F4): any visible ASCII character is taken."""
    config = tmp_path / "cronflow.toml"
    config.write_text(f'[tokens."{token}"]\nid = "ops"\n')
    assert load_config(config, environ={}).principals()[token].id == "ops"


def test_a_short_token_is_taken_with_a_warning_that_names_its_holder(tmp_path: Path) -> None:
    """A one-character token was taken without a word (hostile h39 F2, the rest): it still is
    taken, and ``serve`` warns of it by its principal, never by the token."""
    config = tmp_path / "cronflow.toml"
    long = "k" * 16
    config.write_text(
        f'metrics_token = "m"\n[tokens."x"]\nid = "ops"\n[tokens."{long}"]\nid = "ci"\n'
    )
    settings = load_config(config, environ={})
    assert settings.principals()["x"].id == "ops"
    warnings = settings.short_tokens()
    assert [w.split(" has ")[0] for w in warnings] == ["the token of 'ops'", "metrics_token"]
    assert all("token_urlsafe(32)" in w for w in warnings)


def test_paths_in_the_file_are_read_from_its_folder(tmp_path: Path) -> None:
    """``db = "data.db"`` and ``app = "refunds.py"`` were read from the current folder: a
    service started elsewhere ran on a new empty database (devx h43 F12)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "serve.toml").write_text('db = "data.db"\napp = "flows/refunds.py"\n')
    settings = load_config(etc / "serve.toml", environ={})
    assert (settings.db, settings.app) == (str(etc / "data.db"), str(etc / "flows/refunds.py"))
    kept = [
        ('db = "postgresql://u@127.0.0.1/x"', "postgresql://u@127.0.0.1/x"),
        ('db = ":memory:"', ":memory:"),
        ('db = "/var/lib/cronflow/runs.db"', "/var/lib/cronflow/runs.db"),
        ('app = "billing.flows:workflows"', "billing.flows:workflows"),
    ]
    for line, value in kept:
        (etc / "serve.toml").write_text(line + "\n")
        taken = load_config(etc / "serve.toml", environ={})
        assert value in (taken.db, taken.app)
    given = load_config(etc / "serve.toml", environ={"CRONFLOW_DB": "here.db"})
    assert given.db == "here.db"  # the environment's and a flag's: from the current folder


def test_an_empty_app_variable_and_a_config_variable_are_refused(tmp_path: Path) -> None:
    """An empty CRONFLOW_APP (a template's unset variable) served the bundled example on the
    app's database, and CRONFLOW_CONFIG was ignored, serving the example on a new file
    (retest h44 N8, N9); "~/app.py" in the file was refused where "~/x.db" was read."""
    with pytest.raises(ConfigurationError, match="app must name the app") as empty:
        load_config(None, environ={"CRONFLOW_APP": ""})
    assert "(it came from environment variable CRONFLOW_APP)" in str(empty.value)
    with pytest.raises(ConfigurationError, match="given with --config FILE"):
        load_config(None, environ={"CRONFLOW_CONFIG": "serve.toml"})
    (tmp_path / "serve.toml").write_text('app = "~/flows/app.py"\n')
    assert load_config(tmp_path / "serve.toml", environ={}).app == str(
        Path("~/flows/app.py").expanduser()
    )


def test_a_home_of_no_user_in_the_file_is_refused_naming_it(tmp_path: Path) -> None:
    """``app = "~nosuchuser/app.py"`` ended in a traceback (review2 h44 F6)."""
    config = tmp_path / "serve.toml"
    config.write_text('app = "~nosuchuser-h44/app.py"\n')
    with pytest.raises(ConfigurationError, match="a path whose ~user is a user of this machine"):
        load_config(config, environ={})
