# Environment for the recipe: the repository's virtualenv when present (../../recipes/path.sh).
. "$(dirname "${BASH_SOURCE[0]}")/../../recipes/path.sh"
