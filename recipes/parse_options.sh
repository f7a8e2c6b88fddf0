# Kaldi-style option parsing, shared by every egs/*/run.sh. Source it after setting defaults:
#   stage=0; corpus=mini; recipe_options="stage corpus"; . ../../recipes/parse_options.sh
# Every `--some-name value` (or `--some-name=value`) sets the shell variable some_name, which must be
# defined and listed in $recipe_options. Anything else is an error, so a typo never silently does nothing.
# `--help` prints $help_message (set it in the recipe) and the options with their current values.

_holdtts_usage() {
  [ -n "${help_message:-}" ] && printf '%s\n\n' "$help_message"
  echo "Options (current value in brackets):"
  for _v in ${recipe_options:-}; do
    printf '  --%-20s [%s]\n' "${_v//_/-}" "${!_v}"
  done
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _holdtts_usage; exit 0 ;;
    --*=*) _name="${1%%=*}"; _value="${1#*=}"; shift ;;
    --*)
      _name="$1"
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 2; fi
      _value="$2"; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options look like --name value; see --help)" >&2; exit 2 ;;
  esac
  _var="${_name#--}"; _var="${_var//-/_}"
  if ! declare -p "$_var" >/dev/null 2>&1 || { [ -n "${recipe_options:-}" ] && [[ " $recipe_options " != *" $_var "* ]]; }; then
    echo "$0: unknown option $_name (see --help)" >&2; exit 2
  fi
  printf -v "$_var" '%s' "$_value"
done
unset _name _value _var
