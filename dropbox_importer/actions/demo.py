"""Try the product in one command: the daemon on the embedded sandbox and a demo drop box.

Creates (once) a config, a drop box and a sample file under the given folder, prints what to
do, then runs the daemon in the foreground with readable logs. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from dropbox_importer import logs
from dropbox_importer.config import load_config
from dropbox_importer.daemon import Daemon

SAMPLE = """\
email,firstName,lastName,company
ada@example.com,Ada,Lovelace,Analytical Engines
grace@example.com,Grace,Hopper,Compilers Inc
not-an-email,Broken,Row,Nowhere
,No,Email,Anywhere
"""

# A partner's own export: Marketo's display names, a row without email, a repeated email.
PARTNER_SAMPLE = """\
Email Address,First Name,Last Name,Company Name
ada@example.com,Ada,Lovelace,Analytical Engines
grace@example.com,Grace,Hopper,Compilers Inc
,No,Email,Anywhere
ADA@example.com,Ada,King,Analytical Engines
"""

# Who attended the demo program's webinar: Ada is a lead already (after the sample above),
# Alan is not yet and is created by the import.
ATTENDEES = """\
email,firstName,lastName,attendedMinutes
ada@example.com,Ada,Lovelace,52
alan@example.com,Alan,Turing,47
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `demo`'s options."""
    parser.add_argument("--dir", type=Path, default=Path("demo"), help="where the demo lives")


def write_demo(directory: Path) -> Path:
    """Create the demo config, drop box and sample files if missing; return the config path."""
    directory = directory.resolve()
    config_path = directory / "config.yaml"
    root = directory / "dropbox"
    if not config_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "state_dir": str(directory / "state"),
            "log_format": "console",
            "web": {"listen": "127.0.0.1:9465"},
            "instances": {
                "demo": {
                    "base_url": "embedded",
                    "poll_min_seconds": 1,
                    "poll_max_seconds": 10,
                    "sandbox": {"rows_per_second": 200, "job_overhead_seconds": 2},
                }
            },
            "dropboxes": {
                "partner": {
                    "root": str(root),
                    "instance": "demo",
                    "settle_seconds": 2,
                    "routes": {
                        "newsletter": {"format": "csv", "listId": 1001},
                        # Program members: the sandbox's program 1001 "Partner webinar".
                        "webinar-attended": {
                            "format": "csv",
                            "program": 1001,
                            "status": "Attended",
                        },
                    },
                }
            },
        }
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    folders = ("inbox/newsletter", "inbox/webinar-attended", "inbox/csv")
    for folder in (*folders, "done", "failed", "processing"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    samples = {
        "sample-leads.csv": SAMPLE,
        "partner-leads.csv": PARTNER_SAMPLE,
        "sample-attendees.csv": ATTENDEES,
    }
    for name, text in samples.items():
        if not (directory / name).exists():
            (directory / name).write_text(text)
    return config_path


def main(args: argparse.Namespace) -> int:
    """Write the demo if needed, explain it, and run the daemon on it."""
    config_path = write_demo(args.dir)
    root = config_path.parent / "dropbox"
    print(
        f"""
dropbox-importer demo: the daemon runs on a built-in Marketo sandbox.
  drop a file:   cp {config_path.parent / "sample-leads.csv"} {root / "inbox/newsletter/"}
  then look in:  {root / "done/newsletter/"}  (the file, its .result.json and .failures.csv)
  attendees:     cp {config_path.parent / "sample-attendees.csv"} {root / "inbox/webinar-attended/"}
  status page:   http://127.0.0.1:9465/  (or: dropbox-importer status --config {config_path})
  config:        {config_path}
Stop with Ctrl-C.
""",
        flush=True,
    )
    config = load_config(config_path)
    logs.configure(json=False, level=config.log_level)
    return Daemon(config).run()
