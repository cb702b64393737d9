# Sourced by bin/*: creates .venv with the project and its dev tools on first use.
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e ".[dev]"
  touch "$VENV/.installed"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
