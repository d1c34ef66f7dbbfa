# shellcheck shell=bash
# The shell tests' one assertion, sourced by them: `check DESCRIPTION COMMAND...` runs the
# command, prints "ok: DESCRIPTION" or "FAILED: DESCRIPTION" and counts in $passed and $failed.
passed=0
failed=0

check() {  # description, then a command that must succeed
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $what"
    else
        failed=$((failed + 1))
        echo "FAILED: $what"
    fi
}
