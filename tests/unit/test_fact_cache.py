"""roles/fact_cache.py: a fact is asked once per host until something changes on that host."""

from __future__ import annotations

from roles import fact_cache


class Facts:
    pass


class OtherFacts:
    pass


class FakeHost:
    """pyinfra's Host as the cache sees it: facts answered by counting, commands recorded."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []
        self.current_op_global_arguments: dict | None = None

    def get_fact(self, cls, *args, **kwargs):
        self.asked.append((cls.__name__, args, kwargs))
        # A fact's own command goes through run_shell_command too: it must not forget anything.
        self.run_shell_command("the fact's command")
        return len(self.asked)

    def run_shell_command(self, *args, **kwargs):
        return True, None

    def put_file(self, *args, **kwargs):
        return True

    def get_file(self, *args, **kwargs):
        return True


fact_cache.install(FakeHost, learn=False)


def test_the_same_question_is_asked_once():
    host = FakeHost()
    assert host.get_fact(Facts, path="/etc/a") == host.get_fact(Facts, path="/etc/a") == 1
    assert host.get_fact(Facts, path="/etc/b") == 2
    assert host.get_fact(OtherFacts, path="/etc/a") == 3
    assert len(host.asked) == 3


def test_a_command_or_an_upload_forgets_the_answers():
    host = FakeHost()
    host.get_fact(Facts, path="/etc/a")
    host.run_shell_command("apt-get install -y x")
    host.get_fact(Facts, path="/etc/a")
    host.put_file("local", "/etc/a")
    host.get_fact(Facts, path="/etc/a")
    assert len(host.asked) == 3


def test_sudo_is_part_of_the_question():
    host = FakeHost()
    host.get_fact(Facts, path="/root/x")
    host.current_op_global_arguments = {"_sudo": True, "_if": lambda: True}
    host.get_fact(Facts, path="/root/x")
    host.current_op_global_arguments = {"_sudo": True, "_if": lambda: False}
    host.get_fact(Facts, path="/root/x")   # other non-login arguments do not matter
    assert len(host.asked) == 2


def test_each_host_has_its_own_answers():
    one, two = FakeHost(), FakeHost()
    one.get_fact(Facts)
    two.get_fact(Facts)
    assert len(one.asked) == len(two.asked) == 1


class LocalHost:
    """A host that is this machine: real pyinfra facts, their commands run by sh."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.current_op_global_arguments = None
        self.asked_one_by_one = 0
        self.logins: list[dict] = []    # the login arguments of each command run

    def get_fact(self, cls, *args, **kwargs):
        import inspect

        self.asked_one_by_one += 1
        fact = cls()
        call = inspect.getcallargs(fact.command, **{k: v for k, v in kwargs.items() if not k.startswith("_")})
        call.pop("self", None)
        ok, output = self.run_shell_command(fact.command(**call))
        return fact.process(output.stdout_lines) if output.stdout_lines else fact.default()

    def run_shell_command(self, command, **kwargs):
        import subprocess
        from types import SimpleNamespace

        self.logins.append(kwargs)
        text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        p = subprocess.run(["sh", "-c", text], capture_output=True, text=True)
        return p.returncode == 0, SimpleNamespace(stdout_lines=p.stdout.splitlines())

    def put_file(self, *args, **kwargs):
        return True

    def get_file(self, *args, **kwargs):
        return True


def test_last_runs_questions_are_asked_together_and_answered_alike(tmp_path, monkeypatch):
    from pyinfra.facts.files import File, Sha1File

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    save = fact_cache.install(LocalHost)
    for name in ("a", "b"):
        (tmp_path / name).write_text(f"content {name}\n")

    def questions(host):
        # Without atime: reading a file for its checksum moves it, between any two runs.
        files = [host.get_fact(File, path=str(tmp_path / n)) for n in ("a", "b", "missing")]
        return [{k: v for k, v in f.items() if k != "atime"} if f else f for f in files] + \
               [host.get_fact(Sha1File, path=str(tmp_path / n)) for n in ("a", "b")]

    first = LocalHost("o1")
    answers = questions(first)
    assert first.asked_one_by_one == 5
    save()
    again = LocalHost("o1")
    assert questions(again) == answers
    assert again.asked_one_by_one == 0          # all five came in the one batched command
    other = LocalHost("t1")                     # a host with no list asks one by one
    assert questions(other) == answers and other.asked_one_by_one == 5
    save()   # while the cache directory is still this test's


def test_the_list_holds_exactly_the_last_runs_questions(tmp_path, monkeypatch):
    from pyinfra.facts.files import Sha1File

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    save = fact_cache.install(LocalHost)
    for name in ("a", "b"):
        (tmp_path / name).write_text(f"content {name}\n")

    def ask(host, names):
        return [host.get_fact(Sha1File, path=str(tmp_path / n)) for n in names]

    ask(LocalHost("o2"), ["a", "b"])
    save()
    second = LocalHost("o2")
    ask(second, ["a"])                       # a role no longer asks about b
    assert second.asked_one_by_one == 0      # a came in the batch...
    save()
    listed = [q["kwargs"]["path"] for q in fact_cache._load("o2")]
    assert listed == [str(tmp_path / "a")]   # ...and stays listed; b is gone
    third = LocalHost("o2")
    ask(third, ["a"])
    assert third.asked_one_by_one == 0
    save()


def test_a_question_with_its_own_login_is_batched_with_that_login(tmp_path, monkeypatch):
    """The firewall asks SshClientAddress with `_sudo=False` on hosts reached with sudo: it
    comes in a batch of its own, run without sudo, instead of a round trip of its own."""
    from pyinfra.facts.files import Sha1File

    from roles._facts import SshClientAddress

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SSH_CLIENT", "10.77.0.1 40000 22")
    save = fact_cache.install(LocalHost)
    (tmp_path / "a").write_text("a\n")

    def ask(host):
        return host.get_fact(Sha1File, path=str(tmp_path / "a")), host.get_fact(SshClientAddress, _sudo=False)

    first = LocalHost("o3")
    answers = ask(first)
    assert answers[1] == "10.77.0.1" and first.asked_one_by_one == 2
    save()
    again = LocalHost("o3")
    assert ask(again) == answers and again.asked_one_by_one == 0
    batches = [login for login in again.logins if login.get("print_input") is False]
    assert len(batches) == 1 and "_sudo" not in batches[0]   # no sudo here: one batch
    save()

    # On a host reached with sudo the question comes in a second batch, run without it.
    sudo = LocalHost("o4")
    sudo.data = {"_sudo": True}
    answers = ask(sudo)
    save()
    again = LocalHost("o4")
    again.data = {"_sudo": True}
    assert ask(again) == answers and again.asked_one_by_one == 0
    batches = [login for login in again.logins if login.get("print_input") is False]
    assert sorted(login.get("_sudo", False) for login in batches) == [False, True]
    save()


def test_systemd_questions_are_answered_by_one_systemctl_per_fact(tmp_path, monkeypatch):
    from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

    # A systemctl that answers `show` as systemd does (one block per unit) and counts its calls.
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(f"""#!/bin/sh
echo call >> {tmp_path}/calls
skip=0
for a in "$@"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  case "$a" in
    --property) skip=1 ;;
    --*|show) ;;
    *.*) printf 'Id=%s\\nSubState=running\\nUnitFileState=enabled\\n\\n' "$a" ;;
    *) printf 'Id=%s.service\\nSubState=dead\\nUnitFileState=disabled\\n\\n' "$a" ;;
  esac
done
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    save = fact_cache.install(LocalHost)

    def questions(host):
        return [host.get_fact(SystemdStatus, services=["lpnode.service"]),
                host.get_fact(SystemdStatus, services=["prometheus.service"]),
                host.get_fact(SystemdStatus, services=["nftables"]),
                host.get_fact(SystemdEnabled, services=["lpnode.service"]),
                host.get_fact(SystemdEnabled, services=["nftables"])]

    first = LocalHost("o1")
    answers = questions(first)
    assert answers[0] == {"lpnode.service": True} and answers[2] == {"nftables.service": False}
    assert answers[3] == {"lpnode.service": True} and answers[4] == {"nftables.service": False}
    calls = (tmp_path / "calls").read_text().count("call")
    assert calls == 5
    save()
    again = LocalHost("o1")
    assert questions(again) == answers and again.asked_one_by_one == 0
    assert (tmp_path / "calls").read_text().count("call") - calls == 2   # one per fact, not one per unit
    save()
