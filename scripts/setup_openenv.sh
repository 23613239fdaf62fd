#!/usr/bin/env bash
# Installs openenv-core (the OpenEnv hub's package, for env=openenv and its tests) into .openenv, a folder
# of packages beside .venv rather than inside it: it pulls 56 packages .venv lacks (gradio, fastmcp,
# openai, ...) and would downgrade .venv's pillow (docs/environments.md, "Environment hubs"). The openenv
# tests append .openenv to sys.path after .venv's own packages (tests/conftest.py `openenv_site`), so
# every package .venv has wins there. scripts/test.sh runs this in the background beside the other
# installs. Idempotent: an existing install is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${OPENENV_DIR:-.openenv}
if [ -f "$TARGET/openenv/core/env_server/interfaces.py" ]; then
  echo "openenv-core already installed in $TARGET"; exit 0
fi
.venv/bin/python -m pip install -q --target "$TARGET.part" -c constraints.txt "openenv-core==0.3.*" 2> >(grep -v "^WARNING: Location" >&2)
rm -rf "$TARGET" && mv "$TARGET.part" "$TARGET"   # a cut install never looks complete
echo "openenv-core installed in $TARGET"
