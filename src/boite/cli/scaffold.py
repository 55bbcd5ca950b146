"""`boite init`: the files of a new, empty project."""

from __future__ import annotations

from pathlib import Path

from boite.errors import UserError

BOITE_YAML = """\
# boite project file; reference: docs/reference/boite-yaml.md
name: {name}

# Raw data: files (globs allowed) or tables of a SQL database.
sources: {{}}
#  orders:
#    path: data/orders/*.csv          # csv, parquet or json lines; .gz is fine
#    columns: {{customer_id: VARCHAR}}  # optional type overrides
#  accounts:
#    url: sqlite:///data/crm.db
#    table: accounts

# Each transforms/NAME.sql (one SELECT) or NAME.py makes the table NAME.
# Settings here only add checks and descriptions.
transforms: {{}}
#  daily_orders:
#    description: Orders per customer and day
#    checks:
#      - not_null: customer_id
#      - unique: [customer_id, day]
#      - range: {{column: amount, min: 0}}
#      - row_count: {{min: 1}}
"""

GITIGNORE = """\
# boite's ledger, artifacts and scratch space
.boite/
"""


def scaffold(folder: Path, *, force: bool = False) -> Path:
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder", hint="Choose another name.")
    if (folder / "boite.yaml").exists():
        raise UserError(
            f"{folder} already holds a boite project (boite.yaml)",
            hint="Open it with `boite status --project " + str(folder) + "`.",
        )
    if folder.exists() and any(folder.iterdir()) and not force:
        raise UserError(
            f"{folder} already exists and is not empty",
            hint="Choose another name, or pass --force to add the project files to it.",
        )
    (folder / "transforms").mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "boite.yaml").write_text(BOITE_YAML.format(name=folder.name))
    gitignore = folder / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE)
    return folder
