#!/usr/bin/python3
"""unit-test-targets - the ninja targets of a meson build's unit suite, one per line: each
unit test's executable and what the test depends on (memoryrelaytest runs virtsnap-relay).

    scripts/unit-test-targets.py BUILD_DIR

run-tests.sh builds only these (and the fuzz targets) in its sanitizer build, which never
runs the integration or e2e suites.
"""
import json
import os
import subprocess
import sys

build = os.path.abspath(sys.argv[1])


def introspect(what):
    return json.loads(subprocess.run(["meson", "introspect", build, what], check=True,
                                     capture_output=True, text=True).stdout)


files_of_target = {t["id"]: t["filename"] for t in introspect("--targets")}
wanted = []
for test in introspect("--tests"):
    if not any(suite == "unit" or suite.endswith(":unit") for suite in test["suite"]):
        continue
    wanted.append(test["cmd"][0])
    for target_id in test.get("depends", []):
        wanted.extend(files_of_target.get(target_id, []))
seen = set()
for path in wanted:
    if path.startswith(build + os.sep) and path not in seen:
        seen.add(path)
        print(os.path.relpath(path, build))
