"""lpnode's flag parsing: go-livepeer syntax, ff sources and precedence, lpnode's validation.

Each test asserts on what the operator sees: the value that results, or the
error message naming the flag (or file and line) and the fix.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from lpnode.config import (
    FIELD_TO_FLAG,
    FLAG_TO_FIELD,
    UNSUPPORTED_FLAGS,
    FlagError,
    HelpRequested,
    NodeConfig,
    VersionRequested,
    env_var_for,
    parse_duration,
    parse_node_flags,
    usage,
)

HOME = {"HOME": "/home/op"}
ORCH = ["-orchestrator", "-orchSecret", "/etc/lpnode/secret"]
TRANSCODER = ["-transcoder", "-orchAddr", "orch.example:8935", "-orchSecret", "/etc/lpnode/secret"]


def parse(*argv: str, env: dict[str, str] | None = None) -> NodeConfig:
    return parse_node_flags(list(argv), {**HOME, **(env or {})})


def error(*argv: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(FlagError) as exc:
        parse(*argv, env=env)
    return str(exc.value)


# --------------------------------------------------------------------------- command-line syntax


@pytest.mark.parametrize(
    "args",
    [["-maxSessions", "4"], ["-maxSessions=4"], ["--maxSessions", "4"], ["--maxSessions=4"]],
)
def test_value_flag_spellings(args: list[str]) -> None:
    assert parse(*ORCH, *args).max_sessions == 4


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-monitor"], True),
        (["--monitor"], True),
        (["-monitor=true"], True),
        (["-monitor=1"], True),
        (["-monitor=false"], False),
        (["-monitor=0"], False),
        ([], False),
    ],
)
def test_boolean_flag_spellings(args: list[str], expected: bool) -> None:
    assert parse(*ORCH, *args).monitor is expected


def test_boolean_flag_does_not_take_the_next_argument() -> None:
    message = error(*ORCH, "-monitor", "false")
    assert "unexpected argument 'false'" in message
    assert "write -monitor=false" in message


def test_invalid_boolean_value_names_the_flag() -> None:
    message = error(*ORCH, "-monitor=yes")
    assert "-monitor" in message and "'yes'" in message and "true or false" in message


def test_value_flag_takes_next_argument_even_if_it_starts_with_a_dash() -> None:
    # Go's flag package does this; -orchSecret's value is taken verbatim.
    assert parse("-orchestrator", "-orchSecret", "-weird").orch_secret == "-weird"


def test_double_dash_ends_flags() -> None:
    assert parse(*ORCH, "--").orchestrator


def test_arguments_after_double_dash_are_an_error() -> None:
    message = error(*ORCH, "--", "-transcoder")
    assert "unexpected argument '-transcoder'" in message and "no positional arguments" in message


def test_positional_argument_is_an_error() -> None:
    message = error("orchestrator")
    assert "unexpected argument 'orchestrator'" in message and "no positional arguments" in message


def test_positional_after_orch_secret_is_not_echoed() -> None:
    # An unquoted secret with a space splits into a value and a stray argument.
    message = error("-orchestrator", "-orchSecret", "hunter2", "tail-of-secret")
    assert "tail-of-secret" not in message and "hunter2" not in message
    assert "quote values that contain spaces" in message


def test_unknown_flag_is_named() -> None:
    assert error(*ORCH, "-foo").startswith("flag provided but not defined: -foo")


@pytest.mark.parametrize(("typo", "hint"), [("orchsecret", "-orchSecret"), ("maxSesions", "-maxSessions")])
def test_unknown_flag_suggests_the_closest_name(typo: str, hint: str) -> None:
    assert f"did you mean {hint}?" in error(*ORCH, f"-{typo}=1")


def test_unknown_flag_error_does_not_echo_its_value() -> None:
    assert "hunter2" not in error("-orchsecret=hunter2")


@pytest.mark.parametrize("name", ["maxTicketEV", "maxTotalEV", "depositMultiplier", "gateway", "broadcaster", "aiModels", "rtmpAddr"])
def test_go_livepeer_flags_lpnode_lacks_are_not_supported_yet(name: str) -> None:
    message = error(*ORCH, f"-{name}=x")
    assert f"-{name} is not supported by lpnode yet" in message
    assert "not defined" not in message


def test_unsupported_list_covers_go_livepeer_flags() -> None:
    assert {"maxTicketEV", "remoteSigner", "aiWorker", "gateway", "nodes", "netint", "j"} <= UNSUPPORTED_FLAGS
    assert not {"ethUrl", "ethPassword", "reward"} & UNSUPPORTED_FLAGS
    assert not UNSUPPORTED_FLAGS & set(FLAG_TO_FIELD)


def test_malformed_value_names_flag_and_expected_type() -> None:
    message = error(*ORCH, "-maxSessions", "abc")
    assert "-maxSessions" in message and "'abc'" in message and "whole number" in message


def test_missing_value_at_the_end() -> None:
    message = error(*ORCH, "-maxSessions")
    assert message.startswith("flag needs an argument: -maxSessions")
    assert "int|auto" in message


@pytest.mark.parametrize("arg", ["---x", "-=x"])
def test_bad_flag_syntax(arg: str) -> None:
    assert error(*ORCH, arg).startswith(f"bad flag syntax: {arg}")


def test_repeated_flag_last_wins() -> None:
    assert parse(*ORCH, "-maxSessions", "3", "-maxSessions", "5").max_sessions == 5


@pytest.mark.parametrize("arg", ["-h", "-help", "--help", "--h"])
def test_help_requested(arg: str) -> None:
    with pytest.raises(HelpRequested) as exc:
        parse(arg)
    assert str(exc.value) == usage()


def test_version_requested_before_validation() -> None:
    with pytest.raises(VersionRequested):
        parse("-version")
    assert parse(*ORCH, "-version=false").orchestrator


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize(
    ("flag", "var"),
    [("orchSecret", "LP_ORCHSECRET"), ("maxSessions", "LP_MAXSESSIONS"), ("v", "LP_V"), ("dataDir", "LP_DATADIR")],
)
def test_env_var_names_follow_ff(flag: str, var: str) -> None:
    assert env_var_for(flag) == var


def test_flags_from_environment() -> None:
    config = parse(env={"LP_ORCHESTRATOR": "true", "LP_ORCHSECRET": "/s", "LP_MAXSESSIONS": "7"})
    assert (config.orchestrator, config.orch_secret, config.max_sessions) == (True, "/s", 7)


def test_camel_case_is_not_split_with_underscores() -> None:
    config = parse("-orchestrator", "-transcoder", env={"LP_ORCH_SECRET": "/s"})
    assert config.orch_secret is None


def test_command_line_beats_environment() -> None:
    assert parse(*ORCH, "-maxSessions", "3", env={"LP_MAXSESSIONS": "9"}).max_sessions == 3


def test_empty_environment_variable_is_unset() -> None:
    assert parse(*ORCH, env={"LP_MAXSESSIONS": ""}).max_sessions == 10


def test_bad_environment_value_names_variable_and_flag() -> None:
    message = error(*ORCH, env={"LP_PIXELSPERUNIT": "many"})
    assert "-pixelsPerUnit" in message and "LP_PIXELSPERUNIT" in message and "whole number" in message


def test_environment_variable_for_unsupported_flag_is_an_error() -> None:
    message = error(*ORCH, env={"LP_MAXTICKETEV": "1"})
    assert "LP_MAXTICKETEV" in message and "-maxTicketEV" in message and "unset it" in message


def test_unrelated_lp_variables_are_ignored() -> None:
    assert parse(*ORCH, env={"LP_SOMETHING_ELSE": "1"}).orchestrator


# --------------------------------------------------------------------------- config file


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lpnode.conf"
    path.write_text(text)
    return str(path)


def test_config_file_plain_format(tmp_path: Path) -> None:
    conf = write(
        tmp_path,
        "# an orchestrator\n"
        "\n"
        "orchestrator\n"
        "  orchSecret /etc/lp node/secret  \n"
        "-maxSessions 5\n"
        "--monitor\n"
        "pricePerUnit 1200 # wei\n"
        "LP_PIXELSPERUNIT 7\r\n",
    )
    config = parse("-config", conf)
    assert config.orchestrator and config.monitor
    assert config.orch_secret == "/etc/lp node/secret"
    assert (config.max_sessions, config.price_per_unit, config.pixels_per_unit) == (5, "1200", 7)
    assert config.config_file == conf


def test_precedence_command_line_then_environment_then_file(tmp_path: Path) -> None:
    conf = write(tmp_path, "orchestrator\norchSecret /s\nmaxSessions 1\npixelsPerUnit 2\nv 4\n")
    config = parse("-config", conf, "-maxSessions", "3", env={"LP_MAXSESSIONS": "8", "LP_PIXELSPERUNIT": "9"})
    assert (config.max_sessions, config.pixels_per_unit, config.verbosity) == (3, 9, 4)


def test_config_file_from_environment(tmp_path: Path) -> None:
    conf = write(tmp_path, "orchestrator\ntranscoder\n")
    assert parse(env={"LP_CONFIG": conf}).role == "orchestrator+transcoder"


def test_config_file_does_not_check_values_it_cannot_apply(tmp_path: Path) -> None:
    # As ff: a flag already given on the command line is skipped, not re-parsed.
    conf = write(tmp_path, "maxSessions lots\n")
    assert parse(*ORCH, "-maxSessions", "2", "-config", conf).max_sessions == 2


def test_config_file_repeated_flag_last_wins(tmp_path: Path) -> None:
    assert parse(*ORCH, "-config", write(tmp_path, "v 4\nv 5\n")).verbosity == 5


def test_config_file_unknown_flag_names_file_and_line(tmp_path: Path) -> None:
    conf = write(tmp_path, "orchestrator\n# comment\nmaxSesions 4\n")
    message = error("-config", conf)
    assert message.startswith(f"{conf}:3: flag provided but not defined: -maxSesions")
    assert "did you mean -maxSessions?" in message


def test_config_file_unsupported_flag(tmp_path: Path) -> None:
    message = error(*ORCH, "-config", write(tmp_path, "\nmaxTicketEV 1\n"))
    assert ":2: -maxTicketEV is not supported by lpnode yet" in message


def test_config_file_bad_value_names_file_line_and_flag(tmp_path: Path) -> None:
    conf = write(tmp_path, "maxSessions many\n")
    message = error(*ORCH, "-config", conf)
    assert f"in {conf}:1" in message and "-maxSessions" in message and "'many'" in message


def test_config_file_value_flag_alone_on_a_line_is_an_error(tmp_path: Path) -> None:
    # ff would silently set it to the string "true".
    message = error(*ORCH, "-config", write(tmp_path, "serviceAddr\n"))
    assert ":1: -serviceAddr needs a value" in message


def test_missing_config_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.conf")
    message = error(*ORCH, "-config", missing)
    assert message.startswith(f"-config {missing}: cannot read")


def test_config_file_cannot_name_another(tmp_path: Path) -> None:
    assert "cannot name another config file" in error(*ORCH, "-config", write(tmp_path, "config /x\n"))


# --------------------------------------------------------------------------- defaults and values


def test_orchestrator_defaults() -> None:
    config = parse(*ORCH)
    assert config.http_addr == "0.0.0.0:8935"
    assert config.cli_addr == "127.0.0.1:7935"
    assert config.service_addr is None and config.service_uri is None
    assert config.max_sessions == 10
    assert (config.price_per_unit, config.pixels_per_unit) == ("0", 1)
    assert config.datadir == "/home/op/.lpData/offchain"
    assert config.verbosity == 3
    assert config.orch_secret_grace == timedelta(minutes=10)
    assert (config.network, config.nvidia, config.monitor) == ("offchain", "", False)
    assert (config.admin_token_file, config.tls_cert_file, config.tls_key_file) == (None, None, None)


def test_transcoder_defaults() -> None:
    config = parse(*TRANSCODER)
    assert config.cli_addr == "127.0.0.1:6935"
    assert config.http_addr is None
    assert config.orch_addr == ("orch.example:8935",)


def test_orchestrator_transcoder_uses_orchestrator_cli_port() -> None:
    assert parse("-orchestrator", "-transcoder").cli_addr == "127.0.0.1:7935"


@pytest.mark.parametrize(
    ("args", "http_addr"),
    [
        (["-serviceAddr", "203.0.113.7:9000"], "0.0.0.0:9000"),
        (["-serviceAddr", "https://node.example"], "0.0.0.0:8935"),
        (["-httpAddr", ":9999"], "0.0.0.0:9999"),
        (["-httpAddr", "10.0.0.1"], "10.0.0.1:8935"),
        (["-httpAddr", "[::]:8935"], "[::]:8935"),
    ],
)
def test_http_addr_defaults(args: list[str], http_addr: str) -> None:
    assert parse(*ORCH, *args).http_addr == http_addr


def test_cli_addr_fills_missing_host_or_port() -> None:
    assert parse(*ORCH, "-cliAddr", ":7000").cli_addr == "127.0.0.1:7000"
    assert parse(*ORCH, "-cliAddr", "0.0.0.0").cli_addr == "0.0.0.0:7935"


def test_service_uri() -> None:
    assert parse(*ORCH, "-serviceAddr", "node.example:8935").service_uri == "https://node.example:8935"


@pytest.mark.parametrize(("value", "expected"), [("a b:1", "host[:port]"), ("h:0", "port"), ("none", "-nodes")])
def test_bad_service_addr(value: str, expected: str) -> None:
    message = error(*ORCH, "-serviceAddr", value)
    assert "-serviceAddr" in message and expected in message


def test_orch_addr_list() -> None:
    config = parse("-transcoder", "-orchSecret", "/s", "-orchAddr", "a, b:9, https://c:10/, [::1]:11,")
    assert config.orch_addr == ("a:8935", "b:9", "c:10", "[::1]:11")


@pytest.mark.parametrize("value", ["a:99999", ",", "a:b"])
def test_bad_orch_addr(value: str) -> None:
    assert "-orchAddr" in error("-transcoder", "-orchSecret", "/s", "-orchAddr", value)


def test_datadir_spellings_and_home_expansion() -> None:
    assert parse(*ORCH, "-dataDir", "~/lp").datadir == "/home/op/lp"
    assert parse(*ORCH, "-datadir", "/var/lib/lp").datadir == "/var/lib/lp"
    assert parse(*ORCH, env={"LP_DATADIR": "/srv/lp"}).datadir == "/srv/lp"


def test_admin_token_file_expands_home() -> None:
    assert parse(*ORCH, "-adminTokenFile", "~/token").admin_token_file == "/home/op/token"


@pytest.mark.parametrize(("value", "expected"), [("all", "all"), ("0,1", "0,1"), ("0, 1", "0,1"), ("", "")])
def test_nvidia(value: str, expected: str) -> None:
    assert parse(*ORCH, "-nvidia", value).nvidia == expected


def test_bad_nvidia() -> None:
    message = error(*ORCH, "-nvidia", "gpu0")
    assert "-nvidia" in message and "GPU ids" in message


def test_max_sessions_auto_for_orchestrator_with_remote_transcoders() -> None:
    assert parse(*ORCH, "-maxSessions", "auto").max_sessions is None


def test_max_sessions_auto_rejected_with_local_transcoder() -> None:
    message = error("-orchestrator", "-transcoder", "-maxSessions", "auto")
    assert "-maxSessions auto" in message and "give a number" in message


def test_max_sessions_auto_rejected_for_transcoder() -> None:
    message = error(*TRANSCODER, "-maxSessions", "auto")
    assert "-maxSessions auto" in message and "a transcoder needs a number" in message


@pytest.mark.parametrize("value", ["0", "-2"])
def test_max_sessions_at_least_one(value: str) -> None:
    assert "-maxSessions must be at least 1" in error(*ORCH, "-maxSessions", value)


def test_price_per_unit_in_wei_eth_or_a_currency() -> None:
    assert parse(*ORCH, "-pricePerUnit", "1000").pricing.price(None) == 1000
    assert parse(*ORCH, "-pricePerUnit", "1.5", "-pixelsPerUnit", "3").pricing.price(None) == Fraction(1, 2)
    assert parse(*ORCH, "-pricePerUnit", "0.000000001ETH").pricing.price(None) == 10**9
    chain = ["-network", "lpfleet-local", "-ethController", "0x" + "11" * 20, "-ethUrl", "http://127.0.0.1:8545"]
    assert parse(*ORCH, *chain, "-pricePerUnit", "0.5USD", "-priceFeedAddr", "0x" + "22" * 20).pricing.needs_feed
    assert "needs -priceFeedAddr" in error(*ORCH, *chain, "-pricePerUnit", "0.5USD")


def test_price_per_gateway_is_checked_at_start(tmp_path: Path) -> None:
    chain = ["-network", "lpfleet-local", "-ethController", "0x" + "11" * 20, "-ethUrl", "http://127.0.0.1:8545"]
    prices = write(tmp_path, '{"gateways": [{"ethaddress": "0x' + "ab" * 20 + '", "priceperunit": 5, "pixelsperunit": 2}]}')
    cfg = parse(*ORCH, *chain, "-pricePerGateway", prices)
    assert cfg.pricing.price(bytes.fromhex("ab" * 20)) == Fraction(5, 2)
    assert "JSON numbers" in error(*ORCH, *chain, "-pricePerGateway",
                                   '{"gateways": [{"ethaddress": "0x' + "ab" * 20 + '", "priceperunit": "5"}]}')
    assert "needs an on-chain -network" in error(*ORCH, "-pricePerGateway", prices)


@pytest.mark.parametrize(("value", "expected"), [("0.5USD", "on-chain price feed"), ("1.5.1", "not a price"),
                                                 ("-1", "not a price")])
def test_bad_price_per_unit(value: str, expected: str) -> None:
    message = error(*ORCH, f"-pricePerUnit={value}")
    assert "-pricePerUnit" in message and expected in message


def test_pixels_per_unit_must_be_positive() -> None:
    assert "-pixelsPerUnit must be greater than 0" in error(*ORCH, "-pixelsPerUnit", "0")


def test_on_chain_network_needs_an_eth_url() -> None:
    message = error(*ORCH, "-network", "arbitrum-one-mainnet")
    assert "-ethUrl" in message and "arbitrum-one-mainnet" in message


def test_an_unknown_network_needs_its_controller() -> None:
    message = error(*ORCH, "-network", "devnet", "-ethUrl", "http://127.0.0.1:8545")
    assert "-ethController" in message and "devnet" in message


def test_chain_flags_without_a_chain_say_so() -> None:
    message = error(*ORCH, "-ethUrl", "http://127.0.0.1:8545")
    assert "-ethUrl needs an on-chain -network" in message


def test_arbitrum_uses_its_controller_and_datadir_keystore() -> None:
    cfg = parse(*ORCH, "-network", "arbitrum-one-mainnet", "-ethUrl", "https://arb1.example/KEY",
                "-dataDir", "/var/lib/lpnode")
    assert cfg.controller == "0xD8E8328501E9645d16Cf49539efC04f734606ee4"
    assert cfg.keystore_path == "/var/lib/lpnode/keystore" and cfg.reward is None
    assert "KEY" not in repr(cfg)


def test_reward_alone_is_the_reward_service() -> None:
    cfg = parse("-reward", "-network", "devnet", "-ethController", "0x" + "ab" * 20,
                "-ethUrl", "http://127.0.0.1:8545", "-ethOrchAddr", "0x" + "cd" * 20)
    assert cfg.role == "reward" and cfg.reward_only and cfg.cli_addr == "127.0.0.1:7935"
    assert cfg.eth_orch_addr == "0x" + "cd" * 20


def test_a_remote_transcoder_holds_no_chain_account() -> None:
    message = error("-transcoder", "-orchAddr", "o:8935", "-orchSecret", "s", "-network", "arbitrum-one-mainnet",
                    "-ethUrl", "http://127.0.0.1:8545")
    assert "remote transcoder holds no chain account" in message


def test_a_bad_address_names_the_flag() -> None:
    message = error(*ORCH, "-ethOrchAddr", "0x1234")
    assert "-ethOrchAddr" in message and "not an Ethereum address" in message


def test_orch_secret_grace() -> None:
    assert parse(*ORCH, "-orchSecretGrace", "1h30m").orch_secret_grace == timedelta(hours=1, minutes=30)
    assert "-orchSecretGrace must not be negative" in error(*ORCH, "-orchSecretGrace", "-5m")
    assert "duration like" in error(*ORCH, "-orchSecretGrace", "10")


def test_verbosity() -> None:
    assert parse(*ORCH, "-v", "6").verbosity == 6
    assert "-v must be 0 or more" in error(*ORCH, "-v", "-1")


def test_tls_files_come_in_pairs() -> None:
    config = parse(*ORCH, "-tlsCertFile", "/c.pem", "-tlsKeyFile", "/k.pem")
    assert (config.tls_cert_file, config.tls_key_file) == ("/c.pem", "/k.pem")
    assert "-tlsCertFile needs -tlsKeyFile" in error(*ORCH, "-tlsCertFile", "/c.pem")
    assert "-tlsKeyFile needs -tlsCertFile" in error(*ORCH, "-tlsKeyFile", "/k.pem")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("10m", timedelta(minutes=10)),
        ("1.5s", timedelta(seconds=1.5)),
        ("300ms", timedelta(milliseconds=300)),
        ("2h45m30s", timedelta(hours=2, minutes=45, seconds=30)),
        ("1µs", timedelta(microseconds=1)),
        ("-1m", timedelta(minutes=-1)),
    ],
)
def test_go_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "m", "1x", "1m-2s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --------------------------------------------------------------------------- roles


def test_a_role_is_required() -> None:
    message = error("-monitor")
    assert "-orchestrator" in message and "-transcoder" in message


def test_transcoder_needs_orch_addr() -> None:
    assert "set -orchAddr" in error("-transcoder", "-orchSecret", "/s")


def test_transcoder_needs_orch_secret() -> None:
    assert "needs -orchSecret" in error("-transcoder", "-orchAddr", "o:8935")


def test_orchestrator_without_transcoder_needs_orch_secret() -> None:
    message = error("-orchestrator")
    assert "needs -orchSecret" in message and "-transcoder" in message


def test_orchestrator_with_local_transcoder_needs_no_secret() -> None:
    assert parse("-orchestrator", "-transcoder").orch_secret is None


@pytest.mark.parametrize(
    ("args", "role"),
    [
        (ORCH, "orchestrator"),
        (TRANSCODER, "transcoder"),
        (["-orchestrator", "-transcoder"], "orchestrator+transcoder"),
    ],
)
def test_role(args: list[str], role: str) -> None:
    assert parse(*args).role == role


def test_node_config_validates_when_built_directly() -> None:
    with pytest.raises(FlagError, match="-orchAddr"):
        NodeConfig(transcoder=True, orch_secret="/s")
    assert NodeConfig(orchestrator=True, transcoder=True).http_addr == "0.0.0.0:8935"


# --------------------------------------------------------------------------- secrecy, mapping, help


def test_repr_hides_the_secret() -> None:
    config = parse("-orchestrator", "-orchSecret", "hunter2")
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)


def test_every_field_maps_to_a_flag() -> None:
    fields = {f.name for f in dataclasses.fields(NodeConfig)}
    assert set(FIELD_TO_FLAG) == fields
    assert FLAG_TO_FIELD["orchSecret"] == "orch_secret"
    assert FLAG_TO_FIELD["datadir"] == FLAG_TO_FIELD["dataDir"] == "datadir"
    assert FIELD_TO_FLAG["verbosity"] == "v"


def test_usage_lists_every_flag() -> None:
    text = usage()
    for flag in FIELD_TO_FLAG.values():
        assert f"  -{flag}" in text
    assert "-version" in text and "-help" in text


def test_operator_docs_cover_every_flag() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "flags.md").read_text()
    for flag in [*FLAG_TO_FIELD, *UNSUPPORTED_FLAGS, "version", "help"]:
        assert f"`-{flag}`" in docs, flag


def test_transcoder_name_is_checked_for_use_as_a_label() -> None:
    cfg = parse_node_flags(["-transcoder", "-orchAddr", "10.0.0.1:8935", "-orchSecret", "s",
                            "-transcoderName", "gpu-host-3:7935"], {})
    assert cfg.transcoder_name == "gpu-host-3:7935"
    with pytest.raises(FlagError, match="-transcoderName"):
        parse_node_flags(["-transcoder", "-transcoderName", 'x"} 1'], {})


def test_redeemer_runs_alone_on_chain_for_one_orchestrator() -> None:
    chain = ["-network", "lpfleet-local", "-ethController", "0x" + "11" * 20, "-ethUrl", "http://127.0.0.1:8545"]
    cfg = parse("-redeemer", *chain, "-ethOrchAddr", "0x" + "33" * 20, "-redeemerAllowFrom", "10.0.0.5, 10.0.0.6")
    assert (cfg.role, cfg.http_addr, cfg.cli_addr) == ("redeemer", "127.0.0.1:8935", "127.0.0.1:7935")
    assert cfg.redeemer_allow_from == ("10.0.0.5", "10.0.0.6")
    assert "needs -ethOrchAddr" in error("-redeemer", *chain)
    assert "runs alone" in error("-redeemer", "-orchestrator", *chain, "-ethOrchAddr", "0x" + "33" * 20)
    assert "on-chain -network" in error("-redeemer", "-ethOrchAddr", "0x" + "33" * 20)
    assert "-redeemerAllowFrom" in error("-redeemer", *chain, "-ethOrchAddr", "0x" + "33" * 20,
                                         "-redeemerAllowFrom", "not-an-ip")
    orch = parse(*ORCH, *chain, "-redeemerAddr", "redeemer.lan")
    assert orch.redeemer_addr == "redeemer.lan:8935"
    assert "on-chain orchestrator" in error(*ORCH, "-redeemerAddr", "redeemer.lan")
