"""Where things are: flag > environment > a profile in framefarm.toml > defaults, for every command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from framefarm.backends import Local
from framefarm.cli import main
from framefarm.cli.context import Context
from framefarm.cli.settings import resolve
from framefarm.errors import JobSpecError
from framefarm.repositories.dynamodb import DynamoDBJobRepository
from framefarm.status import JobRecord
from tests.helpers import make_spec


def flags(**given: str | None) -> argparse.Namespace:
    return argparse.Namespace(**{"home": None, "profile": None, "table": None, "bucket": None, "stack": None,
                                 "gcs_bucket": None, **given})


def write_settings(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "framefarm.toml"
    path.write_text(text)
    return path


def test_a_flag_wins_over_the_environment_which_wins_over_the_profile(tmp_path):
    # GIVEN a default profile naming a table, a bucket and a stack, and an environment naming a bucket and a stack
    write_settings(tmp_path, '[profile.default]\ntable = "p-table"\nbucket = "p-bucket"\nstack = "p-stack"\n')
    environ = {"FRAMEFARM_BUCKET": "e-bucket", "FRAMEFARM_STACK": "e-stack"}
    # WHEN a command is given --stack
    settings = resolve(flags(stack="f-stack"), environ, tmp_path)
    # THEN each setting comes from the first place that has it
    assert (settings.get("table"), settings.get("bucket"), settings.get("stack")) == ("p-table", "e-bucket", "f-stack")
    # AND only the typed flag is repeated in the hints it prints
    assert settings.hint_flags() == " --stack f-stack"


def test_the_current_directory_profile_wins_over_the_users_and_profile_chooses_one(tmp_path):
    # GIVEN the user's settings with a default and a "prod" profile, and the current directory's with a default
    config = tmp_path / "config"
    write_settings(config / "framefarm", '[profile.default]\ntable = "user"\n[profile.prod]\nstack = "Prod"\n')
    here = tmp_path / "project"
    write_settings(here, '[profile.default]\ntable = "project"\n')
    environ = {"XDG_CONFIG_HOME": str(config)}
    # WHEN commands run there with no profile, with FRAMEFARM_PROFILE, and with --profile
    by_default = resolve(flags(), environ, here)
    from_environment = resolve(flags(), {**environ, "FRAMEFARM_PROFILE": "prod"}, here)
    from_flag = resolve(flags(profile="prod"), environ, here)
    # THEN the current directory's default wins, and a named profile is found in the user's file
    assert by_default.get("table") == "project"
    assert from_environment.get("stack") == from_flag.get("stack") == "Prod"
    assert from_flag.hint_flags() == " --profile prod" and from_environment.hint_flags() == ""


@pytest.mark.parametrize(("text", "message"), [
    ('[profile.default]\ntable = "t"\nbucket = \n', r"framefarm\.toml: not valid TOML: .*line 3"),
    ('[profile.default]\ntabel = "t"\n', r"framefarm\.toml: \[profile\.default\] has unknown key 'tabel'"),
    ('[profile.default]\nbackend = "lamda"\n', r"backend 'lamda': expected one of local, lambda, cloudrun"),
])
def test_a_malformed_settings_file_is_one_line_naming_it(tmp_path, text, message):
    # GIVEN a framefarm.toml with a mistake
    path = write_settings(tmp_path, text)
    # WHEN the settings are read
    with pytest.raises(JobSpecError, match=message) as caught:
        resolve(flags(), {}, tmp_path)
    # THEN the error is one line naming the file where the file is at fault
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value) or "backend" in str(caught.value)


def test_a_profile_named_but_found_nowhere_is_refused(tmp_path):
    # GIVEN no settings file WHEN --profile names one THEN it says so and how to add it
    with pytest.raises(JobSpecError, match=r"profile 'prod' not found .*add a \[profile\.prod\] table"):
        resolve(flags(profile="prod"), {"XDG_CONFIG_HOME": str(tmp_path)}, tmp_path)


def test_status_finds_a_job_in_the_table_the_environment_names(table, dynamodb_client, monkeypatch, capsys):
    # GIVEN a job in a DynamoDB table, and the shell exporting FRAMEFARM_TABLE as devcloud says to
    DynamoDBJobRepository(table, client=dynamodb_client).save(JobRecord.new(make_spec(2, job_id="exported"), now=1.0))
    monkeypatch.setenv("FRAMEFARM_TABLE", table)
    # WHEN `framefarm status JOB` runs without --table
    code = main(["status", "exported"])
    # THEN it reads the job from that table
    assert code == 0, capsys.readouterr().err
    assert "exported" in capsys.readouterr().out


def test_a_profile_in_the_current_directory_points_every_command_at_its_home(tmp_path, monkeypatch, capsys):
    # GIVEN a job rendered into one home, and a framefarm.toml whose default profile names that home
    home = tmp_path / "elsewhere"
    monkeypatch.delenv("FRAMEFARM_HOME")
    monkeypatch.chdir(tmp_path)
    assert main(["--home", str(home), "render", str(job_file(tmp_path)), "--job-id", "profiled", "--no-stitch"]) == 0
    write_settings(tmp_path, f'[profile.default]\nhome = "{home}"\n')
    # WHEN status and jobs run with no flags
    capsys.readouterr()
    # THEN they find it there
    assert main(["status", "profiled"]) == 0
    assert main(["jobs"]) == 0
    assert capsys.readouterr().out.count("profiled") >= 2


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_flags_are_accepted_before_or_after_the_command(tmp_path, capsys, where):
    # GIVEN a job rendered into a home given after the command
    home = tmp_path / "given"
    assert main(["render", str(job_file(tmp_path)), "--job-id", "placed", "--no-stitch", "--home", str(home)]) == 0
    # WHEN status is given --home before or after its name
    argv = ["--home", str(home), "status", "placed"] if where == "before" else ["status", "placed", "--home", str(home)]
    capsys.readouterr()
    # THEN it finds the job there
    assert main(argv) == 0
    assert "placed" in capsys.readouterr().out


def test_version_prints_the_version(capsys):
    from framefarm import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"framefarm {__version__}"


def job_file(tmp_path: Path) -> Path:
    """A two-chunk job whose chunks are written by a short Python command (no ffmpeg needed)."""
    import sys

    import yaml

    path = tmp_path / "job.yaml"
    code = "import sys; open(sys.argv[2], 'wb').write(b'chunk')"
    path.write_text(yaml.safe_dump({"width": 64, "height": 48, "fps": 10, "total_frames": 2, "frames_per_chunk": 1,
                                    "command": [sys.executable, "-c", code, "{chunk_id}", "{output}"],
                                    "output": str(tmp_path / "o.mp4")}))
    return path


def test_a_malformed_settings_file_stops_any_command_in_one_line(tmp_path, monkeypatch, capsys):
    # GIVEN a framefarm.toml in the current directory with a missing value on line 2
    path = write_settings(tmp_path, '[profile.default]\ntable = \n')
    monkeypatch.chdir(tmp_path)
    # WHEN any command runs there
    code = main(["jobs"])
    # THEN it exits 2 with one line naming the file and the line
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith(f"error: {path}: not valid TOML: ") and "line 2" in err, err


def test_a_profiles_max_concurrency_sets_the_shared_budget_unless_the_environment_does(tmp_path, monkeypatch):
    # GIVEN a default profile with a budget of 3 chunks in flight across every job on the store
    write_settings(tmp_path, "[profile.default]\nmax_concurrency = 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FRAMEFARM_MAX_CONCURRENCY", "unset by the test")
    monkeypatch.delenv("FRAMEFARM_MAX_CONCURRENCY")  # restored (removed) after the test
    # WHEN settings are resolved with and without FRAMEFARM_MAX_CONCURRENCY
    # THEN the environment wins over the profile
    assert resolve(flags(), {}, tmp_path).get("max_concurrency") == "3"
    assert resolve(flags(), {"FRAMEFARM_MAX_CONCURRENCY": "9"}, tmp_path).get("max_concurrency") == "9"
    # AND the job managers of a command get the profile's budget
    Context.from_args(flags())
    assert Local(tmp_path / "home").manager().max_concurrency == 3
