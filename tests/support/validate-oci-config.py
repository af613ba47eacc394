#!/usr/bin/env python3
"""Validates an OCI config.json against the runtime-spec JSON schema.

usage: validate-oci-config.py SCHEMA_DIR CONFIG_JSON
Prints every violation and exits 1 if there is one.
"""
import json
import pathlib
import sys

import jsonschema


def main() -> int:
    schema_dir = pathlib.Path(sys.argv[1]).resolve()
    config = json.loads(pathlib.Path(sys.argv[2]).read_text())
    schema = json.loads((schema_dir / "config-schema.json").read_text())
    # The schema's $refs are relative file names (defs.json, defs-linux.json…).
    resolver = jsonschema.RefResolver(base_uri=schema_dir.as_uri() + "/", referrer=schema)
    validator = jsonschema.Draft4Validator(schema, resolver=resolver)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    for error in errors:
        print(f"{'/'.join(map(str, error.path)) or '<root>'}: {error.message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
